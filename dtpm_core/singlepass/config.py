"""The single-pass network's architecture and inference choices as plain data: what a
weight file's metadata holds, read without building the network (no torch here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import dataclass_from_dict
from ..errors import ConfigError

NUM_STEPS = 50  # T of the schedule (`dtpm_core.singlepass.schedule`)
INFERENCE_TOP_K = 2
"""Experts each MoE adaptor runs at inference: the 2 the router weights most, their weights
renormalised to sum to 1. All 10 were 61% of the bundled network's FLOPs; measured on
held-out degradations (benchmarks/bench_moe_topk.py) top-2 is within 0.1 dB of all 10."""


@dataclass(frozen=True)
class SinglePassConfig:
    """Architecture of the single-pass network; defaults are the reference code's NAFNet."""

    width: int = 48  # C
    enc_blocks: tuple[int, ...] = (2, 2, 4, 28)
    middle_blocks: int = 6
    dec_blocks: tuple[int, ...] = (2, 2, 2, 2)
    cond_dim: int = 192  # size of the time embedding (4 C in the reference)
    num_steps: int = NUM_STEPS  # T of the schedule the network is conditioned on
    experts: int = 10  # experts per MoE adaptor
    adaptor_tasks: tuple[str, ...] = ()  # tasks the adaptors serve; () = no adaptors
    stem: int = 1  # s: the U-Net runs on the image pixel-unshuffled by s (3 s^2 channels)

    def __post_init__(self) -> None:
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ConfigError(
                f"singlepass.enc_blocks {self.enc_blocks} and dec_blocks {self.dec_blocks} "
                "must have the same number of levels"
            )
        if self.width < 4 or self.cond_dim < 4:
            raise ConfigError("singlepass.width and cond_dim must be >= 4")
        if self.num_steps < 1 or self.experts < 1:
            raise ConfigError("singlepass.num_steps and experts must be >= 1")
        if self.stem not in (1, 2, 4):
            raise ConfigError(f"singlepass.stem must be 1, 2 or 4, got {self.stem}")

    @property
    def levels(self) -> int:
        return len(self.enc_blocks)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SinglePassConfig:
        """Rebuild from `to_dict` output; unknown keys are errors."""
        return dataclass_from_dict(cls, data, "singlepass")


SINGLEPASS_PRESETS: dict[str, SinglePassConfig] = {
    "tiny": SinglePassConfig(16, (1, 1, 1, 1), 1, (1, 1, 1, 1), 64),
    "small": SinglePassConfig(32, (2, 2, 4, 8), 12, (2, 2, 2, 2), 128),
    "paper": SinglePassConfig(64, (2, 2, 4, 8), 12, (2, 2, 2, 2), 256),
    "reference": SinglePassConfig(48, (2, 2, 4, 28), 6, (2, 2, 2, 2), 192),
}
"""Named presets: tiny/small/paper as DESIGN 1.3, "reference" as xin1u/EEDTP."""


def singlepass_preset(name: str, **overrides: Any) -> SinglePassConfig:
    """The named preset with optional field overrides, e.g. ``singlepass_preset("tiny", width=8)``."""
    if name not in SINGLEPASS_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(SINGLEPASS_PRESETS)}")
    data = SINGLEPASS_PRESETS[name].to_dict()
    unknown = sorted(set(overrides) - set(data))
    if unknown:
        raise ConfigError(f"unknown singlepass config key(s) {unknown}")
    data.update(overrides)
    return SinglePassConfig.from_dict(data)
