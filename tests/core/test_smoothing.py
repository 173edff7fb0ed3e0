"""Tests of RTV texture removal (dtpm_core.diffusion.smoothing): behaviour on synthetic and real
textures, agreement of the matrix-free multigrid-PCG solve with an exact sparse solve, batch
and layout handling, and input validation. All CPU, seeded, well under a second each."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import skimage.data
import torch

from dtpm_core.diffusion.smoothing import (
    RTVConfig,
    _gaussian_taps,
    _solve_screened_laplacian,
    _texture_weights,
    rtv_smooth,
    rtv_smooth_numpy,
)

# --------------------------------------------------------------------------------------------
# An independent float64 numpy/scipy reference of tsmooth.m (exact sparse solves)
# --------------------------------------------------------------------------------------------


def _ref_weights(s: np.ndarray, sigma: float, sharpness: float) -> tuple[np.ndarray, np.ndarray]:
    """tsmooth.m's computeTextureWeights for s of shape (H, W, C); returns (H, W) maps retx,
    rety where retx[i, j] weighs the edge (i, j)-(i, j+1) and the last column/row is zero."""
    c = s.shape[2]
    fx = np.zeros_like(s)
    fx[:, :-1] = np.diff(s, axis=1)
    fy = np.zeros_like(s)
    fy[:-1] = np.diff(s, axis=0)
    wto = 1.0 / np.maximum(np.sqrt(fx**2 + fy**2).sum(axis=2) / c, sharpness)
    size = int(math.floor(5 * sigma + 0.5)) | 1
    t = np.arange(size) - size // 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    g /= g.sum()
    blurred = ndi.correlate1d(ndi.correlate1d(s, g, axis=1, mode="nearest"), g, axis=0,
                              mode="nearest")
    gfx = np.zeros_like(s)
    gfx[:, :-1] = np.diff(blurred, axis=1)
    gfy = np.zeros_like(s)
    gfy[:-1] = np.diff(blurred, axis=0)
    wx = wto / np.maximum(np.abs(gfx).sum(axis=2) / c, 1e-3)
    wy = wto / np.maximum(np.abs(gfy).sum(axis=2) / c, 1e-3)
    wx[:, -1] = 0.0
    wy[-1, :] = 0.0
    return wx, wy


def _ref_matrix(wx: np.ndarray, wy: np.ndarray, lam_t: float) -> sp.csc_matrix:
    """Id + lam_t * L_w as a scipy sparse matrix, pixels numbered row-major (p = i * W + j)."""
    h, w = wx.shape
    ex = (lam_t * wx).ravel()  # edge p -> p + 1, zero on the last column
    ey = (lam_t * wy).ravel()  # edge p -> p + w, zero on the last row
    diag = 1.0 + ex + ey + np.roll(ex, 1) + np.roll(ey, w)  # rolled-in entries are zeros
    return sp.diags([diag, -ex[:-1], -ex[:-1], -ey[:-w], -ey[:-w]], [0, 1, -1, w, -w],
                    format="csc")


def _ref_rtv(image: np.ndarray, config: RTVConfig) -> np.ndarray:
    """Whole RTV with exact sparse LU solves; image (H, W, C) -> (H, W, C), float64."""
    source = image.astype(np.float64)
    h, w, c = source.shape
    s, sigma = source, config.sigma
    for _ in range(config.iterations):
        wx, wy = _ref_weights(s, sigma, config.sharpness)
        lu = spla.splu(_ref_matrix(wx, wy, config.lam / 2.0))
        s = lu.solve(source.reshape(h * w, c)).reshape(h, w, c)
        sigma = max(sigma / 2.0, 0.5)
    return s


# --------------------------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------------------------

STEP = 48  # column of the step edge in the 96 x 96 synthetic images


def _step_image(texture: str, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(textured, clean) float32 (size, size) images: a 0.2 | 0.8 step plus texture."""
    yy, xx = np.mgrid[0:size, 0:size]
    clean = np.where(xx < STEP, 0.2, 0.8)
    if texture == "checkerboard":
        tex = 0.1 * np.where((xx + yy) % 2 == 0, 1.0, -1.0)  # period 2
    elif texture == "sinusoid":
        tex = 0.1 * np.sin(2 * np.pi * xx / 4) * np.sin(2 * np.pi * yy / 4)  # period 4
    else:
        tex = np.random.default_rng(0).uniform(-0.1, 0.1, clean.shape)
    return (clean + tex).astype(np.float32), clean.astype(np.float32)


def _textured_rgb(h: int, w: int, seed: int) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1]: a different step per channel plus seeded texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.where(xx < w // 2, 0.25, 0.7), np.where(yy < h // 3, 0.6, 0.3),
                     np.where(xx + yy < (h + w) // 2, 0.4, 0.8)], axis=-1)
    tex = 0.08 * np.sin(2 * np.pi * (xx + 2 * yy) / 3)[..., None] + rng.uniform(-0.05, 0.05,
                                                                              base.shape)
    return np.clip(base + tex, 0.0, 1.0).astype(np.float32)


def _gradient_energy(a: np.ndarray) -> float:
    return float((np.diff(a, axis=0) ** 2).sum() + (np.diff(a, axis=1) ** 2).sum())


def _to_tensor(image_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(image_hwc, -1, 0)))  # (C,H,W)


# --------------------------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("texture", ["checkerboard", "sinusoid", "noise"])
def test_removes_fine_texture_and_keeps_step_edge(texture: str) -> None:
    image, clean = _step_image(texture)
    out = rtv_smooth_numpy(image)
    cols = np.arange(image.shape[1])

    # Texture energy (residual against the clean step), away from the edge: >= 80% removed.
    away = np.abs(cols - STEP + 0.5) > 6
    before = ((image - clean)[:, away] ** 2).sum()
    after = ((out - clean)[:, away] ** 2).sum()
    assert after <= 0.2 * before, f"only {1 - after / before:.1%} of the texture removed"
    # The same with a texture-agnostic measure: energy of (image - 5 x 5 box blur).
    def high_pass(a: np.ndarray) -> float:
        return float(((a - ndi.uniform_filter(a, 5, mode="nearest"))[:, away] ** 2).sum())

    assert high_pass(out) <= 0.2 * high_pass(image)

    # Edge contrast within 10% of 0.6.
    left = out[:, 5:STEP - 10].mean(axis=1)  # (H,)
    right = out[:, STEP + 10:-5].mean(axis=1)
    assert abs(float((right - left).mean()) - 0.6) < 0.06

    # Sharp transition: in every row, 90% of the step happens within the 4 pixels around it.
    rise = out[:, STEP + 1] - out[:, STEP - 2]
    assert np.all(rise >= 0.9 * (right - left))


@pytest.mark.parametrize(("name", "max_ratio"), [("gravel", 0.35), ("brick", 0.7)])
def test_real_texture_loses_most_gradient_energy(name: str, max_ratio: float) -> None:
    image = getattr(skimage.data, name)()[:128, :128].astype(np.float32) / 255.0  # (128,128)
    out = rtv_smooth_numpy(image)
    ratio = _gradient_energy(out) / _gradient_energy(image)
    assert ratio < max_ratio, f"{name}: gradient energy only down to {ratio:.2f}"
    # A is symmetric with unit row sums, so the solves preserve the mean.
    assert abs(float(out.mean()) - float(image.mean())) < 0.01


# --------------------------------------------------------------------------------------------
# Agreement with exact sparse solves
# --------------------------------------------------------------------------------------------


def test_gaussian_window_size_as_tsmooth() -> None:
    # tsmooth.m: ksize = bitor(round(5 * sigma), 1) for sigma = 3, 1.5, 0.75, 0.5.
    assert [len(_gaussian_taps(s)) for s in (3.0, 1.5, 0.75, 0.5)] == [15, 9, 5, 3]
    assert math.isclose(sum(_gaussian_taps(3.0)), 1.0)


def test_weights_match_reference() -> None:
    image = _textured_rgb(40, 52, seed=1)
    wx, wy = _texture_weights(_to_tensor(image)[None], 1.5, 0.02)  # (1,1,H,W-1), (1,1,H-1,W)
    ref_x, ref_y = _ref_weights(image.astype(np.float64), 1.5, 0.02)
    np.testing.assert_allclose(wx[0, 0].numpy(), ref_x[:, :-1], rtol=1e-4)
    np.testing.assert_allclose(wy[0, 0].numpy(), ref_y[:-1, :], rtol=1e-4)


@pytest.mark.parametrize(("h", "w"), [(64, 64), (75, 66)])  # 75 x 66: odd multigrid levels
def test_pcg_solve_matches_exact_sparse_solve(h: int, w: int) -> None:
    image = _textured_rgb(h, w, seed=2)
    source = _to_tensor(image)[None]  # (1,3,H,W)
    lam_t = 0.005
    wx, wy = _texture_weights(source, 3.0, 0.02)
    solved = _solve_screened_laplacian(source, lam_t * wx, lam_t * wy, source.clone(),
                                       tol=1e-4, max_iter=200)
    x_pad = np.pad(wx[0, 0].double().numpy(), ((0, 0), (0, 1)))  # (H,W), last column 0
    y_pad = np.pad(wy[0, 0].double().numpy(), ((0, 1), (0, 0)))  # (H,W), last row 0
    exact = spla.spsolve(_ref_matrix(x_pad, y_pad, lam_t), image.reshape(h * w, 3).astype(
        np.float64)).reshape(h, w, 3)
    got = solved[0].permute(1, 2, 0).double().numpy()
    assert np.abs(got - exact).max() < 2e-3
    assert np.sqrt(((got - exact) ** 2).mean()) < 2e-4


def test_rtv_matches_exact_reference_pipeline() -> None:
    image = _textured_rgb(64, 64, seed=3)
    config = RTVConfig()
    got = rtv_smooth_numpy(image, config)
    exact = _ref_rtv(image, config)
    assert np.abs(got - exact).max() < 2e-3


# --------------------------------------------------------------------------------------------
# Shapes, batches, dtypes, wrappers
# --------------------------------------------------------------------------------------------


def test_batch_equals_images_processed_alone() -> None:
    a = _to_tensor(_textured_rgb(75, 66, seed=4))
    b = _to_tensor(_textured_rgb(75, 66, seed=5)).flip(-1).contiguous()
    batch = rtv_smooth(torch.stack([a, b]))  # (2,3,75,66)
    assert batch.shape == (2, 3, 75, 66)
    torch.testing.assert_close(batch[0], rtv_smooth(a), atol=1e-4, rtol=0)
    torch.testing.assert_close(batch[1], rtv_smooth(b), atol=1e-4, rtol=0)


def test_identical_channels_match_single_channel() -> None:
    # A grey image given as 3 identical channels behaves like the 1-channel image.
    grey = _step_image("noise", size=48)[0]
    one = rtv_smooth(torch.from_numpy(grey)[None])  # (1,H,W)
    three = rtv_smooth(torch.from_numpy(grey)[None].repeat(3, 1, 1))  # (3,H,W)
    for c in range(3):
        torch.testing.assert_close(three[c], one[0], atol=1e-5, rtol=0)


def test_numpy_wrapper_matches_tensor_path() -> None:
    image = _textured_rgb(48, 56, seed=6)
    out = rtv_smooth_numpy(image)
    assert out.shape == image.shape and out.dtype == np.float32
    expected = rtv_smooth(_to_tensor(image)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6, rtol=0)


def test_grayscale_numpy_and_range() -> None:
    image = _step_image("checkerboard", size=40)[0]
    out = rtv_smooth_numpy(image)
    assert out.shape == (40, 40) and out.dtype == np.float32
    np.testing.assert_allclose(out, rtv_smooth(torch.from_numpy(image)[None])[0].numpy(),
                               atol=1e-6, rtol=0)
    # Maximum principle of (Id + lam L_w): output stays within the input's range.
    assert out.min() >= image.min() - 1e-3 and out.max() <= image.max() + 1e-3


@pytest.mark.parametrize("shape", [(3, 1, 1), (1, 1, 9), (2, 7, 1), (3, 2, 2), (1, 33, 5)])
def test_tiny_and_degenerate_shapes(shape: tuple[int, ...]) -> None:
    image = torch.rand(shape, generator=torch.Generator().manual_seed(7))
    out = rtv_smooth(image)
    assert out.shape == image.shape
    assert torch.isfinite(out).all()
    assert out.min() >= -1e-3 and out.max() <= 1 + 1e-3


def test_input_untouched_and_grad_free() -> None:
    image = _to_tensor(_textured_rgb(24, 24, seed=10)).requires_grad_(True)
    before = image.detach().clone()
    out = rtv_smooth(image)
    assert not out.requires_grad
    assert torch.equal(image.detach(), before)


def test_constant_image_is_unchanged() -> None:
    image = torch.full((2, 3, 20, 30), 0.37)
    torch.testing.assert_close(rtv_smooth(image), image, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes(dtype: torch.dtype) -> None:
    image = _to_tensor(_textured_rgb(32, 40, seed=8))
    out = rtv_smooth(image.to(dtype))
    assert out.dtype == dtype and out.shape == image.shape
    tol = 1e-3 if dtype == torch.float64 else 2e-2  # input rounding, then output rounding
    torch.testing.assert_close(out.float(), rtv_smooth(image), atol=tol, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    image = _to_tensor(_textured_rgb(96, 80, seed=9))[None]
    out = rtv_smooth(image.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), rtv_smooth(image), atol=1e-3, rtol=0)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (torch.rand(8, 8), "shape"),
        (torch.rand(1, 1, 1, 8, 8), "shape"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), "float"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), "float"),
        (torch.tensor([[[0.5, float("nan")]]]), "NaN"),
        (torch.tensor([[[0.5, float("inf")]]]), "NaN or infinite"),
        (torch.rand(3, 0, 8), "at least one"),
        ([[0.5]], "torch.Tensor"),
    ],
)
def test_bad_tensor_input_raises(image: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rtv_smooth(image)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((8,), np.float32), "shape"),
        (np.zeros((2, 8, 8, 3), np.float32), "shape"),
        (np.zeros((8, 8, 3), np.uint8), "float"),
        (np.full((8, 8), np.nan, np.float32), "NaN"),
        (torch.rand(8, 8), "numpy array"),
    ],
)
def test_bad_numpy_input_raises(image: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rtv_smooth_numpy(image)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"lam": -0.1}, {"sigma": 0.0}, {"sharpness": 0.0}, {"iterations": 0}, {"cg_tol": 0.0},
     {"cg_max_iter": 0}, {"lam": float("nan")}],
)
def test_bad_config_raises(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RTVConfig(**kwargs)
