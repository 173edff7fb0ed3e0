"""What an exported weight file records about the run that made it (its `training`
metadata), the same for every engine and stage."""

from __future__ import annotations

from typing import Any

import torch

from .config import TrainConfig


def training_summary(config: TrainConfig, step: int, extra: dict[str, Any]) -> dict[str, Any]:
    """What goes into the file's `training` metadata: the resolved config and provenance."""
    return {"steps": step, "config": config.to_dict(),
            "semantic_note": extra.get("semantic_note", ""), "torch": torch.__version__}
