"""Stage I: learn the texture prior on prepared (clean, RTV-smoothed) patch pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtpm_core.config import ModelConfig
from dtpm_core.diffusion.calibration import Calibration
from dtpm_core.diffusion.objectives import stage1_loss, stage1_problem
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.errors import ConfigError
from dtpm_core.modelfiles.weights import load_base, save_base
from dtpm_core.networks.model import DTPM
from dtpm_core.networks.semantic import resolve_semantic_mode

from .config import TrainConfig
from .data import PreparedPatches
from .loop import TrainJob
from .provenance import training_summary
from .resume import resumed_config
from .sampling_calibration import HeldOutCalibration, residual_scale_of
from .validation import as_array_pair, periodic_validator

BASE_FILE = "base.safetensors"


class Stage1Loss(nn.Module):
    def __init__(self, model: DTPM, residual_scale: float) -> None:
        super().__init__()
        self.model, self.residual_scale = model, residual_scale

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        return stage1_loss(self.model, batch["clean"], batch["smooth"], generator,
                           self.residual_scale)


def stage1_batch_problem(model: DTPM, batch: dict[str, torch.Tensor]):
    return stage1_problem(model, batch["clean"], batch["smooth"])


def _warm_start(model: DTPM, path: str) -> None:
    """Start the Stage I denoiser from an earlier base file (same network config)."""
    base, info = load_base(path)
    if base.config.denoiser != model.config.denoiser:
        raise ConfigError(f"model.init {path} is a {base.config.preset} base with another "
                          "denoiser config than this run's; use a matching base or no init")
    model.denoiser.load_state_dict(base.denoiser.state_dict())
    print(f"Stage I starts from the denoiser of {path} (sha256 {info.sha256[:12]})")


def stage1_model_config(config: TrainConfig, semantic: str) -> ModelConfig:
    """The network of a Stage I run: config.model with the resolved semantic encoder."""
    return config.model.build().with_overrides({"denoiser.semantic": semantic})


def export_stage1(model: DTPM, path: str | Path, config: TrainConfig, step: int,
                  extra: dict[str, Any], metrics: dict[str, Any] | None = None,
                  calibration: Calibration | None = None, storage: str = "fp32") -> str:
    """Write the base weight file of a Stage I model; returns its content SHA-256."""
    return save_base(path, model, training=training_summary(config, step, extra),
                     metrics=metrics, calibration=calibration, storage=storage)


def build_stage1(config: TrainConfig, run_dir: Path) -> TrainJob:
    config, extra = resumed_config(config, run_dir)
    resumed = bool(extra)
    if resumed and "residual_scale" not in extra:
        extra["residual_scale"] = 1.0  # a run from before residual scaling keeps its objective
    if "semantic" not in extra:
        semantic, note = resolve_semantic_mode(config.model.semantic)
        extra = {"semantic": semantic, "semantic_note": note}
    print(extra["semantic_note"])
    torch.manual_seed(config.loop.seed)
    model = DTPM(stage1_model_config(config, extra["semantic"]))
    if not resumed and config.model.init:
        _warm_start(model, config.model.init)  # a resumed run has these weights already
    trainable = {n: p for n, p in model.named_parameters() if n.startswith("denoiser.")}
    train_set = PreparedPatches(config.data.prepared, crop=config.data.crop,
                                seed=config.loop.seed, split="train",
                                held_out_fraction=config.data.held_out_fraction)
    val_set = PreparedPatches(config.data.prepared, crop=config.loop.val_size,
                              seed=config.loop.seed, split="held-out",
                              held_out_fraction=config.data.held_out_fraction, augment=False)
    val_pairs = [as_array_pair(val_set[i], ("smooth", "clean"))
                 for i in range(min(config.loop.val_images, len(val_set)))]
    if "residual_scale" not in extra:
        extra["residual_scale"] = residual_scale_of(config, model, stage1_batch_problem,
                                                    train_set)
    scale = float(extra["residual_scale"])
    print(f"residual scale s = {scale:.4f} (the diffusion runs on x0 / s)")
    crops = [val_set[i % len(val_set)] for i in range(config.calibration.crops)] \
        if len(val_set) else []
    what = f"{len(crops)} held-out {config.loop.val_size} px patches"

    held_out = HeldOutCalibration(stage1_batch_problem, crops, scale, what)

    def make_restorer(tmp: Path, trained: DTPM, step: int) -> Restorer:
        export_stage1(trained, tmp / BASE_FILE, config, step, extra,
                      calibration=held_out.measure(trained)[0])
        return Restorer(tmp / BASE_FILE, device="auto", precision="fp32")

    validate_images = periodic_validator(val_pairs, config.loop, run_dir / "samples",
                                         make_restorer)

    def validate(trained: nn.Module, step: int) -> dict[str, float]:
        return {**validate_images(trained, step), **held_out.x0_errors(trained)}

    def finish(trained: nn.Module) -> None:
        path = run_dir / BASE_FILE
        calibration = held_out.finish(trained, run_dir)
        export_stage1(trained, path, config, config.loop.iterations, extra,
                      calibration=calibration)
        print(f"exported the base model to {path}; sampling calibration: {calibration}")

    return TrainJob("stage1", run_dir, config, model, Stage1Loss(model, scale), trainable,
                    train_set, validate=validate, finish=finish, extra_state=extra)

