"""`dtpm-app --self-test`: prove that an installation (a desktop bundle above all) restores a
photo, without a screen.

It starts Qt offscreen and imports the window's modules (a bundle missing a Qt plugin or a
package fails here), loads the default models from the installed catalog through the app's
engine interface (`dtpm_core.engines.engine.load_engine`, as the app and `dtpm-restore`), restores
the bundled sample photo, downscaled to a preview, with every installed engine (DTPM at K = 4 with
seed 0; one pass of the single-pass network) and judges each result with
`check_restoration`. No model maths here.

`check_restoration` compares the result with the photo it was made from. The sample photo is
clean, so a working restoration model returns it with its structure intact and, at most,
sharper texture: shape kept, finite, in [0, 1], not flat, luminance strongly correlated with
the input, PSNR against the input well above that of unrelated images, and the colours closer
to the input's than to the input with red and blue swapped. Measured on the sample preview
(256x170): the UNTRAINED tiny model of `scripts/make_untrained_models.py` gives noise,
correlation 0.02 and 5.6 dB, so it fails; its initial prediction alone (close to the identity)
gives 0.95 and 22.4 dB. The thresholds sit between those two.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from dtpm_core.options import DTPM, ENGINE_LABELS, SINGLE_PASS

SELF_TEST_TASK = "motion-deblur"
"""The task the self-test restores when its model is installed."""
SELF_TEST_STEPS = 4
SELF_TEST_SEED = 0
SELF_TEST_SIDE = 256
"""Longest side of the sample preview: a few seconds at K = 4 on a CPU."""

RANGE_TOLERANCE = 1e-6
MIN_STD = 0.01
"""A result whose pixel values vary less than this (in [0, 1]) is flat, not a photo."""
MIN_LUMA_CORRELATION = 0.8
"""Pearson correlation of the result's luminance with the input's; noise gives about 0."""
MIN_PSNR_DB = 18.0
"""PSNR of the result against the (clean) input. On the sample preview: black or noise 5-6 dB,
the best flat image (the mean colour) 15.4 dB, the photo mirrored 14.8 dB; structure-kept
results 20 dB (noise of sigma 0.1) to 34 dB (slightly soft)."""
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


@dataclass(frozen=True)
class Check:
    """One sanity check of a restored image: its name, verdict and what was measured."""

    name: str
    passed: bool
    detail: str


def _luma(image: np.ndarray) -> np.ndarray:
    return image @ LUMA_WEIGHTS


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / denominator if denominator > 0 else float("nan")


def check_restoration(image: np.ndarray, result: np.ndarray) -> list[Check]:
    """Judge whether `result` is a plausible restoration of the clean photo `image`.

    Args:
        image: the (H, W, 3) input in [0, 1].
        result: what the model made of it.
    Returns:
        The checks in order; all must pass. When the shape is wrong nothing else is measured.
    """
    from dtpm_core.evaluation import metrics  # torch-backed: imported when the self-test runs
    image = np.asarray(image, dtype=np.float64)
    result = np.asarray(result, dtype=np.float64)
    if result.shape != image.shape or result.ndim != 3 or result.shape[2] != 3:
        return [Check("shape", False, f"{result.shape}, expected {image.shape}")]
    checks = [Check("shape", True, f"{result.shape}")]
    finite = np.isfinite(result)
    checks.append(Check("finite", bool(finite.all()),
                        f"{int((~finite).sum())} NaN or infinite values"))
    result = np.where(finite, result, 0.0)  # so that the checks below measure, not crash
    low, high = float(result.min()), float(result.max())
    checks.append(Check("range [0, 1]", -RANGE_TOLERANCE <= low and high <= 1 + RANGE_TOLERANCE,
                        f"min {low:.4f}, max {high:.4f}"))
    std = float(result.std())
    checks.append(Check("not flat", std >= MIN_STD, f"std {std:.4f} (at least {MIN_STD})"))
    corr = _correlation(_luma(result), _luma(image))
    checks.append(Check("luminance correlation", corr >= MIN_LUMA_CORRELATION,
                        f"{corr:.3f} (at least {MIN_LUMA_CORRELATION})"))
    psnr = metrics.psnr(result, image)
    checks.append(Check("PSNR against the input", psnr >= MIN_PSNR_DB,
                        f"{psnr:.2f} dB (at least {MIN_PSNR_DB:g} dB)"))
    swapped = metrics.psnr(result, np.ascontiguousarray(image[..., ::-1]))
    checks.append(Check("colour order (RGB)", psnr >= swapped,
                        f"{psnr:.2f} dB to the input, {swapped:.2f} dB to it with R and B "
                        "swapped"))
    return checks


# ----------------------------------------------------------------------------- the command


def _say(text: str = "") -> None:
    """Print (a windowed bundle on Windows has no stdout: then only the exit status tells)."""
    if sys.stdout is not None:
        print(text, flush=True)


class SelfTestError(Exception):
    """The installation cannot run the test at all (missing resources, no model)."""


def _fail(message: str) -> int:
    _say(f"self-test FAILED: {message}")
    return 1


def _start_qt() -> str:
    """Start Qt offscreen and import the window's modules; a description for the report."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from .main_window import app_icon

    icon = app_icon()
    sizes = sorted(s.width() for s in icon.availableSizes())
    if icon.isNull():
        raise SelfTestError("the application icon is missing from the resources")
    size_text = f"{sizes[0]}-{sizes[-1]} px" if sizes else "scalable"
    return f"PySide6 {pyside_version}, platform {app.platformName()}, icon {size_text}"


def _installed() -> tuple[Any, str | None]:
    """(catalog, None) or (None, why no model can be tested)."""
    from dtpm_core.errors import WeightsError
    from dtpm_core.modelfiles.catalog import bundled_models_dir, load_catalog, user_models_dir

    try:
        catalog = load_catalog()
    except WeightsError as exc:
        return None, str(exc)
    if (catalog.base is None or not catalog.adapters) and catalog.singlepass is None:
        return None, (f"no model is installed (looked in {bundled_models_dir()} and "
                      f"{user_models_dir()}); install a base and an adapter, or a single-pass "
                      "model, with the app's 'Add model...', or point --models DIR (or "
                      "DTPM_USER_MODELS) at a folder with a manifest.json")
    return catalog, None


def _default_task(tasks: Any) -> str:
    """SELF_TEST_TASK if installed, else the first task by name: a fixed choice, so that the
    thresholds measured for the self-test hold (the window's first task follows the stored
    scores instead: dtpm_app.job_planner.best_task)."""
    return next(t for t in (SELF_TEST_TASK, *sorted(tasks)) if t in tasks)


def _describe_model(name: str, info: Any) -> str:
    """File name, content sha256 and the training note the file carries, if any."""
    note = info.training.get("note") if isinstance(info.training, dict) else None
    return f"{name} (sha256 {info.sha256[:12]})" + (f" [{note}]" if note else "")


def _restore_dtpm(catalog: Any, image: np.ndarray, device: str) -> tuple[np.ndarray, Any]:
    """The DTPM engine at K = 4, seed 0, with the default task's adapter: (result, engine)."""
    from dtpm_core.engines.engine import DTPMSpec, load_engine

    entry = catalog.adapters[_default_task(catalog.adapters)]
    clock = time.perf_counter()
    # fp32: the checks compare numbers across machines and builds (the bf16 fast path
    # depends on the CPU)
    engine = load_engine(DTPMSpec(catalog.base, entry.path, steps=(SELF_TEST_STEPS,),
                                  seed=SELF_TEST_SEED, tile=0, device=device, precision="fp32"))
    _say(f"  base:     {_describe_model(catalog.base.name, engine.info)}")
    _say(f"  adapter:  {entry.task}: {_describe_model(entry.path.name, engine.adapter_info)}")
    _say(f"  folder:   {entry.path.parent}")
    _say(f"  device:   {engine.device} ({_runtime(engine.backend)}), backend {engine.backend}; "
         f"loaded in {time.perf_counter() - clock:.2f} s")
    clock = time.perf_counter()
    restored = engine.restore(image)
    _say(f"  restore:  K={SELF_TEST_STEPS}, seed {SELF_TEST_SEED}: "
         f"{time.perf_counter() - clock:.2f} s")
    return restored.image, engine


def _runtime(backend: str) -> str:
    """The runtime's version and threads, importing only the runtime in use."""
    from dtpm_core.backends.device import thread_count

    if backend == "openvino":
        from dtpm_core.backends.openvino_backend import runtime_version

        return f"OpenVINO {runtime_version()}, {thread_count()} threads"
    import torch

    return f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def _restore_singlepass(catalog: Any, image: np.ndarray, device: str
                        ) -> tuple[np.ndarray, Any]:
    """The single-pass engine: one pass of the installed network for its default task:
    (result, engine)."""
    from dtpm_core.engines.engine import SinglePassSpec, load_engine

    clock = time.perf_counter()
    engine = load_engine(SinglePassSpec(catalog.singlepass, tile=0, device=device,
                                        precision="fp32"))
    task = _default_task(engine.tasks)
    info = engine.info
    _say(f"  model:    {task}: {_describe_model(catalog.singlepass.name, info)}")
    _say(f"  device:   {engine.device}, backend {engine.backend}; loaded in "
         f"{time.perf_counter() - clock:.2f} s")
    clock = time.perf_counter()
    result = engine.restore(image, replace(engine.spec, task=task)).image
    _say(f"  restore:  one pass, t_mat {info.tasks[task]}: {time.perf_counter() - clock:.2f} s")
    return result, engine


def run_self_test(device: str = "auto") -> int:
    """Run the self-test and print its report; the process exit status (0 = passed).

    Every installed engine is tested (DTPM at K = 4 with the default adapter, and the
    single-pass network when one is installed); all of them must pass."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported
    started = time.perf_counter()
    _say("DTPM Studio self-test")
    try:
        qt = _start_qt()
    except SelfTestError as exc:
        return _fail(str(exc))
    _say(f"  Qt:       {qt} ({time.perf_counter() - started:.1f} s)")

    from dtpm_core.errors import DTPMError
    from dtpm_core.files.imageio import read_image

    from .main_window import sample_image
    from .workers import preview

    catalog, why = _installed()
    if catalog is None:
        return _fail(why)
    sample = sample_image()
    if sample is None:
        return _fail("the sample photo is missing from the resources (samples/chelsea.png)")
    photo = read_image(sample).rgb
    image = preview(photo, SELF_TEST_SIDE)
    _say(f"  sample:   {sample.name} {photo.shape[1]}x{photo.shape[0]} -> preview "
         f"{image.shape[1]}x{image.shape[0]}")

    engines = []
    if catalog.base is not None and catalog.adapters:
        engines.append((ENGINE_LABELS[DTPM], _restore_dtpm))
    if catalog.singlepass is not None:
        engines.append((ENGINE_LABELS[SINGLE_PASS], _restore_singlepass))
    failed: list[str] = []
    for name, restore in engines:
        _say(f"engine {name}")
        try:
            result, engine = restore(catalog, image, device)
        except DTPMError as exc:
            _say(f"  FAIL  {name} could not restore: {exc}")
            failed.append(f"{name}: cannot restore")
            continue
        _say(f"  LPIPS:    {_lpips_line(result, image, str(engine.device))}")
        _say(f"  distance: {_distance_line(result, image, engine.backend)}")
        for check in check_restoration(image, result):
            _say(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
            if not check.passed:
                failed.append(f"{name}: {check.name}")
    total_s = time.perf_counter() - started
    if failed:
        return _fail(f"{len(failed)} check(s) failed ({', '.join(failed)}): the output is not "
                     "a plausible restoration of the sample photo (an untrained model fails "
                     f"here by design; {total_s:.1f} s in all)")
    _say(f"self-test passed: {', '.join(n for n, _ in engines)} ({total_s:.1f} s in all)")
    return 0


def _lpips_line(result: np.ndarray, image: np.ndarray, device: Any) -> str:
    """LPIPS of the result against the input, as the trade-off plot measures it (for
    information only: it proves the metric's package data are there; nothing downloads).
    Without torch it says why there is none."""
    from dtpm_core.backends import torch_installed
    from dtpm_core.evaluation.metrics import LPIPS_NEEDS_TORCH, LPIPSMetric

    if not torch_installed():
        return f"not measured: {LPIPS_NEEDS_TORCH} (the trade-off curve shows the feature " \
               "distance below instead)"
    clock = time.perf_counter()
    metric = LPIPSMetric(device=device, allow_download=False)
    value = metric(result, image)
    return (f"{value:.3f} against the input, backbone {metric.backbone} "
            f"({time.perf_counter() - clock:.2f} s; for information, not a check)")


def _distance_line(result: np.ndarray, image: np.ndarray, backend: str) -> str:
    """The EffNet-Lite0 feature distance of the result against the input, on the engine's
    backend (for information: it proves that the trade-off curve's feature network runs,
    from the shipped graph without torch)."""
    from dtpm_core.errors import DTPMError
    from dtpm_core.evaluation.feature_distance import FeatureDistanceMetric

    clock = time.perf_counter()
    try:
        value = FeatureDistanceMetric(backend=backend)(result, image)
    except DTPMError as exc:
        return f"not measured: {exc}"
    return (f"{value:.4f} against the input, EfficientNet-Lite0 on {backend} "
            f"({time.perf_counter() - clock:.2f} s; for information, not a check)")
