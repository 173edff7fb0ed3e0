"""The single-pass network on the torch backend, called on numpy arrays (shared with torch on
the CPU, not copied)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..backends.torch_backend import torch_network
from .runner import Runner


def torch_singlepass(net: nn.Module, runner: Runner) -> Callable[[np.ndarray, int], np.ndarray]:
    """net(x, t_mat) -> y = x - f(x, t_mat) as a new float32 array."""
    call = torch_network(net, runner.device, runner.precision)
    device = runner.device

    @torch.no_grad()
    def run(x: np.ndarray, t_mat: int) -> np.ndarray:
        t = torch.full((1,), t_mat, dtype=torch.long, device=device)
        return call(torch.from_numpy(x).to(device), t).float().cpu().numpy()
    return run
