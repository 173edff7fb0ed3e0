"""The single-pass training objectives as loss modules for the shared loop: TMDDP
pre-training, and GEF fine-tuning (restoration loss, with probability p the generative loss,
the Omega-weighted regulariser towards theta_0 and the gradient-orthogonality term).

The anchor of a fine-tuning run (theta_0 and Omega) is computed once when the run starts and
stored in the run folder, so that a resumed run uses exactly the same anchor.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dtpm_core.singlepass.network import (
    SinglePassNet,
    from_net_range,
    loss_gradients,
    orthogonality_loss,
    parameter_importance,
    regulariser,
    restoration_loss,
    snapshot,
    tmddp_loss,
    to_net_range,
    trainable_parameters,
)
from dtpm_core.singlepass.schedule import sigma_bars

from ..checkpoint import CheckpointError, load_training_state, save_training_state
from ..config import SinglePassTrainConfig

ANCHOR_NAME = "anchor.pt"


class TMDDPLoss(nn.Module):
    """Time-step matched diffusion pre-training on clean crops."""

    def __init__(self, net: SinglePassNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("table", sigma_bars(net.config.num_steps).float(),
                             persistent=False)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        return tmddp_loss(self.net, batch["clean"], generator, self.table)


@dataclass
class Anchor:
    """theta_0 (the weights fine-tuning starts from) and Omega (per-element importance)."""

    theta0: dict[str, torch.Tensor]
    omega: dict[str, torch.Tensor]

    def to(self, device: torch.device) -> Anchor:
        return Anchor({k: v.to(device) for k, v in self.theta0.items()},
                      {k: v.to(device) for k, v in self.omega.items()})


def compute_anchor(net: SinglePassNet, clean_batches: Iterator[torch.Tensor], count: int,
                   seed: int) -> Anchor:
    """theta_0 = the current weights; Omega = mean |grad L_TMDDP| over `count` batches."""
    table = sigma_bars(net.config.num_steps).float()
    generator = torch.Generator().manual_seed(seed)
    batches = (next(clean_batches) for _ in range(count))
    omega = parameter_importance(net, batches, table, generator)
    net.zero_grad(set_to_none=True)
    return Anchor(snapshot(net), omega)


def save_anchor(run_dir: Path, anchor: Anchor) -> None:
    save_training_state(Path(run_dir) / ANCHOR_NAME,
                        {"theta0": anchor.theta0, "omega": anchor.omega})


def load_anchor(run_dir: Path) -> Anchor | None:
    path = Path(run_dir) / ANCHOR_NAME
    if not path.is_file():
        return None
    remedy = "delete the run folder to start the fine-tuning over"
    state = load_training_state(path, "anchor file", remedy)
    try:
        return Anchor(dict(state["theta0"]), dict(state["omega"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"anchor file {path} lacks theta0/omega ({exc}); {remedy}") \
            from exc


class GEFLoss(nn.Module):
    """Generative-endowed fine-tuning (DESIGN 6). Batches hold `degraded`, `clean` (both
    (B, 3, H, W) in [0, 1]) and `t` ((B,) matched time steps)."""

    def __init__(self, net: SinglePassNet, settings: SinglePassTrainConfig,
                 anchor: Anchor | None) -> None:
        super().__init__()
        self.net, self.settings, self.anchor = net, settings, anchor
        if settings.regulariser and anchor is None:
            raise ValueError("the regulariser needs an anchor (theta_0, Omega)")
        self.register_buffer("table", sigma_bars(net.config.num_steps).float(),
                             persistent=False)
        self.last_terms: dict[str, float] = {}

    def restoration(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self.net(to_net_range(batch["degraded"]), batch["t"])  # x_d - f(x_d, t_mat)
        return restoration_loss(from_net_range(y), batch["clean"])

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        l_res = self.restoration(batch)
        coin = torch.rand((), generator=generator, device=generator.device).item()
        if not s.diffusion_terms or coin >= s.gen_probability:
            self.last_terms = {"restoration": l_res.item()}
            return l_res
        params = list(trainable_parameters(self.net).values())
        l_gen = tmddp_loss(self.net, batch["clean"], generator, self.table)
        total, terms = l_res, {"restoration": l_res.item(), "generative": l_gen.item()}
        if s.generative:
            total = total + s.gen_weight * l_gen
        if s.regulariser:
            anchor = self.anchor.to(l_res.device)  # type: ignore[union-attr]
            reg = regulariser(self.net, anchor.theta0, anchor.omega)
            total, terms["regulariser"] = total + reg, reg.item()
        if s.orthogonality == "loss":  # 1 - cos, back-propagated through both gradients
            orth = orthogonality_loss(loss_gradients(l_gen, params),
                                      loss_gradients(l_res, params))
            total, terms["orthogonality"] = total + s.orth_weight * orth, orth.item()
        elif s.orthogonality == "detached":  # the reference code: a constant, no gradient
            with torch.no_grad():
                g_gen = torch.autograd.grad(l_gen, params, retain_graph=True, allow_unused=True)
                g_res = torch.autograd.grad(l_res, params, retain_graph=True, allow_unused=True)
            orth = orthogonality_loss([_dense(g, p) for g, p in zip(g_gen, params, strict=True)],
                                      [_dense(g, p) for g, p in zip(g_res, params, strict=True)])
            total, terms["orthogonality"] = total + s.orth_weight * orth.detach(), orth.item()
        elif s.orthogonality == "projection":
            total = total - l_res + _projected_surrogate(l_res, l_gen, params)
        self.last_terms = terms
        return total


def _dense(g: torch.Tensor | None, p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p) if g is None else g


def _projected_surrogate(l_res: torch.Tensor, l_gen: torch.Tensor,
                         params: list[nn.Parameter]) -> torch.Tensor:
    """A stand-in for l_res with the same value whose gradient is the restoration gradient
    with its component against the generative gradient removed (PCGrad):
    g_res - min(0, <g_res, g_gen>) / |g_gen|^2 * g_gen."""
    g_res = [_dense(g, p) for g, p in zip(
        torch.autograd.grad(l_res, params, retain_graph=True, allow_unused=True), params,
        strict=True)]
    g_gen = [_dense(g, p) for g, p in zip(
        torch.autograd.grad(l_gen, params, retain_graph=True, allow_unused=True), params,
        strict=True)]
    dot = sum((a * b).sum() for a, b in zip(g_res, g_gen, strict=True))
    norm2 = sum(b.square().sum() for b in g_gen)
    coef = torch.clamp(dot, max=0.0) / norm2.clamp_min(1e-24)
    projected = [a - coef * b for a, b in zip(g_res, g_gen, strict=True)]
    linear = sum((p * g.detach()).sum() for p, g in zip(params, projected, strict=True))
    return l_res.detach() + linear - linear.detach()
