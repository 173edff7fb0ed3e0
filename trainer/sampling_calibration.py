"""Measuring a model's sampling calibration (`dtpm_core.diffusion.calibration`) on training or
held-out data: the residual scale s before training, and after training the start level t_s and the
x0 clamp, from the curve of the denoiser's x0 error against t.

The x0 error at t: noise the scaled residual to sqrt(alpha_bar_t), predict eps, form
x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t) (DDIM eq. 12), compare with
x0. Predicting zero has error RMS(x0); where the denoiser does worse, sampling from that t
only adds noise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from dtpm_core.diffusion.calibration import Calibration, choose_start_step, residual_clip
from dtpm_core.diffusion.objectives import DiffusionProblem, add_noise
from dtpm_core.diffusion.schedule import alpha_bars
from dtpm_core.files.atomic import write_text_atomic
from dtpm_core.networks.model import DTPM

from .config import TrainConfig
from .validation import stack_items

CALIBRATION_FILE = "calibration.json"
"""Written into a run folder when training finishes; `dtpm-train export` reads it."""
SCALE_BATCHES = 16
"""Training batches averaged into the residual scale at the start of a run."""
CURVE_STEPS = tuple(range(25, 1001, 25))
"""The t at which the x0 error curve is measured (T = 1000)."""
VALIDATION_STEPS = (100, 250, 500, 1000)
"""The t whose relative x0 error is logged at every validation."""

ProblemFn = Callable[[DTPM, dict[str, torch.Tensor]], DiffusionProblem]
"""(model, batch of [0, 1] tensors) -> the stage's DiffusionProblem."""


@torch.no_grad()
def measure_residual_scale(model: DTPM, problem_fn: ProblemFn,
                           batches: Iterable[dict[str, torch.Tensor]]) -> float:
    """RMS of the unscaled residual x0 over the given batches (the value s divides by)."""
    total, count = 0.0, 0
    for batch in batches:
        x0 = problem_fn(model, batch).x0.double()
        total += float(x0.pow(2).sum())
        count += x0.numel()
    if count == 0:
        raise ValueError("measure_residual_scale got no batches")
    return max((total / count) ** 0.5, 1e-4)


def residual_scale_of(config: TrainConfig, model: DTPM, problem_fn: ProblemFn, dataset) -> float:
    """s from the config, or the residual's RMS over the first training batches."""
    if config.calibration.residual_scale > 0.0:
        return config.calibration.residual_scale
    size = config.data.batch_size
    count = min(SCALE_BATCHES * size, len(dataset))
    batches = [stack_items([dataset[i] for i in range(j, min(j + size, count))])
               for j in range(0, count, size)]
    return measure_residual_scale(model, problem_fn, batches)


@torch.no_grad()
def x0_error_curve(model: DTPM, problem_fn: ProblemFn, batch: dict[str, torch.Tensor],
                   residual_scale: float, steps: Sequence[int], clip: float | None = None,
                   seed: int = 0) -> tuple[list[float], float]:
    """(RMS x0 error at each t in `steps`, RMS of x0) in scaled units, with fixed noise."""
    problem = problem_fn(model, batch)
    x0 = problem.x0 / residual_scale
    table = alpha_bars(model.config.diffusion)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(x0)
    errors = []
    for t in steps:
        a = float(table[t])
        level = torch.full((x0.shape[0],), a ** 0.5, device=x0.device)
        x_t = add_noise(x0, level, eps)
        eps_hat = problem.eps_model(x_t, level).float()
        x0_hat = (x_t - (1.0 - a) ** 0.5 * eps_hat) / a ** 0.5
        if clip is not None:
            x0_hat = x0_hat.clamp(-clip, clip)
        errors.append(float((x0_hat - x0).pow(2).mean().sqrt()))
    return errors, float(x0.pow(2).mean().sqrt())


def validation_x0_errors(model: DTPM, problem_fn: ProblemFn, batch: dict[str, torch.Tensor],
                         residual_scale: float) -> dict[str, float]:
    """x0 error / RMS(x0) at a few t: below 1 the denoiser beats predicting zero there."""
    was_training = model.training
    model.eval()
    errors, zero = x0_error_curve(model, problem_fn, batch, residual_scale, VALIDATION_STEPS)
    model.train(was_training)
    return {f"x0_err_rel@{t}": e / max(zero, 1e-12)
            for t, e in zip(VALIDATION_STEPS, errors, strict=True)}


@torch.no_grad()
def measure_calibration(model: DTPM, problem_fn: ProblemFn, batch: dict[str, torch.Tensor],
                        residual_scale: float, what: str) -> tuple[Calibration, dict[str, Any]]:
    """The calibration of a trained model on a held-out batch, and the curve behind it.

    `what` names the data in the calibration's note (e.g. "16 held-out 128 px crops")."""
    model.eval()
    x0 = problem_fn(model, batch).x0 / residual_scale
    rms = float(x0.pow(2).mean().sqrt())
    p999 = float(torch.quantile(x0.abs().flatten().float()[:2_000_000], 0.999))
    clip = residual_clip(rms, p999)
    errors, zero = x0_error_curve(model, problem_fn, batch, residual_scale, CURVE_STEPS, clip)
    start = choose_start_step(CURVE_STEPS, errors, zero, model.config.diffusion.num_steps)
    ratio = errors[CURVE_STEPS.index(start)] / zero if start in CURVE_STEPS else float("nan")
    calibration = Calibration(
        residual_scale=float(residual_scale), start_step=start, x0_clip=round(clip, 4),
        note=f"measured on {what}: t_s is the largest t whose x0 error is <= 0.9 RMS(x0) "
             f"(ratio {ratio:.2f} there)")
    curve = {"steps": list(CURVE_STEPS), "x0_error": errors, "x0_rms": zero,
             "x0_p999": p999, "calibration": json.loads(calibration.to_json())}
    return calibration, curve


def save_calibration(run_dir: Path, curve: dict[str, Any]) -> None:
    write_text_atomic(run_dir / CALIBRATION_FILE, json.dumps(curve, indent=1))


def load_calibration(run_dir: Path) -> Calibration | None:
    """The calibration a finished run measured, or None for runs from before it existed."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))["calibration"]
    return Calibration(**data)


class HeldOutCalibration:
    """The calibration work a Stage I / II job does on its held-out crops: measure the
    calibration for an export, log relative x0 errors at validation, and save the curve when
    the run finishes. Without crops it measures nothing and says so in the calibration."""

    def __init__(self, problem_fn: ProblemFn, crops: list[dict[str, torch.Tensor]],
                 residual_scale: float, what: str) -> None:
        self.problem_fn, self.scale, self.what = problem_fn, residual_scale, what
        self.batch = stack_items(crops) if crops else None

    def measure(self, trained: DTPM) -> tuple[Calibration, dict[str, Any]]:
        if self.batch is None:
            return Calibration(residual_scale=self.scale,
                               note="not measured: no held-out data"), {}
        return measure_calibration(trained, self.problem_fn, self.batch, self.scale, self.what)

    def x0_errors(self, trained: DTPM) -> dict[str, float]:
        if self.batch is None:
            return {}
        return validation_x0_errors(trained, self.problem_fn, self.batch, self.scale)

    def finish(self, trained: DTPM, run_dir: Path) -> Calibration:
        calibration, curve = self.measure(trained)
        if curve:
            save_calibration(run_dir, curve)
        return calibration
