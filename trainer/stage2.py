"""Stage II: train a task's adapters and initial predictor on a frozen base (or one of the
paper's ablations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dtpm_core.config import ModelConfig, Stage2Options
from dtpm_core.diffusion.calibration import Calibration
from dtpm_core.diffusion.objectives import stage2_loss, stage2_problem
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.errors import ConfigError
from dtpm_core.modelfiles.weights import load_adapter, load_base, save_adapter, save_base
from dtpm_core.networks.encoder_predictor import EncoderPredictor
from dtpm_core.networks.model import DTPM, configure_stage2_trainable
from dtpm_core.networks.semantic import resolve_semantic_mode
from dtpm_core.options import task_display_name

from .checkpoint import checkpoint_path
from .config import Stage2Config, TrainConfig
from .loop import TrainJob
from .provenance import training_summary
from .resume import extra_value, resumed_config
from .sampling_calibration import HeldOutCalibration, residual_scale_of
from .stage1 import stage1_model_config
from .task_data import build_datasets
from .validation import periodic_validator


class Stage2Loss(nn.Module):
    def __init__(self, model: DTPM, options: Stage2Config, residual_scale: float) -> None:
        super().__init__()
        self.model = model
        self.options, self.residual_scale = options, residual_scale

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        return stage2_loss(self.model, batch["degraded"], batch["clean"], generator,
                           self.options.predictor_l1_weight, self.residual_scale,
                           predictor_mse_weight=self.options.predictor_mse_weight,
                           predictor_fft_weight=self.options.predictor_fft_weight)


def _warm_start(model: DTPM, path: Path, base: DTPM, base_info, config: TrainConfig) -> float:
    """Start the adapters and predictor from an adapter file made for this base (to continue
    a finished run, e.g. in a later session), or with stage2.rebase for another; returns its residual scale, which the
    continued objective keeps unless stage2.rescale asks for it to be measured again."""
    # refuses an adapter of another base, unless stage2.rebase moves it onto this one
    parts = load_adapter(path, base, base_info, other_base_ok=config.stage2.rebase)
    if config.stage2.rebase:
        made_for = "this base" if parts.info.base_sha256 in base_info.identities else \
            f"base {parts.info.base_sha256[:12]}"
        print(f"stage2.rebase: the adapter was made for {made_for}; training it on "
              f"{base_info.sha256[:12]}")
    if parts.info.task != config.stage2.task or parts.info.stage2 != model.stage2:
        raise ConfigError(f"stage2.init {path} is a {parts.info.task!r} adapter with options "
                          f"{parts.info.stage2.to_dict()}; this run trains {config.stage2.task!r}"
                          f" with {model.stage2.to_dict()}")
    if parts.info.config.predictor != model.config.predictor:
        raise ConfigError(f"stage2.init {path} has the initial predictor "
                          f"{parts.info.config.predictor}; this run builds "
                          f"{model.config.predictor} (drop the predictor overrides or the init)")
    if parts.denoiser_overrides:
        raise ConfigError(f"stage2.init {path}: continuing a fine-tuning ablation is not "
                          "supported; use an adapters-mode file")
    for mine, theirs in ((model.adapters, parts.adapters), (model.predictor, parts.predictor)):
        if mine is not None:
            mine.load_state_dict(theirs.state_dict())
    print(f"Stage II starts from the adapters and predictor of {path}")
    return parts.info.calibration.residual_scale


def stage2_batch_problem(model: DTPM, batch: dict[str, torch.Tensor]):
    return stage2_problem(model, batch["degraded"], batch["clean"])


def stage2_model_config(config: TrainConfig, base_config: ModelConfig) -> ModelConfig:
    """The base's model config with the run's predictor overrides (`model.overrides` keys
    `predictor.*`: a wider or deeper initial predictor, a pixel-unshuffle stem). The denoiser
    and adapters follow the base; any other override cannot be honoured and is an error."""
    overrides = dict(config.model.overrides)
    others = sorted(k for k in overrides if not k.startswith("predictor."))
    if others and not config.stage2.from_scratch:
        raise ConfigError(f"Stage II takes the denoiser and adapters from the base; model."
                          f"overrides {others} cannot apply (only predictor.* keys can)")
    predictor = {k: v for k, v in overrides.items() if k.startswith("predictor.")}
    return base_config.with_overrides(predictor) if predictor else base_config


def stage2_options(config: TrainConfig) -> Stage2Options:
    s = config.stage2
    return Stage2Options(mode=s.mode, use_predictor=s.use_predictor, from_scratch=s.from_scratch)


def export_stage2(model: DTPM, path: str | Path, config: TrainConfig, step: int,
                  extra: dict[str, Any], metrics: dict[str, Any] | None = None,
                  calibration: Calibration | None = None, storage: str = "fp32") -> str:
    """Write the adapter weight file of a Stage II model for config.stage2.task (bound to
    the base extra["base_sha256"]); returns its content SHA-256."""
    task = config.stage2.task
    display = config.stage2.display_name or task_display_name(task)
    return save_adapter(path, model, task, extra["base_sha256"], display_name=display,
                        training=training_summary(config, step, extra), metrics=metrics,
                        calibration=calibration, storage=storage)


def build_stage2(config: TrainConfig, run_dir: Path, base_path: Path | None) -> TrainJob:
    config, extra = resumed_config(config, run_dir)
    options = stage2_options(config)
    if extra:
        base_path = Path(extra_value(extra, "base_path", checkpoint_path(run_dir)))
    if options.from_scratch:
        # "w/o Stage I": a randomly initialised base, trained together with the task parts
        if not extra:
            semantic, note = resolve_semantic_mode(config.model.semantic)
            torch.manual_seed(config.loop.seed)
            scratch = DTPM(stage1_model_config(config, semantic))
            base_path = run_dir / "initial_base.safetensors"
            save_base(base_path, scratch, training={"note": "random initialisation"})
    if base_path is None:
        raise ConfigError("stage2 needs --base PATH (a Stage I base file), unless "
                          "stage2.from_scratch = true")
    base, base_info = load_base(base_path)
    if config.model.semantic == "none" and base.config.denoiser.semantic != "none":
        raise ConfigError(f"the ablation without semantic code needs a base trained without it; "
                          f"{base_path} uses {base.config.denoiser.semantic!r} (train one with "
                          "`dtpm-train stage1 --no-semantic`, or use --no-stage1)")
    resumed_scale = extra.get("residual_scale", 1.0 if extra else None)
    extra = {"base_path": str(base_path), "base_sha256": base_info.sha256,
             "stage2": options.to_dict(), "semantic": base.config.denoiser.semantic,
             "semantic_note": f"semantic encoder: {base.config.denoiser.semantic} (from base)"}
    torch.manual_seed(config.loop.seed)
    model = DTPM(stage2_model_config(config, base.config), options)
    model.denoiser.load_state_dict(base.denoiser.state_dict())
    if resumed_scale is None:  # a fresh run (a resumed one has its weights already)
        if config.stage2.init:
            kept_scale = _warm_start(model, Path(config.stage2.init), base, base_info, config)
            if config.stage2.rescale:
                print(f"stage2.rescale: s is measured again (the file's: {kept_scale:.4f})")
            elif config.calibration.residual_scale > 0.0:
                raise ConfigError(f"calibration.residual_scale = "
                                  f"{config.calibration.residual_scale} with stage2.init: a "
                                  f"warm start keeps the file's s ({kept_scale:.4f}); set "
                                  "stage2.rescale = true to replace it")
            else:
                resumed_scale = kept_scale
        elif isinstance(model.predictor, EncoderPredictor):
            model.predictor.load_imagenet_encoder()
            print("the initial predictor's encoder starts from EfficientNet-Lite0's ImageNet "
                  "weights")
    configure_stage2_trainable(model)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    train_set, val_pairs, crops = build_datasets(config, with_calibration=True)
    adapter_file = f"{config.stage2.task}.safetensors"
    # s: kept from the checkpoint on resume (1 for runs from before residual scaling)
    scale = float(resumed_scale) if resumed_scale is not None else \
        residual_scale_of(config, model, stage2_batch_problem, train_set)
    extra["residual_scale"] = scale
    print(f"residual scale s = {scale:.4f} (the diffusion runs on x0 / s)")
    what = f"{len(crops)} held-out {config.loop.val_size} px crops"

    held_out = HeldOutCalibration(stage2_batch_problem, crops, scale, what)

    def make_restorer(tmp: Path, trained: DTPM, step: int) -> Restorer:
        adapter_path = tmp / adapter_file
        export_stage2(trained, adapter_path, config, step, extra,
                      calibration=held_out.measure(trained)[0])
        return Restorer(base_path, adapter_path, device="auto", precision="fp32")

    validate_images = periodic_validator(val_pairs, config.loop, run_dir / "samples",
                                         make_restorer)

    def validate(trained: nn.Module, step: int) -> dict[str, float]:
        return {**validate_images(trained, step), **held_out.x0_errors(trained)}

    def finish(trained: nn.Module) -> None:
        path = run_dir / adapter_file
        calibration = held_out.finish(trained, run_dir)
        export_stage2(trained, path, config, config.loop.iterations, extra,
                      calibration=calibration)
        print(f"exported the {config.stage2.task} adapter to {path}; sampling calibration: "
              f"{calibration}")

    return TrainJob("stage2", run_dir, config, model,
                    Stage2Loss(model, config.stage2, scale), trainable,
                    train_set, validate=validate, finish=finish, extra_state=extra)
