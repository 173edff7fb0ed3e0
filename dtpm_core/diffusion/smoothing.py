"""Relative Total Variation (RTV) texture removal, in pure torch.

Xu, Yan, Xia, Jia, "Structure Extraction from Texture via Relative Total Variation",
SIGGRAPH Asia 2012, as in the authors' reference code tsmooth.m.

Symbols (the paper's notation; equation numbers are the paper's):
    I                  input image, S the structure image we solve for, p and q pixels
    (d_x S)_q          forward difference S(q + x) - S(q); zero across the image border
    g_{p,q}            Gaussian of scale sigma, eq. (3)
    D_x(p)             windowed total variation  sum_q g_{p,q} |(d_x S)_q|, eq. (2)
    L_x(p)             windowed inherent variation  |sum_q g_{p,q} (d_x S)_q|, eq. (4)
    RTV objective      sum_p (S_p - I_p)^2 + lam * sum_p D_x(p) / (L_x(p) + eps) + (same in y),
                       eq. (5)

The objective is minimised by iteratively reweighted least squares (section 4): with S fixed
in the weights, the penalty is the quadratic sum_q u_{x,q} w_{x,q} (d_x S)_q^2 (eq. 6, 7), with

    u_{x,q} ~ 1 / max(|(G_sigma * d_x S)_q|, eps)        (inverse windowed inherent variation)
    w_{x,q} =  1 / max(|grad S|_q, eps_s)                  (inverse pixel total variation)

written here exactly as tsmooth.m evaluates them: u drops the second Gaussian of eq. (7),
|grad S| is the isotropic gradient magnitude, both are averaged over the colour channels (one
set of weights shared by all channels) and the small constants are floors, not offsets. In
matrix form (eq. 8) the step is the sparse symmetric positive definite 5-point system

    (Id + lam_t * L_w) v_S = v_I,   L_w = C_x^T U_x W_x C_x + C_y^T U_y W_y C_y       (eq. 9)

with lam_t = lam / 2 (tsmooth.m halves the user's lambda). Each iteration halves sigma, floored
at 0.5. The system is solved matrix-free by conjugate gradients (CG) preconditioned with one
aggregation-multigrid V-cycle (see "The linear system" below): L_w is applied with tensor
shifts, all images and colour channels are solved at once as independent systems sharing one
operator, and each solve is warm-started from the previous S. Because L_w is a weighted graph
Laplacian, Id + lam_t L_w is an M-matrix with unit row sums: the exact S stays inside the range
of I (a maximum principle), so [0, 1] input gives [0, 1] output up to the solver tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

INHERENT_EPS = 1e-3
"""eps of eq. (4)/(5): floor of the windowed inherent variation (vareps in tsmooth.m)."""

MIN_SIGMA = 0.5
"""The Gaussian scale is halved every iteration but never below this (tsmooth.m)."""


@dataclass(frozen=True)
class RTVConfig:
    """Parameters of RTV smoothing; the defaults are those of tsmooth.m."""

    lam: float = 0.01  # lambda of eq. (5); larger removes coarser texture
    sigma: float = 3.0  # Gaussian window scale of eq. (3), in pixels: about the texture size
    sharpness: float = 0.02  # eps_s: floor of |grad S| in w; smaller keeps edges sharper
    iterations: int = 4  # reweighting iterations (linear solves)
    cg_tol: float = 1e-4  # stop PCG when ||b - A x|| <= cg_tol * ||b||, per channel
    cg_max_iter: int = 200  # PCG iteration cap per solve

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lam) and self.lam >= 0.0):
            raise ConfigError(f"RTV lam must be a finite number >= 0, got {self.lam}")
        if not (math.isfinite(self.sigma) and self.sigma > 0.0):
            raise ConfigError(f"RTV sigma must be a finite number > 0, got {self.sigma}")
        if not (math.isfinite(self.sharpness) and self.sharpness > 0.0):
            raise ConfigError(f"RTV sharpness must be a finite number > 0, got {self.sharpness}")
        if self.iterations < 1:
            raise ConfigError(f"RTV iterations must be >= 1, got {self.iterations}")
        if not (math.isfinite(self.cg_tol) and self.cg_tol > 0.0):
            raise ConfigError(f"RTV cg_tol must be a finite number > 0, got {self.cg_tol}")
        if self.cg_max_iter < 1:
            raise ConfigError(f"RTV cg_max_iter must be >= 1, got {self.cg_max_iter}")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def rtv_smooth(image: torch.Tensor, config: RTVConfig = RTVConfig()) -> torch.Tensor:
    """Remove texture from a (B, C, H, W) or (C, H, W) float tensor in [0, 1] with RTV.

    Runs on the tensor's device; half and bfloat16 inputs are computed in float32, float64 in
    float64. Returns a new tensor of the same shape, dtype and device (not differentiable; the
    input is left untouched). Raises ValueError for a wrong number of dimensions, a non-float
    dtype, NaN or infinite values.
    """
    _check_image(image, (3, 4), "(B, C, H, W) or (C, H, W)")
    batched = image.dim() == 4
    work_dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    source = (image if batched else image.unsqueeze(0)).to(work_dtype).contiguous()  # (B,C,H,W)

    smooth = source
    sigma = config.sigma
    lam_t = config.lam / 2.0  # tsmooth.m: lambda = lambda / 2
    for _ in range(config.iterations):
        wx, wy = _texture_weights(smooth, sigma, config.sharpness)  # (B,1,H,W-1), (B,1,H-1,W)
        smooth = _solve_screened_laplacian(source, lam_t * wx, lam_t * wy, smooth,
                                           config.cg_tol, config.cg_max_iter)
        sigma = max(sigma / 2.0, MIN_SIGMA)

    out = smooth if batched else smooth.squeeze(0)
    return out.to(image.dtype)


def rtv_smooth_numpy(image: np.ndarray, config: RTVConfig = RTVConfig()) -> np.ndarray:
    """Remove texture from an (H, W, C) or (H, W) float array in [0, 1]; same shape back.

    A CPU convenience wrapper around `rtv_smooth`; float32 in gives float32 out (float64 stays
    float64). Raises ValueError like `rtv_smooth`.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be a float array with values in [0, 1], got dtype "
                         f"{image.dtype}; convert it first, e.g. image.astype(np.float32) / 255")
    if image.dtype not in (np.float16, np.float32, np.float64):
        image = image.astype(np.float64)  # e.g. longdouble, which torch cannot hold
    gray = image.ndim == 2
    chw = image[None] if gray else np.moveaxis(image, -1, 0)  # (C, H, W)
    tensor = torch.from_numpy(np.ascontiguousarray(chw))
    out = rtv_smooth(tensor, config).numpy()  # (C, H, W)
    return out[0] if gray else np.ascontiguousarray(np.moveaxis(out, 0, -1))


# --------------------------------------------------------------------------------------------
# Weights (eq. 2-7, as evaluated in tsmooth.m)
# --------------------------------------------------------------------------------------------


def _gaussian_taps(sigma: float) -> list[float]:
    """Normalised 1-D Gaussian g of eq. (3), K taps. K as in tsmooth.m's conv2_sep:
    K = round(5 sigma), made odd (radius 7 at sigma = 3, 1 at sigma = 0.5), like fspecial."""
    size = int(math.floor(5.0 * sigma + 0.5)) | 1  # MATLAB bitor(round(5*sigma), 1)
    radius = size // 2
    g = [math.exp(-(t * t) / (2.0 * sigma * sigma)) for t in range(-radius, radius + 1)]
    total = math.fsum(g)
    return [v / total for v in g]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian G_sigma * x of a (N, C, H, W) tensor, replicate (Neumann) border
    (tsmooth.m's conv2 'same' pads with zeros, which darkens the blur near the border).

    Written as K shifted multiply-adds per axis rather than F.conv2d: a single-channel conv
    is ~10x slower on CPU (37 ms vs 4 ms at 512 x 512 x 3), and this runs on any device.
    """
    h, w = x.shape[-2:]
    taps = _gaussian_taps(sigma)
    r = len(taps) // 2
    padded = F.pad(x, (r, r, 0, 0), mode="replicate")  # (N,C,H,W+2r)
    rows = padded[..., :, 0:w] * taps[0]
    for i in range(1, len(taps)):
        rows.add_(padded[..., :, i:i + w], alpha=taps[i])
    padded = F.pad(rows, (0, 0, r, r), mode="replicate")  # (N,C,H+2r,W)
    out = padded[..., 0:h, :] * taps[0]
    for i in range(1, len(taps)):
        out.add_(padded[..., i:i + h, :], alpha=taps[i])
    return out


def _texture_weights(smooth: torch.Tensor, sigma: float,
                     sharpness: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-edge smoothness weights u * w of eq. (6)/(7) from the current S, shape (B, C, H, W).

    Returns (wx, wy): wx[..., i, j] weighs the edge (i, j)-(i, j+1), shape (B, 1, H, W-1);
    wy[..., i, j] weighs (i, j)-(i+1, j), shape (B, 1, H-1, W). Edges across the image border
    do not exist (Neumann boundary; tsmooth.m zeroes retx(:, end) and rety(end, :)).
    """
    channels = smooth.shape[1]
    # Pixel total variation |grad S|_q with forward differences, zero past the last column/row,
    # averaged over channels, and its inverse w = 1 / max(|grad S|, eps_s).
    fx = F.pad(torch.diff(smooth, dim=-1), (0, 1))  # (B,C,H,W)
    fy = F.pad(torch.diff(smooth, dim=-2), (0, 0, 0, 1))  # (B,C,H,W)
    grad_mag = torch.sqrt(fx * fx + fy * fy).sum(dim=1, keepdim=True) / channels  # (B,1,H,W)
    w_tv = 1.0 / grad_mag.clamp_min(sharpness)  # (B,1,H,W)

    # Windowed inherent variation L = |G_sigma * d S| = |d (G_sigma * S)| (eq. 4; the
    # derivative commutes with the blur), averaged over channels, u = 1 / max(L, eps).
    blurred = _gaussian_blur(smooth, sigma)  # (B,C,H,W)
    lx = torch.diff(blurred, dim=-1).abs().sum(dim=1, keepdim=True) / channels  # (B,1,H,W-1)
    ly = torch.diff(blurred, dim=-2).abs().sum(dim=1, keepdim=True) / channels  # (B,1,H-1,W)
    wx = w_tv[..., :, :-1] / lx.clamp_min(INHERENT_EPS)  # (B,1,H,W-1)
    wy = w_tv[..., :-1, :] / ly.clamp_min(INHERENT_EPS)  # (B,1,H-1,W)
    return wx, wy


# --------------------------------------------------------------------------------------------
# The linear system (eq. 9) and its matrix-free PCG solve
# --------------------------------------------------------------------------------------------
#
# Preconditioner: Jacobi alone needs 115-160 PCG iterations per solve on a 512 x 512 photo
# (the edge weights lam_t * u * w reach ~250 in flat regions, so A is badly conditioned). We
# use one symmetric V-cycle of aggregation multigrid instead, which brings this to 20-25:
#
#   * coarse unknowns are 2 x 2 pixel blocks and the prolongation P copies a block's value to
#     its pixels (piecewise constant). The Galerkin coarse operator P^T A P then has the same
#     form as A: a mass term (the number of pixels per block) plus a 5-point weighted graph
#     Laplacian whose edge weights are the sums of the fine edge weights between two blocks.
#     So every level reuses the same stencil code, and the coarse weights follow the image's
#     edges without any tuning (edges inside a block drop out);
#   * smoother: damped Jacobi, one sweep before and one after the coarse correction; with a
#     zero initial guess this makes the V-cycle a symmetric positive definite operator, as CG
#     requires;
#   * the weights of a block edge add up 2 fine edges while the mass adds up 4 pixels, so the
#     ratio weight/mass (the conditioning) halves per level; on the coarsest level, a few
#     pixels across, Jacobi alone is accurate;
#   * inside the V-cycle, A is applied in coefficient form (diag(A) x minus the weighted
#     neighbours, 5 memory passes); the CG operator keeps the more accurate flux form.

JACOBI_DAMPING = 0.8
"""omega of the damped-Jacobi smoother; < 1 keeps the V-cycle positive definite."""

COARSEST_SIZE = 4
"""Stop coarsening once the shorter image side is at most this many pixels."""


class _Level(NamedTuple):
    """One multigrid level: A = diag(mass) + C_x^T diag(ax) C_x + C_y^T diag(ay) C_y."""

    ax: torch.Tensor  # (N,1,h,w-1) weights of the edges (i, j)-(i, j+1)
    ay: torch.Tensor  # (N,1,h-1,w) weights of the edges (i, j)-(i+1, j)
    mass: torch.Tensor | None  # (N,1,h,w) pixels per block; None on the finest level (= 1)
    diag: torch.Tensor  # (N,1,h,w) diag(A)
    smoother: torch.Tensor  # (N,1,h,w) omega / diag(A)


def _apply_system(x: torch.Tensor, level: _Level) -> torch.Tensor:
    """A x for x of shape (N, C, h, w), every channel with the same operator.

    C_x^T diag(ax) C_x x is the divergence of fluxes: the flux ax * (x_right - x_left) leaves
    the left pixel and enters the right one. No flux crosses the image border, which is the
    Neumann boundary of tsmooth.m (zero weights on the last column/row).
    """
    flux_x = torch.diff(x, dim=-1).mul_(level.ax)  # (N,C,h,w-1)
    flux_y = torch.diff(x, dim=-2).mul_(level.ay)  # (N,C,h-1,w)
    out = x.clone() if level.mass is None else x * level.mass  # (N,C,h,w)
    out[..., :, :-1] -= flux_x
    out[..., :, 1:] += flux_x
    out[..., :-1, :] -= flux_y
    out[..., 1:, :] += flux_y
    return out


def _residual_stencil(r: torch.Tensor, x: torch.Tensor, level: _Level) -> torch.Tensor:
    """r - A x in coefficient form: r - diag(A) x + (the weighted neighbours of x).

    5 passes over memory instead of 9 for the flux form, but rounding grows with diag(A) * x
    rather than with the differences of x, so it is only used inside the preconditioner.
    """
    out = torch.addcmul(r, level.diag, x, value=-1.0)  # (N,C,h,w)
    out[..., :, :-1].addcmul_(level.ax, x[..., :, 1:])  # right neighbours
    out[..., :, 1:].addcmul_(level.ax, x[..., :, :-1])  # left neighbours
    out[..., :-1, :].addcmul_(level.ay, x[..., 1:, :])  # lower neighbours
    out[..., 1:, :].addcmul_(level.ay, x[..., :-1, :])  # upper neighbours
    return out


def _make_level(ax: torch.Tensor, ay: torch.Tensor, mass: torch.Tensor | None) -> _Level:
    """Level with its Jacobi smoother omega / diag(A): diag = mass + weights of the pixel's
    (up to 4) edges."""
    diag = (F.pad(ax, (1, 0)) + F.pad(ax, (0, 1))
            + F.pad(ay, (0, 0, 1, 0)) + F.pad(ay, (0, 0, 0, 1)))  # (N,1,h,w)
    diag = diag + 1.0 if mass is None else diag + mass
    return _Level(ax, ay, mass, diag, JACOBI_DAMPING / diag)


def _restrict(x: torch.Tensor) -> torch.Tensor:
    """P^T x: sums over 2 x 2 blocks, (N, C, h, w) -> (N, C, ceil(h/2), ceil(w/2)); a block
    cut by an odd border has fewer pixels (zero padding)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    rows = x[..., 0::2, :] + x[..., 1::2, :]  # (N,C,h/2,w); strided adds beat avg_pool2d
    return rows[..., 0::2] + rows[..., 1::2]  # (N,C,h/2,w/2)


def _prolong_add(x: torch.Tensor, coarse: torch.Tensor) -> None:
    """x += P coarse in place: every pixel gets the value of its 2 x 2 block."""
    n, c, h, w = x.shape
    hc, wc = coarse.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        x.view(n, c, hc, 2, wc, 2).add_(coarse[:, :, :, None, :, None])
    else:
        x.add_(F.interpolate(coarse, size=(2 * hc, 2 * wc), mode="nearest")[..., :h, :w])


def _coarsen(level: _Level) -> _Level:
    """Galerkin coarse level P^T A P of a level of size (h, w), h, w >= 2."""
    ax, ay = level.ax, level.ay
    n, _, h, w = level.smoother.shape
    hc, wc = (h + 1) // 2, (w + 1) // 2
    mass = torch.ones_like(level.smoother) if level.mass is None else level.mass
    # Coarse edge (I, J)-(I, J+1) gathers the fine edges between columns 2J+1 and 2J+2 of
    # rows 2I and 2I+1: odd fine x-edges, summed over row pairs. Likewise in y.
    ax_c = F.pad(ax[..., :, 1::2], (0, 0, 0, h % 2)).reshape(n, 1, hc, 2, wc - 1).sum(dim=3)
    ay_c = F.pad(ay[..., 1::2, :], (0, w % 2)).reshape(n, 1, hc - 1, wc, 2).sum(dim=4)
    return _make_level(ax_c, ay_c, _restrict(mass))


def _build_hierarchy(ax: torch.Tensor, ay: torch.Tensor) -> list[_Level]:
    """Levels from the finest (the system of eq. 9) down to a side of at most COARSEST_SIZE."""
    levels = [_make_level(ax, ay, None)]
    while min(levels[-1].smoother.shape[-2:]) > COARSEST_SIZE:
        levels.append(_coarsen(levels[-1]))
    return levels


def _v_cycle(levels: list[_Level], r: torch.Tensor, k: int = 0) -> torch.Tensor:
    """Approximate A_k^{-1} r (r: (N, C, h, w)) by one V-cycle from level k; symmetric in r."""
    level = levels[k]
    e = r * level.smoother  # pre-smoothing from e = 0
    if k + 1 == len(levels):
        return e  # coarsest level: Jacobi only
    residual = _residual_stencil(r, e, level)
    _prolong_add(e, _v_cycle(levels, _restrict(residual), k + 1))  # coarse correction
    return e.addcmul_(_residual_stencil(r, e, level), level.smoother)  # post-smoothing


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-system inner products <a, b> over (h, w): (N, C, h, w) x2 -> (N, C, 1, 1).

    Not einsum: on CPU that becomes an MKL bmm whose thread pool stalls for ~5 ms per call,
    whatever the size, when other processes share the cores.
    """
    return (a * b).sum(dim=(-2, -1), keepdim=True)


def _solve_screened_laplacian(rhs: torch.Tensor, ax: torch.Tensor, ay: torch.Tensor,
                              x0: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Solve A x = rhs (eq. 9) for every image and channel at once by multigrid-PCG.

    rhs, x0: (N, C, H, W); ax (N,1,H,W-1), ay (N,1,H-1,W): the edge weights lam_t * u * w,
    shared by the channels. Each of the N * C systems stops updating once
    ||rhs - A x|| <= tol * ||rhs||; the loop ends when all have, or after max_iter iterations.
    """
    levels = _build_hierarchy(ax, ay)
    finest = levels[0]
    tiny = torch.finfo(rhs.dtype).tiny
    x = x0.clone()
    r = rhs - _apply_system(x, finest)  # residual, (N,C,H,W)
    z = _v_cycle(levels, r)  # preconditioned residual
    p = z.clone()  # search direction
    rz = _dot(r, z)  # (N,C,1,1)
    target = (tol * tol) * _dot(rhs, rhs)  # squared residual norm to reach, (N,C,1,1)
    check_every = 1 if rhs.device.type == "cpu" else 4  # each check is a device sync
    for it in range(max_iter):
        active = _dot(r, r) > target  # (N,C,1,1) bool; converged systems stop moving
        if it % check_every == 0 and not bool(active.any()):
            break
        q = _apply_system(p, finest)
        alpha = torch.where(active, rz / _dot(p, q).clamp_min(tiny), 0.0)  # step length
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, q, value=-1.0)
        z = _v_cycle(levels, r)
        rz_next = _dot(r, z)
        beta = torch.where(active, rz_next / rz.clamp_min(tiny), 0.0)  # conjugation
        p = z.addcmul_(beta, p)
        rz = rz_next
    return x


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _check_image(image: torch.Tensor, ndims: tuple[int, ...], layout: str) -> None:
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.dim() not in ndims:
        raise ValueError(f"image must have shape {layout}, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"image must be a float tensor with values in [0, 1], got dtype "
                         f"{image.dtype}; convert it first, e.g. image.float() / 255")
    if image.numel() == 0:
        raise ValueError(f"image must have at least one image, channel and pixel, got shape "
                         f"{tuple(image.shape)}")
    if not bool(torch.isfinite(image).all()):
        raise ValueError("image contains NaN or infinite values")
