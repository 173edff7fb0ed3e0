"""The torch-free GPU probe that lets `auto` pick OpenVINO without importing torch."""

from __future__ import annotations

import importlib.metadata
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
    monkeypatch.setattr(gpu_probe.importlib.metadata, "version", lambda name: version)
    monkeypatch.setattr(gpu_probe, "Path", lambda p: tmp_path / ("kfd" if kfd else "none"))
    (tmp_path / "kfd").touch()
    monkeypatch.setattr(gpu_probe, "nvidia_device_count", lambda: nvidia)
    assert gpu_probe.torch_may_see_a_gpu() is expected


def test_without_torch_or_on_macos(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(gpu_probe.sys, "platform", "linux")
    monkeypatch.setattr(gpu_probe.importlib.metadata, "version", missing)
    assert gpu_probe.torch_may_see_a_gpu() is False
    monkeypatch.setattr(gpu_probe.sys, "platform", "darwin")  # Metal: only torch can tell
    assert gpu_probe.torch_may_see_a_gpu() is True


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
