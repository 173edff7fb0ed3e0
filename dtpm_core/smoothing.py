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
at 0.5. The system is solved matrix-free by preconditioned conjugate gradients (PCG): L_w is
applied with tensor shifts, all images and colour channels are solved at once as independent
systems, and each solve is warm-started from the previous S. Because L_w is a weighted graph
Laplacian, Id + lam_t L_w is an M-matrix with unit row sums: the exact S stays inside the range
of I (a maximum principle), so [0, 1] input gives [0, 1] output up to the solver tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

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


def rtv_smooth(image: torch.Tensor, config: RTVConfig = RTVConfig()) -> torch.Tensor:  # noqa: B008
    """Remove texture from a (B, C, H, W) or (C, H, W) float tensor in [0, 1] with RTV.

    Runs on the tensor's device; half and bfloat16 inputs are computed in float32, float64 in
    float64. Returns a tensor of the same shape, dtype and device. Raises ValueError for a
    wrong number of dimensions, a non-floating dtype, NaN or infinite values.
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


def rtv_smooth_numpy(image: np.ndarray, config: RTVConfig = RTVConfig()) -> np.ndarray:  # noqa: B008
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
    gray = image.ndim == 2
    chw = image[None] if gray else np.moveaxis(image, -1, 0)  # (C, H, W)
    tensor = torch.from_numpy(np.ascontiguousarray(chw))
    out = rtv_smooth(tensor, config).numpy()  # (C, H, W)
    return out[0] if gray else np.ascontiguousarray(np.moveaxis(out, 0, -1))


# --------------------------------------------------------------------------------------------
# Weights (eq. 2-7, as evaluated in tsmooth.m)
# --------------------------------------------------------------------------------------------


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian g of eq. (3), shape (K,). K as in tsmooth.m's conv2_sep:
    K = round(5 sigma), made odd (radius 7 at sigma = 3, 1 at sigma = 0.5), like fspecial."""
    size = int(math.floor(5.0 * sigma + 0.5)) | 1  # MATLAB bitor(round(5*sigma), 1)
    radius = size // 2
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t * t) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian G_sigma * x of a (N, C, H, W) tensor, replicate (Neumann) border."""
    n, c, h, w = x.shape
    g = _gaussian_kernel(sigma, x.dtype, x.device)
    r = g.numel() // 2
    planes = x.reshape(n * c, 1, h, w)
    planes = F.conv2d(F.pad(planes, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    planes = F.conv2d(F.pad(planes, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    return planes.reshape(n, c, h, w)


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


def _apply_system(x: torch.Tensor, ax: torch.Tensor, ay: torch.Tensor) -> torch.Tensor:
    """A x = (Id + C_x^T A_x C_x + C_y^T A_y C_y) x for x of shape (N, C, H, W).

    ax (N,1,H,W-1) and ay (N,1,H-1,W) are the edge weights lam_t * u * w. C_x^T A_x C_x x is
    a divergence of fluxes: the flux ax * (x_right - x_left) leaves the left pixel and enters
    the right one; with no flux across the border this is the Neumann 5-point operator.
    """
    flux_x = ax * torch.diff(x, dim=-1)  # (N,C,H,W-1)
    flux_y = ay * torch.diff(x, dim=-2)  # (N,C,H-1,W)
    out = x.clone()
    out[..., :, :-1] -= flux_x
    out[..., :, 1:] += flux_x
    out[..., :-1, :] -= flux_y
    out[..., 1:, :] += flux_y
    return out


def _system_diagonal(ax: torch.Tensor, ay: torch.Tensor) -> torch.Tensor:
    """Diagonal of A: 1 + the sum of the weights of a pixel's (up to 4) edges, (N,1,H,W)."""
    return (1.0 + F.pad(ax, (1, 0)) + F.pad(ax, (0, 1))
            + F.pad(ay, (0, 0, 1, 0)) + F.pad(ay, (0, 0, 0, 1)))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-system inner products <a, b> over (H, W): (N, C, H, W) x2 -> (N, C, 1, 1)."""
    return torch.einsum("nchw,nchw->nc", a, b)[..., None, None]


def _solve_screened_laplacian(rhs: torch.Tensor, ax: torch.Tensor, ay: torch.Tensor,
                              x0: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Solve A x = rhs (eq. 9) for every image and channel at once by Jacobi-preconditioned CG.

    rhs, x0: (N, C, H, W); ax, ay: edge weights as in `_apply_system`, shared by the channels.
    Each of the N * C systems stops updating once ||r|| <= tol * ||rhs||; the loop ends when
    all have, or after max_iter iterations.
    """
    inv_diag = 1.0 / _system_diagonal(ax, ay)  # (N,1,H,W)
    tiny = torch.finfo(rhs.dtype).tiny
    x = x0.clone()
    r = rhs - _apply_system(x, ax, ay)  # residual, (N,C,H,W)
    z = r * inv_diag  # preconditioned residual
    p = z.clone()  # search direction
    rz = _dot(r, z)  # (N,C,1,1)
    target = (tol * tol) * _dot(rhs, rhs)  # squared residual norm to reach, (N,C,1,1)
    check_every = 1 if rhs.device.type == "cpu" else 4  # each check is a device sync
    for it in range(max_iter):
        active = _dot(r, r) > target  # (N,C,1,1) bool
        if it % check_every == 0 and not bool(active.any()):
            break
        q = _apply_system(p, ax, ay)
        alpha = torch.where(active, rz / _dot(p, q).clamp_min(tiny), 0.0)  # step length
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, q, value=-1.0)
        z = r * inv_diag
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
    if image.shape[-1] == 0 or image.shape[-2] == 0 or image.shape[-3] == 0:
        raise ValueError(f"image must have at least one channel and pixel, got shape "
                         f"{tuple(image.shape)}")
    if not bool(torch.isfinite(image).all()):
        raise ValueError("image contains NaN or infinite values")
