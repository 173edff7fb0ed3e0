"""Synthetic degradations (trainer.degradations) on real photos from scikit-image."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data

from trainer import degradations as dg
from trainer.degradations import (
    TASK_DISPLAY_NAMES,
    TASKS,
    DefocusParams,
    MotionBlurParams,
    RaindropParams,
    RainHazeParams,
    SnowParams,
    degrade,
    degrade_batch,
    sample_params,
)


def _photo(loader, size: int) -> np.ndarray:
    im = loader().astype(np.float32) / 255.0
    h, w = im.shape[:2]
    s = min(h, w)
    im = im[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [_photo(f, 160) for f in (data.astronaut, data.coffee, data.chelsea)]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _hf_energy(img: np.ndarray) -> float:
    """Energy of the detail layer (image minus a Gaussian blur of it)."""
    return float(np.mean((img - cv2.GaussianBlur(img, (0, 0), 1.0)) ** 2))


def _second_moments(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and 2x2 second-moment (covariance) matrix of a kernel seen as a density."""
    y, x = np.mgrid[0:k.shape[0], 0:k.shape[1]]
    m = k / k.sum()
    cx, cy = (m * x).sum(), (m * y).sum()
    dx, dy = x - cx, y - cy
    cov = np.array([[(m * dx * dx).sum(), (m * dx * dy).sum()],
                    [(m * dx * dy).sum(), (m * dy * dy).sum()]])
    return np.array([cx, cy]), cov


def _anisotropy(k: np.ndarray) -> float:
    ev = np.linalg.eigvalsh(_second_moments(k)[1])
    return float(ev[1] / max(ev[0], 1e-12))


def _dark_channel(img: np.ndarray, patch: int = 15) -> float:
    return float(cv2.erode(img.min(axis=2), np.ones((patch, patch), np.uint8)).mean())


# ----------------------------------------------------------------------------- blur

@pytest.mark.parametrize("task,fn,params", [
    ("motion", dg.motion_blur, MotionBlurParams(size=21)),
    ("motion-linear", dg.motion_blur, MotionBlurParams(size=21, linear=True, angle=30.0)),
    ("defocus", dg.defocus_blur, DefocusParams(radius=5.0)),
])
def test_blur_removes_high_frequencies(photos, task, fn, params):
    for i, im in enumerate(photos):
        out = fn(im, _rng(i), params)
        assert _hf_energy(out) < 0.25 * _hf_energy(im), task
        # A blur moves light around but keeps the mean (kernel sums to 1).
        assert abs(out.mean() - im.mean()) < 0.01


def test_motion_kernels_normalised_centred_and_anisotropic():
    ratios = []
    for seed in range(30):
        rng = _rng(seed)
        p = sample_params("motion-deblur", rng)
        k = dg.motion_kernel(p, rng)
        assert k.dtype == np.float32 and (k >= 0).all()
        assert k.sum() == pytest.approx(1.0, abs=1e-5)
        assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1 and k.shape[0] <= (p.size | 1)
        centroid, _ = _second_moments(k)
        # Centred: the blur must not shift the image as well (within 0.3% of its size: the
        # bilinear splat of a 61 px path lands 0.07 px off).
        np.testing.assert_allclose(centroid, (k.shape[0] - 1) / 2, atol=max(0.05, 0.003 * p.size))
        ratios.append(_anisotropy(k))
    # Camera shake is a path, not a blob: most kernels are clearly elongated.
    assert np.mean(np.array(ratios) > 1.5) >= 0.7, sorted(ratios)
    # A straight kernel is a line in the requested direction.
    k = dg.motion_kernel(MotionBlurParams(size=25, linear=True, angle=0.0), _rng())
    assert _anisotropy(k) > 50
    _, cov = _second_moments(k)
    assert cov[0, 0] > 50 * cov[1, 1]  # angle 0 = horizontal (along x)


def test_defocus_kernel_is_a_round_disk():
    k = dg.defocus_kernel(DefocusParams(radius=6.0))
    assert (k >= 0).all() and k.sum() == pytest.approx(1.0, abs=1e-5)
    assert _anisotropy(k) < 1.02
    np.testing.assert_allclose(k, k.T, atol=1e-6)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-6)
    c = k.shape[0] // 2
    y, x = np.mgrid[0:k.shape[0], 0:k.shape[1]] - c
    r = np.hypot(x, y)
    assert k[r <= 6.6].sum() > 0.99                       # light stays inside the disk
    inner = k[r <= 4.5]
    assert inner.max() - inner.min() < 1e-6               # a flat pillbox, not a Gaussian
    assert 0 < k[c, c + 6] < k[c, c]                      # anti-aliased edge
    # Its second moment matches a uniform disk of that radius (r^2 / 4 per axis).
    _, cov = _second_moments(k)
    assert cov[0, 0] == pytest.approx(36 / 4, rel=0.08)
    # A hexagonal aperture is not the disk.
    hexa = dg.defocus_kernel(DefocusParams(radius=6.0, blades=6, rotation=10.0))
    assert hexa.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.abs(hexa - k).max() > 1e-3


# ----------------------------------------------------------------------------- rain + haze

def test_rain_streaks_are_oriented_along_the_fall_direction():
    for angle in (-20.0, 0.0, 15.0):
        p = RainHazeParams(angle=angle, density=0.004, length=24.0)
        layer = dg.rain_streaks((160, 160), p, _rng(3))
        gx = cv2.Sobel(layer, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(layer, cv2.CV_32F, 0, 1)
        tensor = np.array([[(gx * gx).sum(), (gx * gy).sum()],
                           [(gx * gy).sum(), (gy * gy).sum()]])
        ev, vecs = np.linalg.eigh(tensor)
        coherence = (ev[1] - ev[0]) / (ev[1] + ev[0])
        assert coherence > 0.5, (angle, coherence)
        # The dominant gradient is across the streaks: perpendicular to the fall direction.
        fall = np.array([math.sin(math.radians(angle)), math.cos(math.radians(angle))])
        assert abs(vecs[:, 1] @ fall) < math.sin(math.radians(10)), angle


def test_rain_adds_bright_structures(photos):
    p = RainHazeParams(beta=0.0, density=0.005, length=20.0, opacity=0.8)  # rain, no haze
    for i, im in enumerate(photos):
        out = dg.rain_haze(im, _rng(i), p)
        diff = (out - im).mean(axis=2)
        assert (diff > 0.1).mean() > 0.05
        assert (diff < -1e-5).mean() == 0.0  # streaks are light: nothing gets darker


def test_haze_lowers_contrast_and_raises_dark_channel(photos):
    p = RainHazeParams(beta=1.5, density=0.0)  # haze only
    for i, im in enumerate(photos):
        out = dg.rain_haze(im, _rng(i), p)
        assert out.std() < 0.75 * im.std()
        assert _dark_channel(out) > _dark_channel(im) + 0.1
    # Thicker haze (larger beta) hides more.
    im = photos[0]
    light = dg.rain_haze(im, _rng(), RainHazeParams(beta=0.5, density=0.0))
    thick = dg.rain_haze(im, _rng(), RainHazeParams(beta=2.0, density=0.0))
    assert thick.std() < light.std() < im.std()


def test_haze_depth_is_smooth_and_far_at_the_top():
    d = dg.haze_depth((128, 96), _rng(5))
    assert d.shape == (128, 96) and d.min() == pytest.approx(0.0) and d.max() == pytest.approx(1.0)
    assert d[:32].mean() > d[-32:].mean() + 0.3
    assert np.abs(np.diff(d, axis=0)).max() < 0.05


# ----------------------------------------------------------------------------- snow

def test_snow_brightens_with_flakes(photos):
    p = SnowParams(veil=0.0)
    for i, im in enumerate(photos):
        out = dg.snow(im, _rng(i), p)
        diff = (out - im).mean(axis=2)
        assert out.mean() > im.mean() + 0.01
        assert (diff > 0.1).mean() > 0.03
        assert (diff < -1e-5).mean() == 0.0
        # Flakes, not a uniform wash: most pixels stay close to the clean photo.
        assert (np.abs(diff) < 0.02).mean() > 0.4
    # Bigger flakes of the same density cover more of the image.
    small = dg.snow(photos[0], _rng(), SnowParams(sigmas=(1.0,), densities=(0.002,), veil=0.0))
    big = dg.snow(photos[0], _rng(), SnowParams(sigmas=(3.0,), densities=(0.002,), veil=0.0))
    assert ((big - photos[0]) > 0.05).mean() > 2 * ((small - photos[0]) > 0.05).mean()


# ----------------------------------------------------------------------------- raindrops

def test_raindrops_change_only_blob_regions(photos):
    p = RaindropParams(radius=(6.0, 12.0), coverage=0.2, background_blur=0.0)
    for i, im in enumerate(photos):
        out = dg.raindrops(im, _rng(i), p)
        diff = np.abs(out - im).max(axis=2)
        changed = diff > 1e-6
        assert 0.05 < changed.mean() < 0.45
        assert (diff > 0.05).mean() > 0.02
        # The changes are blobs: a morphological opening with a 5x5 disk keeps most of them
        # (scattered pixels or thin lines would vanish).
        mask = changed.astype(np.uint8)
        opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN,
                                  cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        assert opened.sum() > 0.8 * mask.sum()
        n_blobs = cv2.connectedComponents(mask)[0] - 1
        assert 2 <= n_blobs <= 80
    # With the background blur on, the whole photo softens.
    blurred = dg.raindrops(photos[0], _rng(), RaindropParams(background_blur=1.5))
    assert (np.abs(blurred - photos[0]).max(axis=2) > 1e-6).mean() > 0.95


# ----------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("task", TASKS)
def test_seeded_and_deterministic(photos, task):
    im = photos[1]
    a = degrade(task, im, _rng(7))
    b = degrade(task, im, _rng(7))
    c = degrade(task, im, _rng(8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01
    h = degrade(task, im, _rng(7), held_out=True)
    assert np.abs(a - h).max() > 0.01
    batch1 = degrade_batch(task, photos, seed=3)
    batch2 = degrade_batch(task, photos, seed=3)
    assert len(batch1) == len(photos)
    for x, y in zip(batch1, batch2, strict=True):
        np.testing.assert_array_equal(x, y)
    assert np.abs(batch1[0] - degrade_batch(task, photos, seed=4)[0]).max() > 0.01


def _draws(task: str, held_out: bool, n: int = 200) -> list:
    rng = _rng(11 if n == 200 else n)
    return [sample_params(task, rng, held_out=held_out) for _ in range(n)]


def test_held_out_distributions_do_not_overlap_training():
    """No training draw falls inside the span of the held-out draws of the task's main
    parameters: the judge's settings are never trained on (they sit in gaps of the wide
    training unions, or are kinds training never shows)."""
    def outside(task, f):
        held = [f(p) for p in _draws(task, True)]
        lo, hi = min(held), max(held)
        inside = [v for v in (f(p) for p in _draws(task, False, 400)) if lo <= v <= hi]
        assert not inside, (task, (lo, hi), inside[:5])

    outside("motion-deblur", lambda p: p.size)
    sizes = [p.size for p in _draws("motion-deblur", False, 400)]
    assert min(sizes) <= 8 and max(sizes) >= 55  # wide: a few % of a photo's diagonal
    assert not any(p.linear for p in _draws("motion-deblur", False))
    assert 0.2 < np.mean([p.linear for p in _draws("motion-deblur", True)]) < 0.8
    outside("defocus-deblur", lambda p: p.radius)
    assert not any(p.blades for p in _draws("defocus-deblur", False))
    assert any(p.blades == 6 for p in _draws("defocus-deblur", True))
    for f in (lambda p: p.beta, lambda p: abs(p.angle), lambda p: p.density,
              lambda p: p.length):
        outside("derain-dehaze", f)
    for f in (lambda p: max(p.sigmas), lambda p: min(p.sigmas), lambda p: abs(p.angle),
              lambda p: p.veil):
        outside("desnow", f)
    outside("raindrop", lambda p: p.coverage)
    held_radii = {p.radius for p in _draws("raindrop", True)}
    assert held_radii == {(16.0, 26.0)}
    assert not any(p.radius == (16.0, 26.0) for p in _draws("raindrop", False))
    assert {p.radius for p in _draws("raindrop", False)} >= {(2.0, 8.0), (28.0, 40.0)}
    for p in _draws("derain-dehaze", False):
        assert all(0.67 <= a <= 1.0 for a in p.airlight)
        assert 0.2 <= p.beta <= 2.8


def test_training_blur_has_camera_noise_jpeg_and_depth():
    motion = _draws("motion-deblur", False, 400)
    assert 0.35 < np.mean([p.jpeg_quality > 0 for p in motion]) < 0.65
    assert all(p.jpeg_quality == 0 or 60 <= p.jpeg_quality <= 95 for p in motion)
    assert max(p.shot_noise for p in motion) > 0.015
    defocus = _draws("defocus-deblur", False, 400)
    assert 0.35 < np.mean([p.depth_variation > 0 for p in defocus]) < 0.65
    held = _draws("defocus-deblur", True) + _draws("motion-deblur", True)
    assert all(p.jpeg_quality == 0 and p.shot_noise == 0 for p in held)


def test_union_ranges_sample_every_interval_uniformly():
    rng = _rng(3)
    v = np.array([dg._u(rng, ((0.0, 1.0), (3.0, 6.0))) for _ in range(4000)])
    assert not ((v > 1.0) & (v < 3.0)).any()
    assert 0.2 < np.mean(v <= 1.0) < 0.3  # width 1 of 4
    assert dg._u(_rng(1), (2.0, 3.0)) == _rng(1).uniform(2.0, 3.0)  # one interval: one draw


def test_depth_varying_defocus_blurs_near_and_far_differently(photos):
    img = photos[0]
    flat = dg.defocus_blur(img, _rng(2), DefocusParams(radius=8.0))
    varying = dg.defocus_blur(img, _rng(2), DefocusParams(radius=8.0, depth_variation=0.9))
    rows = [_hf_energy(varying[i:i + 40]) for i in (0, 120)]
    flat_rows = [_hf_energy(flat[i:i + 40]) for i in (0, 120)]
    ratio = max(rows) / max(min(rows), 1e-12)
    assert ratio > 1.5 * max(flat_rows) / max(min(flat_rows), 1e-12)
    assert _hf_energy(varying) > _hf_energy(flat)  # parts are sharper than the full radius


def test_jpeg_after_blur_leaves_block_artefacts():
    im = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))[..., None].repeat(3, 2)
    clean = dg.motion_blur(im, _rng(), MotionBlurParams(size=9))
    jpeg = dg.motion_blur(im, _rng(), MotionBlurParams(size=9, jpeg_quality=60))
    assert 0.001 < np.abs(jpeg - clean).mean() < 0.05


# ----------------------------------------------------------------------------- contract

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("held_out", [False, True])
def test_output_contract_and_input_untouched(photos, task, held_out):
    base = photos[2] * 1.1 - 0.05  # slightly out of [0, 1]: output must still be in range
    for im in (base.copy(), base[:96, 16:144].astype(np.float64)):  # float32; float64 view
        before = im.copy()
        out = degrade(task, im, _rng(1), held_out=held_out)
        np.testing.assert_array_equal(im, before)
        assert out.shape == im.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert not np.shares_memory(out, im)


@pytest.mark.parametrize("fn,params", [
    (dg.motion_blur, MotionBlurParams(size=9, noise_sigma=0.01)),
    (dg.defocus_blur, DefocusParams(radius=3.0, noise_sigma=0.01)),
])
def test_sensor_noise_is_added_and_clipped(fn, params):
    im = np.zeros((64, 64, 3), np.float32)
    im[:, 32:] = 1.0  # saturated black and white: noise would leave [0, 1] unclipped
    out = fn(im, _rng(), params)
    assert out.min() == 0.0 and out.max() == 1.0 and out.dtype == np.float32
    flat = out[:, 8:24]  # away from the edge: only the noise is left (half of it clipped)
    assert 0.003 < flat.std() < 0.01


@pytest.mark.parametrize("bad,match", [
    (np.zeros((32, 32), np.float32), "shape"),
    (np.zeros((32, 32, 4), np.float32), "shape"),
    (np.zeros((3, 32, 32), np.float32), "shape"),
    (np.zeros((32, 32, 3), np.uint8), "dtype"),
    (np.full((32, 32, 3), np.nan, np.float32), "NaN"),
    ([[0.0, 0.0, 0.0]], "numpy"),
])
def test_bad_input_raises(bad, match):
    for task in TASKS:
        with pytest.raises(ValueError, match=match):
            degrade(task, bad, _rng())
    with pytest.raises(ValueError, match=match):
        dg.raindrops(bad, _rng())


def test_unknown_task_lists_the_tasks(photos):
    with pytest.raises(ValueError) as err:
        degrade("deblur", photos[0], _rng())
    assert all(t in str(err.value) for t in TASKS)
    with pytest.raises(ValueError, match="motion-deblur"):
        degrade_batch("dehaze", photos, seed=0)
    with pytest.raises(ValueError, match="raindrop"):
        sample_params("nope", _rng())


def test_task_names():
    assert TASKS == ("motion-deblur", "defocus-deblur", "derain-dehaze", "desnow", "raindrop")
    assert tuple(TASK_DISPLAY_NAMES) == TASKS
    assert TASK_DISPLAY_NAMES["derain-dehaze"] == "Rain + haze removal"
