"""The torch-free GPU probe that lets `auto` pick OpenVINO without importing torch."""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys

import pytest

from dtpm_core import backends
from dtpm_core.backends import device, gpu_probe, resolve_backend


@pytest.mark.parametrize(("version", "kfd", "nvidia", "expected"), [
    ("2.14.1+cpu", True, 1, False),  # a CPU-only wheel finds no GPU whatever the machine has
    ("2.14.1+rocm6.4", False, 0, False),  # ROCm wheel, no AMD kernel driver
    ("2.14.1+rocm6.4", True, 0, True),
    ("2.14.1+cu130", False, 0, False),  # CUDA wheel, no NVIDIA driver or device
    ("2.14.1+cu130", False, 2, True),
    ("2.14.1", False, 1, True),  # a plain version (PyPI's CUDA wheel on Linux)
])
def test_the_probe_reads_the_wheel_and_the_drivers(monkeypatch, tmp_path, version, kfd,
                                                   nvidia, expected):
    monkeypatch.setattr(gpu_probe.sys, "platform", "linux")
    monkeypatch.setattr(gpu_probe, "installed_torch_version", lambda: version)
    monkeypatch.setattr(gpu_probe, "Path", lambda p: tmp_path / ("kfd" if kfd else "none"))
    (tmp_path / "kfd").touch()
    monkeypatch.setattr(gpu_probe, "nvidia_device_count", lambda: nvidia)
    assert gpu_probe.torch_may_see_a_gpu() is expected


def test_without_torch_or_on_macos(monkeypatch):
    monkeypatch.setattr(gpu_probe.sys, "platform", "linux")
    monkeypatch.setattr(gpu_probe.importlib.util, "find_spec", lambda name: None)
    assert gpu_probe.installed_torch_version() is None
    assert gpu_probe.torch_may_see_a_gpu() is False
    monkeypatch.setattr(gpu_probe.sys, "platform", "darwin")  # Metal: only torch can tell
    assert gpu_probe.torch_may_see_a_gpu() is True


def _installed_torch(monkeypatch, folder):
    spec = importlib.machinery.ModuleSpec("torch", None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    monkeypatch.setattr(gpu_probe.importlib.util, "find_spec",
                        lambda name: spec if name == "torch" else None)


@pytest.mark.parametrize("line", ['__version__ = "2.14.1+cpu"', "__version__ = '2.14.1+cpu'"])
def test_the_version_is_read_from_the_package_without_importing_it(monkeypatch, tmp_path, line):
    (tmp_path / "version.py").write_text(f"from typing import Optional\n{line}\ndebug = False\n")
    _installed_torch(monkeypatch, tmp_path)
    assert gpu_probe.installed_torch_version() == "2.14.1+cpu"
    assert gpu_probe.torch_may_see_a_gpu() is False


def test_an_unreadable_version_leaves_the_drivers_to_decide(monkeypatch, tmp_path):
    _installed_torch(monkeypatch, tmp_path)  # no version.py
    monkeypatch.setattr(gpu_probe.sys, "platform", "linux")
    assert gpu_probe.installed_torch_version() == ""
    for count, expected in ((0, False), (1, True)):
        monkeypatch.setattr(gpu_probe, "nvidia_device_count", lambda count=count: count)
        assert gpu_probe.torch_may_see_a_gpu() is expected


def test_the_installed_version_is_torchs_own():
    torch = pytest.importorskip("torch")
    assert gpu_probe.installed_torch_version() == torch.__version__


def test_the_probe_imports_neither_torch_nor_package_metadata():
    code = ("import sys; from dtpm_core.backends.gpu_probe import torch_may_see_a_gpu as p; p(); "
            "sys.exit(1 if {'torch', 'importlib.metadata'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_a_missing_driver_library_counts_no_device(monkeypatch):
    monkeypatch.setattr(gpu_probe, "NVIDIA_DRIVER_LIBRARIES",
                        {sys.platform: ("libno-such-driver.so.1",)})
    assert gpu_probe.nvidia_device_count() == 0


def test_auto_asks_torch_only_where_it_may_see_a_gpu(monkeypatch):
    monkeypatch.setattr(backends, "openvino_installed", lambda: True)
    asked = []

    def resolve_device(name):
        asked.append(name)
        return type("Device", (), {"type": "cuda"})()

    monkeypatch.setattr(device, "resolve_device", resolve_device)
    monkeypatch.setattr(gpu_probe, "torch_may_see_a_gpu", lambda: False)
    assert resolve_backend("auto", "auto", machine="x86_64") == "openvino" and not asked
    monkeypatch.setattr(gpu_probe, "torch_may_see_a_gpu", lambda: True)
    assert resolve_backend("auto", "auto", machine="x86_64") == "torch" and asked == ["auto"]


def test_on_this_machine_the_probe_agrees_with_torch():
    """Where the probe says no GPU, torch finds none either (run in a fresh process, so that
    this test's own imports do not matter)."""
    code = ("from dtpm_core.backends.gpu_probe import torch_may_see_a_gpu as p; import sys; "
            "may = p(); import torch; "
            "sees = torch.cuda.is_available() or torch.backends.mps.is_available(); "
            "sys.exit(0 if may or not sees else 1)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
