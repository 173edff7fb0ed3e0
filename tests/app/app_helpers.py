"""Helpers shared by the app tests (images, waiting for the window to settle)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from dtpm_core.files.imageio import write_image


def make_image(path: Path, height: int = 48, width: int = 64, seed: int = 0) -> Path:
    """A small smooth colour image with some texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.3 * np.sin(x / 5.0)], axis=-1)
    image = np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)
    return write_image(path, image)


def wait_settled(qtbot, window, timeout: int = 60_000) -> None:
    """Until the result for the current settings is shown and the curve is complete (quick
    preview and refined)."""
    from dtpm_app.job_planner import CURVE_SIDES

    c = window.controller

    def done() -> bool:
        return (c.idle and c.current_result() is not None
                and all(c.planner.curve_complete(side) for side in CURVE_SIDES))

    qtbot.waitUntil(done, timeout=timeout)


def wait_result(qtbot, window, timeout: int = 60_000) -> None:
    """Until the result for the slider's K is displayed (the slider is throttled)."""
    def shown() -> bool:
        d, k = window._display, window.controls.slider.value()
        return (window.controller.session.k == k and d.result is not None and d.result_k == k
                and not d.pending)

    qtbot.waitUntil(shown, timeout=timeout)


def hold_first_pass(engine, seen: threading.Event, clicked: threading.Event,
                    passes: list) -> None:
    """Wrap `engine.restore` (one of the worker's loaded engines) so that the first network
    pass of a restoration with progress waits, in the worker thread, until the test has clicked
    Cancel: the cancel then lands exactly after that pass. Every pass's `done` count goes to
    `passes` (trade-off points, restored without progress, run as usual)."""
    original = engine.restore

    def restore(image, *args, **kwargs):
        report = kwargs.get("progress")
        if report is None:
            return original(image, *args, **kwargs)

        def progress(p):
            report(p)
            passes.append(p.done)
            if not seen.is_set():
                seen.set()
                clicked.wait(10)

        return original(image, *args, **{**kwargs, "progress": progress})

    engine.restore = restore


def job_kind(request) -> str:
    """A job request in words: "load dtpm", "load single-pass", "switch adapter", "restore
    dtpm", "restore single-pass" or "curve point"."""
    from dtpm_app.jobs import LoadEngine, Restore, SwitchAdapter

    if isinstance(request, LoadEngine):
        return f"load {request.spec.engine}"
    if isinstance(request, SwitchAdapter):
        return "switch adapter"
    if isinstance(request, Restore):
        return f"restore {request.engine}"
    return "curve point"
