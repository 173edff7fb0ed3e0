"""The single-pass engine (DESIGN 6): an ordinary NAFNet restoration network trained with
diffusion objectives (EEDTP, Lu, Fu et al. 2025) that restores in one forward pass.

Value ranges: images are in [0, 1] at the API edge (`restore`, every loss function here, the
schedule's sigma_bar); the network itself (`SinglePassNet.forward`) works in [-1, 1].

| code             | paper                                                     |
|------------------|-----------------------------------------------------------|
| `net(x, t)`      | y = x - f(x, t)                                           |
| `t`              | time step; t_mat for a degradation                        |
| `MoEAdaptor`     | MTUL task adaptor: x + s * sum_i w_i E_i(x)               |
| `tmddp_loss`     | || (x_t - f(x_t, t)) - x0 ||_1                            |
| `restoration_loss` | L1(y, gt) + 0.1 L1(FFT(y), FFT(gt))                     |
| `parameter_importance` | Omega = mean |grad L_TMDDP|                         |
| `regulariser`    | sum_k 0.2 Omega_k |dtheta_k| + 0.5 Omega_k^2 dtheta_k^2    |
| `orthogonality_loss` | 1 - cos(g_gen, g_res)                                 |
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..networks.layers import sinusoidal_embedding
from ..networks.unet import UNet
from .config import SinglePassConfig
from .schedule import noisy_input, sample_time_steps

FFT_WEIGHT = 0.1  # weight of the frequency term of the restoration loss
REG_L1 = 0.2  # regulariser: weight of Omega_k |dtheta_k|
REG_L2 = 0.5  # regulariser: weight of Omega_k^2 dtheta_k^2



def to_net_range(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


def from_net_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (not clamped)."""
    return (x + 1.0) * 0.5


def top_k_weights(w: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Router weights (B, E) kept for each image's k heaviest experts, renormalised to sum to
    1, zeros elsewhere; and the (B, k) indices kept. Traceable (the graph runs it too)."""
    top = w.topk(k, dim=1)
    return torch.zeros_like(w).scatter(1, top.indices,
                                       top.values / top.values.sum(1, keepdim=True)), top.indices


class MoEAdaptor(nn.Module):
    """MTUL task adaptor after a decoder level: x + s * sum_i w_i E_i(x), with
    w = softmax(MLP([GAP(x), embed(t_mat)])) and s = 0 at creation (a fresh adaptor is exact
    identity)."""

    def __init__(self, channels: int, embed_dim: int, experts: int) -> None:
        super().__init__()
        c, q = channels, max(1, channels // 4)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, q, 3, padding=1), nn.GELU(),
                          nn.Conv2d(q, q, 3, padding=1), nn.GELU(), nn.Conv2d(q, c, 1))
            for _ in range(experts)
        )
        self.router = nn.Sequential(nn.Linear(c + embed_dim, c), nn.GELU(),
                                    nn.Linear(c, experts))
        self.scale = nn.Parameter(torch.zeros(()))  # s
        self.inference_top_k = 0  # eval mode only: run the k heaviest experts; 0 = all

    def route(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Router weights w: (B, E), each row sums to 1. x: (B, C, H, W); emb: (B, D)."""
        pooled = x.mean(dim=(2, 3))  # (B, C)
        return torch.softmax(self.router(torch.cat([pooled, emb.to(x.dtype)], dim=1)), dim=1)

    fuse_at_inference = True
    """Eval mode: run the chosen experts as three stacked convolutions (`_fused_mixture`)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        w = self.route(x, emb)  # (B, E)
        if self.training:
            mixed = sum(w[:, i, None, None, None] * expert(x)
                        for i, expert in enumerate(self.experts))  # (B, C, H, W)
            return x + self.scale * mixed
        k = self.inference_top_k
        if 0 < k < len(self.experts):
            # top-k routing at inference: keep each image's k heaviest experts, renormalised
            # (B, E) with zeros elsewhere; run the union of the kept experts over the batch
            w, kept = top_k_weights(w, k)
            chosen = sorted(set(kept.flatten().tolist()))
        else:
            chosen = list(range(len(self.experts)))
        if self.fuse_at_inference:
            mixed = self._fused_mixture(x, chosen, w[:, chosen])
        else:
            mixed = sum(w[:, i, None, None, None] * self.experts[i](x) for i in chosen)
        return x + self.scale * mixed

    def _fused_mixture(self, x: torch.Tensor, indices: list[int],
                       w: torch.Tensor) -> torch.Tensor:
        """sum_i w_i E_i(x) over the n experts `indices`, weighted by the columns of w (B, n), as
        three convolutions instead of 3n small ones (`fused_mixture`). Same sum up to
        rounding; far faster for narrow experts."""
        chosen = [self.experts[i] for i in indices]
        return fused_mixture(x, torch.cat([e[0].weight for e in chosen]),
                             torch.cat([e[0].bias for e in chosen]),
                             torch.cat([e[2].weight for e in chosen]),
                             torch.cat([e[2].bias for e in chosen]),
                             torch.cat([e[4].weight for e in chosen], dim=1),
                             torch.stack([e[4].bias for e in chosen]), w,
                             one_image=x.shape[0] == 1)


def fused_mixture(x: torch.Tensor, first_w: torch.Tensor, first_b: torch.Tensor,
                  second_w: torch.Tensor, second_b: torch.Tensor, last_w: torch.Tensor,
                  last_b: torch.Tensor, w: torch.Tensor, *, one_image: bool) -> torch.Tensor:
    """sum_i w_i E_i(x) over n experts (conv 3x3 C -> q, GELU, conv 3x3 q -> q, GELU, conv 1x1
    q -> C), given their weights side by side: the first convolutions stacked (first_w
    (n q, C, 3, 3), first_b (n q)), the second ones as one grouped convolution (second_w
    (n q, q, 3, 3), second_b (n q)), the last 1x1 ones side by side (last_w (C, n q, 1, 1),
    last_b (n, C)) with the router weights w (B, n) folded into the weights (`one_image`, B = 1)
    or applied to the channels (a batch). The torch path and the single-pass graph both run
    it (the graph says `one_image` itself: a traced graph cannot branch on the batch size)."""
    n, q = w.shape[1], second_w.shape[1]
    h = F.gelu(F.conv2d(x, first_w, first_b, padding=1))  # (B, nq, H, W)
    h = F.gelu(F.conv2d(h, second_w, second_b, padding=1, groups=n))
    per_channel = w.repeat_interleave(q, dim=1).to(last_w.dtype)  # (B, nq)
    bias = w.to(last_w.dtype) @ last_b  # (B, C)
    if one_image:
        return F.conv2d(h, last_w * per_channel[0, None, :, None, None], bias[0])
    return F.conv2d(h * per_channel[:, :, None, None], last_w) + bias[:, :, None, None]


class SinglePassNet(UNet):
    """y = x - f(x, t): the NAFNet U-Net of `dtpm_core.networks.unet` with AdaLN conditioning on the
    time step t (DESIGN 6), with optional MoE adaptors after each decoder level; with
    `config.stem` = s the U-Net runs on the image pixel-unshuffled by s (s^2 fewer positions,
    3 s^2 channels), as the initial predictor's stem does."""

    time_mlp: nn.Sequential

    def __init__(self, config: SinglePassConfig) -> None:
        d = config.cond_dim
        # created first (the seeded initialisation depends on it)
        time_mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        adaptor = None
        if config.adaptor_tasks:
            adaptor = functools.partial(MoEAdaptor, embed_dim=d, experts=config.experts)
        channels = 3 * config.stem * config.stem
        super().__init__(embedders={"time_mlp": time_mlp}, in_channels=channels,
                         width=config.width, enc_blocks=config.enc_blocks,
                         middle_blocks=config.middle_blocks, dec_blocks=config.dec_blocks,
                         cond_dim=d, level_adaptor=adaptor, out_channels=channels,
                         stem=config.stem)
        self.config = config

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """embed(t) = MLP(sinusoidal(t)): (B,) integer steps -> (B, cond_dim)."""
        return self.time_mlp(sinusoidal_embedding(t, self.config.cond_dim, scale=1.0))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) degraded (or noisy) image in [-1, 1]; t: (B,) long time steps.
        Returns y = x - f(x, t), (B, 3, H, W) in [-1, 1]."""
        emb = self.time_embedding(t.to(x.device))  # (B, D)
        return x - self.run(x, emb)  # f(x, t) = the U-Net's output (on s x s cells, a stem)

    @torch.no_grad()
    def restore(self, image: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """One-pass restoration at the API edge: (B, 3, H, W) in [0, 1] -> same, clamped.
        t is the matched time step t_mat of the task (an int, or a (B,) tensor)."""
        if isinstance(t, int):
            t = torch.full((image.shape[0],), t, dtype=torch.long, device=image.device)
        return from_net_range(self(to_net_range(image), t)).clamp(0.0, 1.0)

    def set_inference_top_k(self, k: int) -> None:
        """Run only the k experts the router weights most in every adaptor (eval mode;
        0 = all). Changes no weight: files load and save as before."""
        if k < 0:
            raise ConfigError(f"the number of experts to run must be >= 0, got {k}")
        for adaptor in self.adaptors or ():
            adaptor.inference_top_k = k

    def adaptor_parameter_names(self) -> list[str]:
        """Names of the MoE adaptor parameters (empty without adaptors)."""
        return [n for n, _ in self.named_parameters() if n.startswith("adaptors.")]


# ---------------------------------------------------------------------------------------------
# Losses (DESIGN 6). All images in [0, 1]; losses are measured in [0, 1] units.


def tmddp_loss(net: SinglePassNet, clean: torch.Tensor, generator: torch.Generator,
               table: torch.Tensor) -> torch.Tensor:
    """Time-step matched diffusion pre-training loss on clean images (B, 3, H, W) in [0, 1]:
    t ~ U{1..T}, x_t = x0 + sigma_bar_t eps, loss = || (x_t - f(x_t, t)) - x0 ||_1.
    `generator` draws t and eps (it may live on the CPU while the images are elsewhere)."""
    b = clean.shape[0]
    t = sample_time_steps(b, generator, len(table) - 1)  # (B,)
    eps = torch.randn(clean.shape, generator=generator, device=generator.device,
                      dtype=clean.dtype).to(clean.device)  # (B, 3, H, W)
    x_t = noisy_input(clean, t, eps, table)  # [0, 1] units; noise 2 sigma_bar in [-1, 1]
    y = net(to_net_range(x_t), t.to(clean.device))  # x_t - f(x_t, t), in [-1, 1]
    return F.l1_loss(from_net_range(y), clean)


def restoration_loss(y: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L1(y, gt) + 0.1 * L1(FFT(y), FFT(gt)); the FFT term is the mean absolute difference of
    the real and imaginary parts of rfft2. y, gt: (B, 3, H, W) in [0, 1]."""
    diff = torch.fft.rfft2(y.float()) - torch.fft.rfft2(gt.float())  # (B, 3, H, W//2+1) complex
    return F.l1_loss(y, gt) + FFT_WEIGHT * torch.view_as_real(diff).abs().mean()


def trainable_parameters(net: nn.Module) -> dict[str, nn.Parameter]:
    """Named parameters that require gradients, in a stable order."""
    return {n: p for n, p in net.named_parameters() if p.requires_grad}


def parameter_importance(net: SinglePassNet, clean_batches: Iterable[torch.Tensor],
                         table: torch.Tensor, generator: torch.Generator
                         ) -> dict[str, torch.Tensor]:
    """Omega_k = mean over the batches of |dL_TMDDP / dtheta_k|, per parameter element.
    Computed once at the start of a fine-tuning step (the paper uses 50 batches)."""
    params = trainable_parameters(net)
    omega = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for batch in clean_batches:
        loss = tmddp_loss(net, batch, generator, table)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for name, g in zip(params, grads, strict=True):
            if g is not None:
                omega[name] += g.detach().abs()
        count += 1
    if count == 0:
        raise ValueError("parameter_importance needs at least one batch of clean images")
    return {n: o / count for n, o in omega.items()}


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    """theta_0: detached copies of the trainable parameters."""
    return {n: p.detach().clone() for n, p in trainable_parameters(net).items()}


def regulariser(net: nn.Module, theta0: dict[str, torch.Tensor],
                omega: dict[str, torch.Tensor]) -> torch.Tensor:
    """sum_k 0.2 Omega_k |dtheta_k| + 0.5 Omega_k^2 dtheta_k^2, dtheta = theta - theta_0,
    summed over every element of every parameter named in omega."""
    params = dict(net.named_parameters())
    total = torch.zeros((), device=next(net.parameters()).device)
    for name, om in omega.items():
        d = params[name] - theta0[name]  # dtheta_k
        total = total + (REG_L1 * om * d.abs() + REG_L2 * om.square() * d.square()).sum()
    return total


def loss_gradients(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """dloss/dparams with create_graph=True, so that a function of the gradients (the
    orthogonality loss) can itself be back-propagated (double backward). Unused -> zeros."""
    grads = torch.autograd.grad(loss, list(params), create_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def orthogonality_loss(g_gen: Sequence[torch.Tensor],
                       g_res: Sequence[torch.Tensor]) -> torch.Tensor:
    """1 - cos(g_gen, g_res) over the flattened, concatenated gradients (from
    `loss_gradients`, so the term back-propagates into the parameters)."""
    a = torch.cat([g.reshape(-1) for g in g_gen])
    b = torch.cat([g.reshape(-1) for g in g_res])
    return 1.0 - F.cosine_similarity(a, b, dim=0, eps=1e-12)
