"""`dtpm-app --self-test`: the sanity checks accept structure-preserving results and reject
garbage (synthetic arrays), an untrained model fails them as measured, and the command's exit
status says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dtpm_app.self_test import (
    MIN_LUMA_CORRELATION,
    MIN_PSNR_DB,
    SELF_TEST_SEED,
    SELF_TEST_SIDE,
    SELF_TEST_STEPS,
    check_restoration,
)
from dtpm_app.workers import preview
from dtpm_core.files.imageio import read_image
from dtpm_core.modelfiles.catalog import resources_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    """The self-test's input: the bundled sample photo at preview size."""
    return preview(read_image(resources_dir() / "samples" / "chelsea.png").rgb, SELF_TEST_SIDE)


def _failed(checks) -> set[str]:
    return {c.name for c in checks if not c.passed}


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 1).astype(np.float32)


def _sharpened(image: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(image, (0, 0), 1.5)
    return np.clip(image + 1.0 * (image - blurred), 0, 1)


# ------------------------------------------------------------------ plausible restorations


@pytest.mark.parametrize("make", [
    lambda x: x,
    lambda x: _noisy(x, 0.03),  # added texture / grain
    _sharpened,  # what a deblurring model does to a clean photo
    lambda x: cv2.GaussianBlur(x, (0, 0), 1.0),  # slightly soft
    lambda x: np.clip(x * 0.9 + 0.05, 0, 1),  # mild contrast change
], ids=["identity", "grain", "sharpened", "soft", "contrast"])
def test_structure_preserving_results_pass(sample, make):
    checks = check_restoration(sample, make(sample))
    assert not _failed(checks), checks


# ------------------------------------------------------------------ garbage


@pytest.mark.parametrize("make, must_fail", [
    (lambda x: np.zeros_like(x), {"not flat", "luminance correlation", "PSNR against the input"}),
    (lambda x: np.full_like(x, x.mean()),  # the best flat guess in PSNR terms
     {"not flat", "luminance correlation", "PSNR against the input"}),
    (lambda x: np.random.default_rng(1).random(x.shape, dtype=np.float32),
     {"luminance correlation", "PSNR against the input"}),
    (lambda x: _noisy(np.full_like(x, 0.5), 0.5), {"luminance correlation"}),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) % 7 == 0, np.nan, x),
     {"finite"}),
    (lambda x: np.full_like(x, np.nan), {"finite", "not flat", "luminance correlation"}),
    (lambda x: x * 255.0, {"range [0, 1]", "PSNR against the input"}),  # forgot to scale
    (lambda x: x * 2.0 - 1.0, {"range [0, 1]"}),  # left in [-1, 1]
    (lambda x: np.ascontiguousarray(x[..., ::-1]), {"colour order (RGB)"}),  # BGR
    (lambda x: 1.0 - x, {"luminance correlation", "PSNR against the input"}),  # inverted
    (lambda x: np.ascontiguousarray(x[::-1]), {"luminance correlation"}),  # upside down
], ids=["black", "grey", "uniform-noise", "gaussian-noise", "some-nan", "all-nan",
        "0-255", "minus1-1", "bgr", "inverted", "flipped"])
def test_garbage_fails(sample, make, must_fail):
    with np.errstate(invalid="ignore"):
        result = make(sample)
    failed = _failed(check_restoration(sample, result))
    assert must_fail <= failed, failed


def test_wrong_shapes_fail_without_measuring(sample):
    for result in (np.ascontiguousarray(sample.transpose(1, 0, 2)),  # (W, H, 3)
                   np.ascontiguousarray(sample.transpose(2, 0, 1)),  # (3, H, W)
                   sample.mean(axis=2),  # grey
                   sample[:-1]):
        checks = check_restoration(sample, result)
        assert [(c.name, c.passed) for c in checks] == [("shape", False)]


def test_a_transposed_square_image_fails(sample):
    square = np.ascontiguousarray(sample[:, :sample.shape[0]])
    failed = _failed(check_restoration(square, np.ascontiguousarray(square.transpose(1, 0, 2))))
    assert "luminance correlation" in failed or "PSNR against the input" in failed


# ------------------------------------------------------------------ with a model


def test_untrained_model_fails_as_measured(models, sample):
    """The untrained tiny model (the same weights as scripts/make_untrained_models.py) gives
    noise: measured luminance correlation 0.34 and 9.1 dB (sampling from the default start
    level t_s = 250 of files without calibration), so the self-test rejects it. Its initial
    prediction alone (an untrained predictor is the identity) is accepted: the thresholds
    separate the two."""
    from dtpm_core.engines.engine import DTPMSpec, load_engine

    out = load_engine(DTPMSpec(models / "base.safetensors", models / "motion-deblur.safetensors",
                               steps=(SELF_TEST_STEPS,), seed=SELF_TEST_SEED, tile=0,
                               device="cpu")).restore(sample)
    checks = {c.name: c for c in check_restoration(sample, out.image)}
    assert _failed(checks.values()) == {"luminance correlation", "PSNR against the input"}
    corr = float(checks["luminance correlation"].detail.split()[0])
    psnr = float(checks["PSNR against the input"].detail.split()[0])
    assert corr < 0.5 < MIN_LUMA_CORRELATION and psnr < 12.0 < MIN_PSNR_DB
    assert not _failed(check_restoration(sample, out.initial))


def _self_test(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = dict(os.environ)
    environ.update(PYTHONPATH=os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")]),
                   OMP_NUM_THREADS="1", **(env or {}))
    environ.pop("QT_QPA_PLATFORM", None)  # the self-test must choose offscreen by itself
    return subprocess.run([sys.executable, "-m", "dtpm_app", "--self-test", *args], env=environ,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_cli_exits_1_when_no_model_is_installed(tmp_path):
    resources = tmp_path / "resources"  # icons, no bundled models (whatever the checkout has)
    shutil.copytree(resources_dir() / "icons", resources / "icons")
    proc = _self_test("--models", str(tmp_path / "no-models"),
                      env={"DTPM_RESOURCES": str(resources)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "self-test FAILED: no model is installed" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_cli_reports_and_exits_1_for_the_untrained_model(models):
    proc = _self_test("--models", str(models), "--device", "cpu")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "platform offscreen" in out
    assert "base.safetensors (sha256 " in out and "motion-deblur.safetensors" in out
    assert "device:   cpu" in out and "restore:  K=4, seed 0:" in out
    assert "PASS  shape: (170, 256, 3)" in out
    assert "FAIL  luminance correlation" in out and "FAIL  PSNR against the input" in out
    assert out.rstrip().splitlines()[-1].startswith(
        "self-test FAILED: 2 check(s) failed (DTPM: luminance correlation, DTPM: PSNR against "
        "the input")
    assert "Traceback" not in proc.stderr


def _identity_singlepass(folder: Path) -> Path:
    """A single-pass network whose residual branch ends in zeros: y = x exactly."""
    import json

    import torch

    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import save_singlepass

    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8))
    with torch.no_grad():
        net.ending.weight.zero_()
        net.ending.bias.zero_()
    folder.mkdir(parents=True, exist_ok=True)
    save_singlepass(folder / "fast.safetensors", net, tasks={"desnow": 15})
    (folder / "manifest.json").write_text(json.dumps({"singlepass": "fast.safetensors"}))
    return folder


def test_a_single_pass_model_alone_is_tested_and_can_pass(tmp_path):
    resources = tmp_path / "resources"  # no bundled models: only the user's single-pass file
    shutil.copytree(resources_dir() / "icons", resources / "icons")
    shutil.copytree(resources_dir() / "samples", resources / "samples")
    models = _identity_singlepass(tmp_path / "models")
    proc = _self_test("--models", str(models), "--device", "cpu",
                      env={"DTPM_RESOURCES": str(resources)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "engine Single-pass" in proc.stdout and "engine DTPM" not in proc.stdout
    assert "restore:  one pass, t_mat 15" in proc.stdout
    assert proc.stdout.rstrip().endswith("s in all)")
    assert "self-test passed: Single-pass" in proc.stdout
