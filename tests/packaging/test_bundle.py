"""The desktop bundle: build it with packaging/dtpm_studio.spec into a tmp folder, with a model
folder, and run the bundle's own `dtpm-studio --self-test`, `--install-desktop-entry` and
(Linux) its `dtpm-restore`.

Slow (each build takes about two minutes here and writes 3.6-4.5 GB, 0.7 GB without torch,
removed afterwards);
skipped when PyInstaller is not installed (it is in the `dev` extra)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PyInstaller", reason="PyInstaller is not installed (pip install -e .[dev])")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "packaging" / "dtpm_studio.spec"
BUILD_TIMEOUT_S = 1800


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DTPM_RESOURCES", "DTPM_BUNDLE_MODELS", "DTPM_BUNDLE_CPU_ONLY",
                        "DTPM_BUNDLE_NO_TORCH")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _check_lines(output: str) -> list[str]:
    """The PASS/FAIL lines of a self-test report."""
    return [line.strip() for line in output.splitlines() if re.match(r"\s+(PASS|FAIL) ", line)]


SHIPPED_MODELS = ROOT / "resources" / "models"


@pytest.fixture(scope="module")
def untrained_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle_models")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_untrained_models.py"),
                    str(folder)], check=True, env=_env(), capture_output=True, cwd=ROOT)
    return folder


def _source_tree_report(models: Path, tmp_path: Path, *args: str) -> str:
    """The self-test run from the source tree with the same models, to compare the bundle's
    report with."""
    resources = tmp_path / "resources"  # the bundle's resources: icons, sample, these models
    for name in ("icons", "samples"):
        shutil.copytree(ROOT / "resources" / name, resources / name)
    shutil.copytree(models, resources / "models")
    env = _env(PYTHONPATH=str(ROOT), DTPM_USER_MODELS=str(tmp_path / "no-user-models"),
               DTPM_RESOURCES=str(resources))
    proc = subprocess.run([sys.executable, "-m", "dtpm_app", "--self-test", "--device", "cpu",
                           *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert "restore:" in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout


# The default bundle carries the shipped models and must pass its self-test; the CPU-only one
# is built with an untrained model, whose output is noise: its self-test must run to the end
# and fail exactly the checks it fails from the source tree (exit status 1, no crash). The
# bundle without torch carries the shipped models with their graphs (built by build.sh's
# `dtpm-train graphs` step, here beforehand) and must pass on OpenVINO alone.
@pytest.mark.parametrize("variant", ["default", "cpu-only", "no-torch"],
                         ids=["default-shipped-models", "cpu-only-untrained-model",
                              "no-torch-shipped-models"])
def test_bundle_builds_and_runs_its_self_test(variant, untrained_models, tmp_path):
    cpu_only, no_torch = variant == "cpu-only", variant == "no-torch"
    models = untrained_models if cpu_only else SHIPPED_MODELS
    if not (models / "manifest.json").is_file():
        pytest.skip(f"no models in {models}")
    if no_torch:
        pytest.importorskip("openvino")
        subprocess.run([sys.executable, "-m", "trainer.cli", "graphs", "--models", str(models)],
                       check=True, env=_env(), capture_output=True, cwd=ROOT, timeout=1800)
    expected_status = 1 if cpu_only else 0
    source_report = _source_tree_report(models, tmp_path / "source",
                                        *(("--backend", "openvino") if no_torch else ()))
    dist, work = tmp_path / "dist", tmp_path / "work"
    env = _env(DTPM_BUNDLE_MODELS=str(models))
    if cpu_only:
        env["DTPM_BUNDLE_CPU_ONLY"] = "1"
    if no_torch:
        env["DTPM_BUNDLE_NO_TORCH"] = "1"
    log = tmp_path / "build.log"
    try:
        with log.open("w") as out:
            build = subprocess.run(
                [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                 "--distpath", str(dist), "--workpath", str(work), str(SPEC)],
                env=env, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S, cwd=ROOT)
        assert build.returncode == 0, log.read_text()[-5000:]
        bundle = dist / "DTPM Studio"
        exe = bundle / ("dtpm-studio.exe" if sys.platform == "win32" else "dtpm-studio")
        assert exe.is_file()
        internal = bundle / "_internal"
        assert (internal / "resources" / "models" / "manifest.json").is_file()
        assert (internal / "resources" / "samples" / "chelsea.png").is_file()
        if cpu_only:
            assert not (internal / "triton").exists()
            assert not list(internal.rglob("libcudnn_engines*"))
        if no_torch:
            assert not (internal / "torch").exists() and not (internal / "torchvision").exists()
            assert (internal / "resources" / "models" / "graphs").is_dir()

        # no DTPM_RESOURCES and no user models: the bundle must find its own resources
        run_env = _env(DTPM_USER_MODELS=str(tmp_path / "no-user-models"),
                       HOME=str(tmp_path / "home"))
        run_env.pop("QT_QPA_PLATFORM", None)
        proc = subprocess.run([str(exe), "--self-test", "--device", "cpu"], env=run_env,
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)
        report = proc.stdout + proc.stderr
        assert proc.returncode == expected_status, report
        assert "Traceback" not in report, report
        assert f"folder:   {internal / 'resources' / 'models'}" in proc.stdout, report
        assert "platform offscreen" in proc.stdout and "LPIPS:" in proc.stdout, report
        assert _check_lines(proc.stdout) == _check_lines(source_report), report
        if no_torch:
            assert "LPIPS:    not measured: LPIPS needs PyTorch" in proc.stdout, report
            assert proc.stdout.count("EfficientNet-Lite0 on openvino") == 2, report
        if cpu_only:
            assert "FAIL  luminance correlation" in proc.stdout
        else:
            assert "self-test passed: DTPM, Single-pass" in proc.stdout, report

        if sys.platform.startswith("linux"):
            _check_the_bundled_restorer(bundle, internal, run_env, tmp_path, no_torch)

        data_home = tmp_path / "share"
        proc = subprocess.run([str(exe), "--install-desktop-entry"],
                              env=run_env | {"XDG_DATA_HOME": str(data_home)},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        entry = (data_home / "applications" / "dtpm-studio.desktop").read_text()
        assert f'Exec="{exe}" %F' in entry
    finally:  # a bundle is several GB: never leave it behind
        shutil.rmtree(dist, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _check_the_bundled_restorer(bundle: Path, internal: Path, env: dict[str, str],
                                tmp_path: Path, no_torch: bool) -> None:
    """`dtpm-restore` beside `dtpm-studio`: the same executable through a relative link, which
    runs the command-line restorer on the bundle's models (a photo written, the input kept)."""
    link = bundle / "dtpm-restore"
    assert link.is_symlink() and str(link.readlink()) == "dtpm-studio"
    proc = subprocess.run([str(link), "--help"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: dtpm-restore"), \
        proc.stdout + proc.stderr
    photo = tmp_path / "photos" / "chelsea.png"
    photo.parent.mkdir()
    shutil.copy(internal / "resources" / "samples" / "chelsea.png", photo)
    before = photo.read_bytes()
    out = tmp_path / "restored"
    proc = subprocess.run([str(link), str(photo), "-o", str(out), "--adapter",
                           "motion-deblur", "--steps", "1", "--device", "cpu", "-q"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "chelsea.png").stat().st_size > 0 and photo.read_bytes() == before
    if no_torch:  # --cluster needs Ray, which the bundle leaves out: said, before any work
        proc = subprocess.run([str(link), str(photo), "-o", str(tmp_path / "c"),
                               "--adapter", "motion-deblur", "--cluster"], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode != 0 and "desktop bundle does not carry" in proc.stderr, \
            proc.stdout + proc.stderr
