"""Export: a training run's checkpoint -> the weight file that `Restorer`, `dtpm-restore`
and the app load (a base file for Stage I, an adapter file for Stage II, a single-pass file);
each stage writes its own kind of file, this module rebuilds the model and picks the writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dtpm_core.config import Stage2Options
from dtpm_core.diffusion.calibration import Calibration
from dtpm_core.errors import ConfigError
from dtpm_core.modelfiles.weights import load_base
from dtpm_core.networks.model import DTPM, configure_stage2_trainable

from .checkpoint import (
    CHECKPOINT_REMEDY,
    CheckpointError,
    check_training_state,
    checkpoint_path,
    load_checkpoint,
)
from .config import TrainConfig
from .resume import extra_value, stored_config
from .sampling_calibration import load_calibration
from .singlepass.train import export_singlepass_run
from .stage1 import export_stage1, stage1_model_config
from .stage2 import export_stage2, stage2_model_config


def run_calibration(run_dir: Path, extra: dict[str, Any]) -> Calibration | None:
    """What a run measured when it finished; for a run stopped before that, its residual
    scale with the default start level (said in the note); None for runs from before
    calibration existed (their files load with the default)."""
    measured = load_calibration(run_dir)
    if measured is not None:
        return measured
    if "residual_scale" in extra:
        return Calibration(residual_scale=float(extra["residual_scale"]),
                           note="start level not measured (run exported before it finished)")
    return None


def model_from_checkpoint(run_dir: str | Path, use_ema: bool = True
                          ) -> tuple[DTPM, TrainConfig, dict[str, Any], int, str]:
    """Rebuild the trained model from a run's checkpoint (EMA weights by default).
    Returns (model, config, extra state, step, kind). A checkpoint that lacks an entry or
    whose tensors do not fit the model its config describes is a CheckpointError naming the
    file and what is wrong."""
    path = checkpoint_path(run_dir)
    state = load_checkpoint(path)
    config = stored_config(state, path)
    extra, kind = state.get("extra", {}), state.get("kind")
    if kind == "stage1":
        model = DTPM(stage1_model_config(config, extra_value(extra, "semantic", path)))
        trained = {n: p for n, p in model.named_parameters() if n.startswith("denoiser.")}
    elif kind == "stage2":
        base, _ = load_base(extra_value(extra, "base_path", path))
        try:
            options = Stage2Options(**extra_value(extra, "stage2", path))
        except (TypeError, ConfigError) as exc:
            raise CheckpointError(f"checkpoint {path}: its Stage II options cannot be read "
                                  f"({exc}); {CHECKPOINT_REMEDY}") from exc
        model = DTPM(stage2_model_config(config, base.config), options)
        model.denoiser.load_state_dict(base.denoiser.state_dict())
        configure_stage2_trainable(model)
        trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    else:
        raise CheckpointError(f"{run_dir}: unknown checkpoint kind {kind!r}")
    check_training_state(state, trained, path, optimizer=False)
    values = state["ema"]["shadow"] if use_ema else state["trainable"]
    with torch.no_grad():
        for name, value in values.items():
            trained[name].copy_(value.to(trained[name].dtype))
    try:
        step = int(state["step"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path}: bad step {state['step']!r}; "
                              f"{CHECKPOINT_REMEDY}") from exc
    return model.eval(), config, extra, step, kind


def export_run(run_dir: str | Path, out: str | Path, use_ema: bool = True,
               metrics: dict[str, Any] | None = None, storage: str = "fp32") -> Path:
    """Write the weight file of a Stage I, Stage II or single-pass run to `out`; `storage`
    "fp16" stores a base or adapter file's weights in half precision (half the size)."""
    kind = load_checkpoint(checkpoint_path(run_dir)).get("kind", "")
    if str(kind).startswith("singlepass"):
        if storage != "fp32":
            raise ConfigError(f"--storage {storage}: single-pass files are stored in fp32 "
                              "only")
        return export_singlepass_run(Path(run_dir), Path(out), use_ema, metrics)
    model, config, extra, step, kind = model_from_checkpoint(run_dir, use_ema)
    calibration = run_calibration(Path(run_dir), extra)
    if kind == "stage1":
        export_stage1(model, out, config, step, extra, metrics, calibration, storage)
    else:
        export_stage2(model, out, config, step, extra, metrics, calibration, storage)
    return Path(out)


def graphs_of_export(run_dir: str | Path, out: Path) -> list:
    """The graphs of the file `export_run` wrote from `run_dir` (an adapter's with the base
    its run trained on)."""
    from dtpm_core.engines.graph_export import dtpm_graphs, singlepass_graphs

    state = load_checkpoint(checkpoint_path(run_dir))
    kind = str(state.get("kind", ""))
    if kind.startswith("singlepass"):
        return singlepass_graphs(out)
    if kind == "stage1":
        return dtpm_graphs(out)
    path = checkpoint_path(run_dir)
    return dtpm_graphs(Path(extra_value(state.get("extra", {}), "base_path", path)), out)
