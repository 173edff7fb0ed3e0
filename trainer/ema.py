"""Exponential moving average of the trained parameters."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copies of named parameters: shadow = decay * shadow + (1 - decay) * param.

    The decay warms up as min(decay, (1 + n) / (10 + n)) so that early shadows are not stuck
    at the random initialisation.
    """

    def __init__(self, named_params: dict[str, nn.Parameter], decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.params = named_params
        self.shadow = {k: p.detach().clone().float() for k, p in named_params.items()}

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, param in self.params.items():
            self.shadow[name].lerp_(param.detach().float(), 1.0 - decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            if k in self.shadow:
                self.shadow[k].copy_(v)

    @torch.no_grad()
    def copy_to(self, named_params: dict[str, nn.Parameter]) -> None:
        """Write the averaged values into parameters of the same names."""
        for name, param in named_params.items():
            param.copy_(self.shadow[name].to(param.dtype))
