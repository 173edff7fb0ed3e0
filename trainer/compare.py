"""`dtpm-train compare`: the engines side by side on held-out photos degraded with settings
that training never used (the held-out degradation distribution): the degraded input, the
plain-L1 single-pass network, the diffusion-trained single-pass network and DTPM at K = 1
and 4, per task, with PSNR / SSIM / LPIPS (DESIGN 6, "What to measure"). The engines run
through `dtpm_core.engines.engine`, as in the app and `dtpm-restore`."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dtpm_core.evaluation.metrics import LPIPSMetric, psnr, ssim
from dtpm_core.files.atomic import write_bytes_atomic, write_text_atomic

from .data import degraded_photos

if TYPE_CHECKING:
    from dtpm_core.engines.engine import Engine, EngineResult

Method = Callable[[np.ndarray, str], np.ndarray]
"""(degraded image, task) -> restored image; KeyError when it has no model for the task."""


@dataclass(frozen=True)
class Score:
    task: str
    method: str
    psnr: float
    ssim: float
    lpips: float
    images: int


def held_out_pairs(clean: Sequence[Path], task: str, seed: int = 0
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) pairs of the given photos with the held-out degradation settings."""
    return [(np.clip(degraded, 0, 1).astype(np.float32), image)
            for _, degraded, image in degraded_photos(clean, task, seed, held_out=True)]


def single_pass_method(engine: Engine) -> Method:
    """A loaded single-pass engine as a method: its spec, for the task asked (KeyError for a
    task its file lacks)."""
    def run(image: np.ndarray, task: str) -> np.ndarray:
        if task not in engine.tasks:
            raise KeyError(task)
        return engine.restore(image, replace(engine.spec, task=task)).image
    return run


def dtpm_methods(engine: Engine, adapters: Mapping[str, Path]) -> dict[str, Method]:
    """A loaded DTPM engine as one method per K of its spec ("DTPM K=4"), with the adapter of
    each task (KeyError for a task without one). One restore per image and task gives every
    K (the same noise); the other methods of that image reuse it."""
    last: dict[tuple[int, str], EngineResult] = {}

    def run(image: np.ndarray, task: str, k: int) -> np.ndarray:
        if task not in adapters:
            raise KeyError(task)
        key = (id(image), task)
        if key not in last:
            last.clear()
            last[key] = engine.restore(image, replace(engine.spec, adapter=adapters[task]))
        return last[key].by_steps[k]
    return {f"DTPM K={k}": (lambda image, task, k=k: run(image, task, k))
            for k in engine.spec.steps}


def compare(methods: dict[str, Method | None], tasks: Sequence[str], clean: Sequence[Path],
            lpips: LPIPSMetric, seed: int = 0,
            progress: Callable[[str], None] | None = None) -> list[Score]:
    """Score every method (None = not available for the task) on every task's pairs; the
    degraded input is scored as "input"."""
    scores = []
    for task in tasks:
        pairs = held_out_pairs(clean, task, seed)
        runs: dict[str, Method] = {"input": lambda x, _t: x}
        runs.update({name: m for name, m in methods.items() if m is not None})
        for name, method in runs.items():
            values = []
            for degraded, target in pairs:
                try:
                    out = method(degraded, task)
                except KeyError:  # this method has no model for the task
                    values = []
                    break
                values.append((psnr(out, target), ssim(out, target), lpips(out, target)))
            if values:
                mean = np.mean(np.array(values), axis=0)
                scores.append(Score(task, name, float(mean[0]), float(mean[1]),
                                    float(mean[2]), len(values)))
                if progress:
                    progress(f"{task:15s} {name:24s} PSNR {mean[0]:.2f}  SSIM {mean[1]:.4f}  "
                             f"LPIPS {mean[2]:.4f}")
    return scores


def markdown(scores: list[Score], methods: Sequence[str], note: str) -> str:
    """One table: a row per task, PSNR / SSIM / LPIPS per method."""
    head = "| task | " + " | ".join(methods) + " |"
    rule = "|---|" + "---|" * len(methods)
    rows = [head, rule]
    for task in dict.fromkeys(s.task for s in scores):
        cells = []
        for method in methods:
            s = next((s for s in scores if s.task == task and s.method == method), None)
            cells.append("n/a" if s is None else f"{s.psnr:.2f} / {s.ssim:.3f} / {s.lpips:.3f}")
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + f"\n\nPSNR (dB) / SSIM / LPIPS per cell. {note}\n"


def write_reports(scores: list[Score], methods: Sequence[str], note: str, out: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", "method", "psnr", "ssim", "lpips", "images"])
    for s in scores:
        writer.writerow([s.task, s.method, f"{s.psnr:.4f}", f"{s.ssim:.5f}", f"{s.lpips:.5f}",
                         s.images])
    write_bytes_atomic(out / "compare.csv", buffer.getvalue().encode())
    write_text_atomic(out / "compare.md", markdown(scores, methods, note))
