"""`singlepass calibrate`: choose the matched time step t_mat of a custom task by a scan
over t with the pre-trained network on validation pairs (DESIGN 6)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dtpm_core.evaluation.metrics import psnr
from dtpm_core.singlepass.network import SinglePassNet


@dataclass(frozen=True)
class Calibration:
    """Mean PSNR of one pass at every scanned t, and the best t (the new t_mat)."""

    task: str
    scores: dict[int, float]  # t -> mean PSNR (dB) of x - f(x, t) against the clean images
    input_psnr: float  # mean PSNR of the degraded images themselves

    @property
    def best(self) -> int:
        return max(self.scores, key=lambda t: (self.scores[t], -t))

    def table(self) -> str:
        lines = [f"t_mat scan for {self.task} (input {self.input_psnr:.2f} dB)", "t   PSNR"]
        for t, value in self.scores.items():
            lines.append(f"{t:<3} {value:.3f}" + ("  <- best" if t == self.best else ""))
        return "\n".join(lines)


@torch.no_grad()
def calibrate(net: SinglePassNet, pairs: Sequence[tuple[np.ndarray, np.ndarray]], task: str,
              steps: Sequence[int] | None = None) -> Calibration:
    """Restore every (degraded, clean) pair at each t in `steps` (default 0..T) and keep the
    t with the best mean PSNR (ties go to the smaller t)."""
    if not pairs:
        raise ValueError("calibration needs at least one (degraded, clean) pair")
    steps = list(range(net.config.num_steps + 1)) if steps is None else list(steps)
    net = net.eval()
    device = next(net.parameters()).device
    images = [torch.from_numpy(np.ascontiguousarray(d.transpose(2, 0, 1)))[None].to(device)
              for d, _ in pairs]
    scores = {}
    for t in steps:
        restored = [net.restore(x, int(t))[0].permute(1, 2, 0).cpu().numpy() for x in images]
        scores[int(t)] = float(np.mean([psnr(r, c) for r, (_, c) in zip(restored, pairs,
                                                                          strict=True)]))
    return Calibration(task, scores, float(np.mean([psnr(d, c) for d, c in pairs])))
