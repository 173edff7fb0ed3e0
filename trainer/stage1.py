"""Stage I: learn the texture prior on prepared (clean, RTV-smoothed) patch pairs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dtpm_core.config import ModelConfig
from dtpm_core.model import DTPM
from dtpm_core.objectives import stage1_loss
from dtpm_core.restore import Restorer
from dtpm_core.semantic import resolve_semantic_mode

from .checkpoint import checkpoint_path, load_checkpoint
from .config import TrainConfig
from .export import export_stage1
from .loop import TrainJob
from .validation import as_array_pair, periodic_validator

BASE_FILE = "base.safetensors"


class Stage1Loss(nn.Module):
    def __init__(self, model: DTPM) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        return stage1_loss(self.model, batch["clean"], batch["smooth"], generator)


def stage1_model_config(config: TrainConfig, semantic: str) -> ModelConfig:
    return config.model.build().with_overrides({"denoiser.semantic": semantic})


def resumed_config(config: TrainConfig, run_dir: Path) -> tuple[TrainConfig, dict]:
    """A run that has a checkpoint continues with the config stored in it (the model is
    rebuilt from the checkpoint, not from the current flags), except for loop.iterations,
    which may be raised to train longer."""
    ckpt = checkpoint_path(run_dir)
    if not ckpt.is_file():
        return config, {}
    state = load_checkpoint(ckpt)
    stored = TrainConfig.from_dict(state["config"])
    if config.loop.iterations != stored.loop.iterations:
        import dataclasses
        stored = dataclasses.replace(
            stored, loop=dataclasses.replace(stored.loop, iterations=config.loop.iterations))
    return stored, dict(state.get("extra", {}))


def build_stage1(config: TrainConfig, run_dir: Path) -> TrainJob:
    from .data import PreparedPatches

    config, extra = resumed_config(config, run_dir)
    if "semantic" not in extra:
        semantic, note = resolve_semantic_mode(config.model.semantic)
        extra = {"semantic": semantic, "semantic_note": note}
    print(extra["semantic_note"])
    torch.manual_seed(config.loop.seed)
    model = DTPM(stage1_model_config(config, extra["semantic"]))
    trainable = {n: p for n, p in model.named_parameters() if n.startswith("denoiser.")}
    train_set = PreparedPatches(config.data.prepared, crop=config.data.crop,
                                seed=config.loop.seed, split="train",
                                held_out_fraction=config.data.held_out_fraction)
    val_set = PreparedPatches(config.data.prepared, crop=config.loop.val_size,
                              seed=config.loop.seed, split="held-out",
                              held_out_fraction=config.data.held_out_fraction, augment=False)
    val_pairs = [as_array_pair(val_set[i], ("smooth", "clean"))
                 for i in range(min(config.loop.val_images, len(val_set)))]

    def make_restorer(tmp: Path, trained: DTPM, step: int) -> Restorer:
        export_stage1(trained, tmp / BASE_FILE, config, step, extra)
        return Restorer(tmp / BASE_FILE, device="auto")

    def finish(trained: nn.Module) -> None:
        path = run_dir / BASE_FILE
        export_stage1(trained, path, config, config.loop.iterations, extra)
        print(f"exported the base model to {path}")

    return TrainJob("stage1", run_dir, config, model, Stage1Loss(model), trainable, train_set,
                    validate=periodic_validator(val_pairs, config.loop, run_dir / "samples",
                                                make_restorer), finish=finish, extra_state=extra)

