"""Tests of dtpm_core.evaluation.metrics (PSNR, SSIM, MAE, LPIPS, EffNet-Lite0 feature distance,
FID) and dtpm_core.networks.hub.

Nothing here downloads: every test that could reach the hub points TORCH_HOME at a temporary
directory, sets DTPM_OFFLINE=1 and replaces requests.get with a stub.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import dtpm_core
from dtpm_core.errors import DTPMError, WeightsError
from dtpm_core.evaluation.metrics import (
    FEATURE_DISTANCE_NAME,
    INCEPTION_FILE,
    LPIPS_BACKBONE_FILES,
    FeatureDistanceMetric,
    FIDMetric,
    LPIPSMetric,
    MetricInputError,
    _extract_patches,
    frechet_distance,
    mae,
    perceptual_metric,
    psnr,
    ssim,
)
from dtpm_core.networks import hub

# --------------------------------------------------------------------------------------------
# fixtures


def _photo(name: str) -> np.ndarray:
    img = getattr(data, name)()
    y, x = (100, 150) if name == "astronaut" else (120, 200)
    return (img[y : y + 96, x : x + 128].astype(np.float32) / 255.0).copy()


def _distort(img: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.astype(np.float64)
    if kind in ("blur", "blur+noise"):
        out = gaussian_filter(out, sigma=(1.5, 1.5, 0))
    if kind in ("noise", "blur+noise"):
        out = out + rng.normal(0.0, 0.05, out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


PHOTOS = ("astronaut", "coffee")
DISTORTIONS = ("noise", "blur", "blur+noise")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything calls requests.get."""

    def _refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"requests.get called: {args} {kwargs}")

    monkeypatch.setattr(requests, "get", _refuse)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch: pytest.MonkeyPatch, no_network) -> object:
    """An empty torch hub cache under tmp_path; downloads off."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("DTPM_OFFLINE", "1")
    return home / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def lpips_random(tmp_path_factory) -> LPIPSMetric:
    """One LPIPS (alex) built against an empty hub cache, shared by the module (2 s to build)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        mp.setenv("DTPM_OFFLINE", "1")
        mp.setattr(requests, "get", lambda *a, **k: pytest.fail("requests.get called"))
        return LPIPSMetric(net="alex")


def test_import_is_light() -> None:
    """Importing the metrics module pulls in neither torch, lpips nor requests."""
    root = str(Path(dtpm_core.__file__).resolve().parents[1])
    code = (
        "import sys, dtpm_core.evaluation.metrics, dtpm_core.networks.hub; "
        "bad = [m for m in ('torch', 'lpips', 'requests', 'skimage') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": root}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)


# --------------------------------------------------------------------------------------------
# PSNR / SSIM / MAE parity with scikit-image


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("kind", DISTORTIONS)
def test_psnr_matches_skimage(name: str, kind: str) -> None:
    ref = _photo(name)
    out = _distort(ref, kind)
    expected = peak_signal_noise_ratio(ref, out, data_range=1.0)
    assert psnr(out, ref) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("kind", DISTORTIONS)
def test_ssim_matches_skimage(name: str, kind: str) -> None:
    ref = _photo(name)
    out = _distort(ref, kind)
    expected = structural_similarity(ref, out, channel_axis=-1, data_range=1.0)
    assert ssim(out, ref) == pytest.approx(expected, abs=1e-5)
    assert ssim(out, ref) < 0.99  # the distortion is really visible to the metric


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("kind", DISTORTIONS)
def test_mae_matches_numpy(name: str, kind: str) -> None:
    ref = _photo(name)
    out = _distort(ref, kind)
    expected = np.mean(np.abs(out.astype(np.float64) - ref.astype(np.float64)))
    assert mae(out, ref) == pytest.approx(expected, rel=1e-4)


def test_psnr_and_ssim_data_range() -> None:
    ref = _photo("coffee")
    out = _distort(ref, "noise")
    assert psnr(out * 255, ref * 255, data_range=255.0) == pytest.approx(
        peak_signal_noise_ratio(ref * 255, out * 255, data_range=255.0), rel=1e-4
    )
    assert ssim(out * 255, ref * 255, data_range=255.0) == pytest.approx(
        structural_similarity(ref * 255, out * 255, channel_axis=-1, data_range=255.0), abs=1e-5
    )


def test_identical_images() -> None:
    img = _photo("astronaut")
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert mae(img, img) == 0.0


def test_torch_batch_is_mean_of_images() -> None:
    refs = [_photo("astronaut"), _photo("coffee")]
    outs = [_distort(r, "blur+noise", seed=i) for i, r in enumerate(refs)]

    def batch(imgs: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)

    for fn in (psnr, ssim, mae):
        expected = np.mean([fn(o, r) for o, r in zip(outs, refs, strict=True)])
        assert fn(batch(outs), batch(refs)) == pytest.approx(expected, rel=1e-6), fn.__name__


def test_grey_images_match_skimage() -> None:
    ref = _photo("coffee").mean(-1)
    out = np.clip(ref + np.random.default_rng(3).normal(0, 0.05, ref.shape), 0, 1)
    assert ssim(out, ref) == pytest.approx(
        structural_similarity(ref, out, data_range=1.0), abs=1e-5
    )


def test_bad_inputs_raise() -> None:
    img = _photo("astronaut")
    with pytest.raises(MetricInputError, match="differ in shape"):
        psnr(img, img[:-1])
    with pytest.raises(MetricInputError, match="at least 7x7"):
        ssim(img[:5, :5], img[:5, :5])
    assert issubclass(MetricInputError, DTPMError)


# --------------------------------------------------------------------------------------------
# LPIPS


def test_lpips_identical_is_zero(lpips_random: LPIPSMetric) -> None:
    img = _photo("astronaut")
    assert lpips_random(img, img) < 1e-6


def test_lpips_grows_with_noise(lpips_random: LPIPSMetric) -> None:
    ref = _photo("coffee")
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 1.0, ref.shape)
    values = [
        lpips_random(np.clip(ref + s * noise, 0, 1).astype(np.float32), ref)
        for s in (0.02, 0.05, 0.1)
    ]
    assert 0 < values[0] < values[1] < values[2], values


def test_lpips_reports_random_backbone(lpips_random: LPIPSMetric) -> None:
    assert lpips_random.pretrained_backbone is False
    assert lpips_random.weights_path is None
    assert lpips_random.backbone.startswith("alex (random weights")
    assert "not in the torch hub cache" in lpips_random.backbone


def test_lpips_deterministic_and_rng_untouched(lpips_random: LPIPSMetric, empty_hub) -> None:
    ref = _photo("astronaut")
    out = _distort(ref, "noise")
    torch.manual_seed(999)  # the caller's RNG state must not change the random trunk
    state = torch.get_rng_state()
    second = LPIPSMetric(net="alex")
    assert torch.equal(torch.get_rng_state(), state)  # seeding happened in a forked RNG
    assert second(out, ref) == lpips_random(out, ref)
    with torch.no_grad():
        first_conv = lpips_random._model.net.slice1[0].weight
        assert torch.equal(second._model.net.slice1[0].weight, first_conv)


def test_lpips_torch_input_matches_numpy(lpips_random: LPIPSMetric) -> None:
    ref = _photo("astronaut")
    out = _distort(ref, "blur")
    as_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    assert lpips_random(as_t(out), as_t(ref)) == pytest.approx(lpips_random(out, ref), rel=1e-5)


def test_lpips_scales_inputs_to_minus_one_one(lpips_random: LPIPSMetric) -> None:
    ref = _photo("coffee")
    out = _distort(ref, "noise")
    as_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None]  # noqa: E731
    with torch.no_grad():
        direct = lpips_random._model(as_t(out) * 2 - 1, as_t(ref) * 2 - 1).item()
    assert lpips_random(out, ref) == pytest.approx(direct, rel=1e-6)


def test_lpips_loads_cached_backbone(empty_hub) -> None:
    from torchvision.models import alexnet

    torch.manual_seed(123)
    features = {
        k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")
    }
    empty_hub.mkdir(parents=True)
    torch.save(features, empty_hub / LPIPS_BACKBONE_FILES["alex"])

    metric = LPIPSMetric(net="alex")
    assert metric.pretrained_backbone is True
    assert metric.backbone == "alex (ImageNet)"
    assert metric.weights_path == empty_hub / LPIPS_BACKBONE_FILES["alex"]
    trunk = metric._model.net
    assert torch.equal(trunk.slice1[0].weight, features["features.0.weight"])
    assert torch.equal(getattr(trunk.slice5, "10").bias, features["features.10.bias"])


def test_lpips_corrupt_backbone_raises(empty_hub) -> None:
    empty_hub.mkdir(parents=True)
    (empty_hub / LPIPS_BACKBONE_FILES["alex"]).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="alexnet-owt-7be5be79.pth"):
        LPIPSMetric(net="alex")


def test_lpips_unknown_net() -> None:
    with pytest.raises(MetricInputError, match="unknown LPIPS network"):
        LPIPSMetric(net="resnet")


# --------------------------------------------------------------------------------------------
# EffNet-Lite0 feature distance (real ImageNet weights from the pip package: nothing downloads)


@pytest.fixture(scope="module")
def feature_distance() -> FeatureDistanceMetric:
    return FeatureDistanceMetric()


def _blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(img.astype(np.float64), sigma=(sigma, sigma, 0)).astype(np.float32)


def _noisy(img: np.ndarray, sigma: float, seed: int = 7) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 1.0, img.shape)
    return np.clip(img + sigma * noise, 0, 1).astype(np.float32)


def test_feature_distance_is_zero_for_identical_images_and_symmetric(feature_distance) -> None:
    ref = _photo("astronaut")
    assert feature_distance(ref, ref) == 0.0
    out = _distort(ref, "blur+noise")
    assert feature_distance(out, ref) == pytest.approx(feature_distance(ref, out), rel=1e-6)


@pytest.mark.parametrize("name", PHOTOS)
def test_feature_distance_grows_with_blur_and_noise(feature_distance, name: str) -> None:
    ref = _photo(name)
    blur = [feature_distance(_blurred(ref, s), ref) for s in (0.5, 1.0, 2.0, 4.0)]
    noise = [feature_distance(_noisy(ref, s), ref) for s in (0.01, 0.03, 0.1, 0.3)]
    for values in (blur, noise):
        assert 0 < values[0] and all(np.diff(values) > 0), values
        assert values[-1] < 4.0  # unit vectors: each stage's term is at most 4


def test_feature_distance_is_monotone_along_a_degradation_series(feature_distance) -> None:
    """Blur, then more blur and noise, then a JPEG-like quantisation on top: each step away
    from the reference is further in the feature distance, as it is in PSNR."""
    ref = _photo("coffee")
    series = [_blurred(ref, 1.0)]
    series.append(_noisy(_blurred(ref, 1.5), 0.03))
    series.append(_noisy(_blurred(ref, 2.5), 0.06))
    series.append((np.round(series[-1] * 8) / 8).astype(np.float32))
    values = [feature_distance(img, ref) for img in series]
    assert all(np.diff(values) > 0), values
    assert all(np.diff([psnr(img, ref) for img in series]) < 0)


def test_feature_distance_ranks_an_obvious_case(feature_distance) -> None:
    """A lightly blurred copy is nearer its original than a heavily blurred one, and both are
    nearer than another photo."""
    ref, other = _photo("astronaut"), _photo("coffee")
    light, heavy = _blurred(ref, 0.7), _blurred(ref, 3.0)
    d_light, d_heavy = feature_distance(light, ref), feature_distance(heavy, ref)
    d_other = feature_distance(other, ref)
    assert d_light < d_heavy < d_other, (d_light, d_heavy, d_other)


def test_feature_distance_is_deterministic_and_batches_average(feature_distance) -> None:
    a, b = _photo("astronaut"), _photo("coffee")
    a_out, b_out = _distort(a, "noise"), _distort(b, "blur")
    assert FeatureDistanceMetric()(a_out, a) == feature_distance(a_out, a)
    as_t = lambda x: torch.from_numpy(x).permute(2, 0, 1)  # noqa: E731
    batch = feature_distance(torch.stack([as_t(a_out), as_t(b_out)]),
                             torch.stack([as_t(a), as_t(b)]))
    singles = (feature_distance(a_out, a) + feature_distance(b_out, b)) / 2
    assert batch == pytest.approx(singles, rel=1e-5)


def test_feature_distance_is_named_for_what_it_is(feature_distance) -> None:
    assert feature_distance.name == FEATURE_DISTANCE_NAME == "EffNet-Lite0 feature distance"
    assert "ImageNet" in feature_distance.backbone and "LPIPS" not in feature_distance.name
    with pytest.raises(MetricInputError, match="differ in shape"):
        feature_distance(_photo("astronaut"), _photo("astronaut")[:64])


def test_perceptual_metric_prefers_real_imagenet_features(empty_hub, monkeypatch) -> None:
    """LPIPS with its ImageNet trunk where cached; otherwise the feature distance; LPIPS on a
    random trunk only where neither has real weights."""
    assert isinstance(perceptual_metric(), FeatureDistanceMetric)  # empty hub cache
    with monkeypatch.context() as without_package:
        without_package.setattr("dtpm_core.networks.efficientnet_weights.weights_path",
                                lambda: None)
        fallback = perceptual_metric()
    assert isinstance(fallback, LPIPSMetric) and not fallback.pretrained_backbone
    from torchvision.models import alexnet

    empty_hub.mkdir(parents=True)
    features = {k: v for k, v in alexnet(weights=None).state_dict().items()
                if k.startswith("features.")}
    torch.save(features, empty_hub / LPIPS_BACKBONE_FILES["alex"])
    cached = perceptual_metric()
    assert isinstance(cached, LPIPSMetric) and cached.pretrained_backbone
    assert (cached.name, fallback.name) == ("LPIPS", "LPIPS")


# --------------------------------------------------------------------------------------------
# Frechet distance


def test_frechet_identical_gaussians_is_zero() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 16))
    mu, sigma = a.mean(0), np.cov(a, rowvar=False)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_diagonal_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    v1, v2 = rng.uniform(0.1, 3.0, 8), rng.uniform(0.1, 3.0, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_rotation_invariant_and_scalar() -> None:
    # full covariances: rotating both Gaussians by the same orthogonal matrix keeps the distance
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.5, 2.0, 6), rng.uniform(0.5, 2.0, 6)
    plain = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    rotated = frechet_distance(q @ mu1, q @ np.diag(v1) @ q.T, q @ mu2, q @ np.diag(v2) @ q.T)
    assert rotated == pytest.approx(plain, rel=1e-7)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(1.0, 4.0, 3.0, 9.0) == pytest.approx(4.0 + 1.0)


def test_frechet_singular_covariance_is_finite() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 32)), rng.normal(size=(5, 32)) + 1.0  # rank 4 in 32-d
    d = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert math.isfinite(d) and d > 0


def test_frechet_shape_mismatch() -> None:
    with pytest.raises(MetricInputError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# --------------------------------------------------------------------------------------------
# FID


def test_fid_unavailable_without_weights(empty_hub) -> None:
    fid = FIDMetric()
    assert fid.available is False
    assert INCEPTION_FILE in fid.reason
    assert str(empty_hub) in fid.reason
    img = _photo("astronaut")
    with pytest.raises(WeightsError, match=INCEPTION_FILE):
        fid.update(img, img)
    with pytest.raises(WeightsError, match=INCEPTION_FILE):
        fid.compute()


def test_extract_patches() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((70, 100, 3)).astype(np.float32)
    patches = _extract_patches(img, 32)  # 2 x 3 patches, remainders dropped
    assert tuple(patches.shape) == (6, 3, 32, 32)
    chw = torch.from_numpy(img).permute(2, 0, 1)
    assert torch.equal(patches[0], chw[:, 0:32, 0:32])
    assert torch.equal(patches[4], chw[:, 32:64, 32:64])
    batch = torch.stack([chw, chw.flip(-1)])
    assert tuple(_extract_patches(batch, 32).shape) == (12, 3, 32, 32)
    assert _extract_patches(img, 128).shape[0] == 0


@pytest.fixture(scope="module")
def fid_small(tmp_path_factory) -> FIDMetric:
    """A FIDMetric built from a hub cache holding a randomly initialised torchvision
    Inception-v3 under the ImageNet file name: exercises the loading and feature pipeline, not
    the published FID. Shared by the module (building it takes seconds); tests reset() it."""
    from torchvision.models import inception_v3

    home = tmp_path_factory.mktemp("inception_home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(model.state_dict(), ckpt / INCEPTION_FILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.setenv("DTPM_OFFLINE", "1")
        mp.setattr(requests, "get", lambda *a, **k: pytest.fail("requests.get called"))
        return FIDMetric(patch_size=48, batch_size=8)


def test_fid_pipeline_with_cached_weights(fid_small: FIDMetric) -> None:
    fid_small.reset()
    assert fid_small.available is True
    assert fid_small.weights_path is not None and fid_small.weights_path.name == INCEPTION_FILE
    ref = _photo("astronaut")[:48, :100]  # 1 x 2 patches of 48, remainder dropped
    fid_small.update(_distort(ref, "noise"), ref)
    assert fid_small.num_patches == (2, 2)
    pred, target = fid_small._feats["pred"][0], fid_small._feats["target"][0]
    assert pred.shape == (2, 2048) and np.isfinite(pred).all()
    assert not np.allclose(pred, target)
    again = fid_small._features(_extract_patches(ref[:, 48:96], 48))  # deterministic features
    np.testing.assert_allclose(again[0], target[1], rtol=1e-5, atol=1e-6)
    fid_small.reset()
    assert fid_small.num_patches == (0, 0)


def test_fid_too_few_patches_is_nan(fid_small: FIDMetric) -> None:
    fid_small.reset()
    tiny = _photo("coffee")[:40, :40]  # smaller than a patch: none
    fid_small.update(tiny, tiny)
    assert fid_small.num_patches == (0, 0)
    assert math.isnan(fid_small.compute())
    assert "at least 2 patches" in fid_small.reason
    fid_small._feats = {"pred": [np.zeros((3, 2048))], "target": [np.ones((1, 2048))]}
    assert math.isnan(fid_small.compute())
    assert "got 3 restored and 1 reference" in fid_small.reason
    fid_small.reset()


def test_fid_compute_uses_feature_statistics(fid_small: FIDMetric, monkeypatch) -> None:
    rng = np.random.default_rng(5)
    a1, a2, b = rng.normal(size=(3, 2048)), rng.normal(size=(2, 2048)), rng.normal(size=(4, 2048))
    fid_small._feats = {"pred": [a1, a2], "target": [b]}
    seen = {}

    def spy(mu1, sigma1, mu2, sigma2):
        seen.update(mu1=mu1, sigma1=sigma1, mu2=mu2, sigma2=sigma2)
        return 1.25

    monkeypatch.setattr("dtpm_core.evaluation.metrics.frechet_distance", spy)
    assert fid_small.compute() == 1.25 and fid_small.reason == ""
    a = np.concatenate([a1, a2])
    np.testing.assert_allclose(seen["mu1"], a.mean(0))
    np.testing.assert_allclose(seen["sigma1"], np.cov(a, rowvar=False))
    np.testing.assert_allclose(seen["mu2"], b.mean(0))
    np.testing.assert_allclose(seen["sigma2"], np.cov(b, rowvar=False))
    fid_small.reset()


@pytest.mark.slow
def test_fid_compute_end_to_end(fid_small: FIDMetric) -> None:
    """Real features and a real 2048-d matrix square root (about 10 s on a small CPU)."""
    fid_small.reset()
    ref = _photo("astronaut")[:48, :144]  # 3 patches per set
    fid_small.update(_distort(ref, "blur+noise"), ref)
    value = fid_small.compute()
    fid_small.reset()
    assert math.isfinite(value) and value > 0


# --------------------------------------------------------------------------------------------
# hub


def test_hub_dir_honours_torch_home(empty_hub) -> None:
    assert hub.torch_hub_checkpoint_dir() == empty_hub


def test_find_cached_weights(empty_hub) -> None:
    assert hub.find_cached_weights("w.pth") is None
    empty_hub.mkdir(parents=True)
    (empty_hub / "w.pth").write_bytes(b"x")
    assert hub.find_cached_weights("w.pth") == empty_hub / "w.pth"
    assert hub.fetch_weights("https://example.invalid/w.pth") == empty_hub / "w.pth"
    # a cached file is returned without any request even when downloads are allowed
    assert hub.fetch_weights("https://example.invalid/w.pth", allow_download=True) is not None


def test_fetch_weights_offline_never_requests(empty_hub, monkeypatch) -> None:
    url = "https://example.invalid/models/thing.pth"
    assert hub.fetch_weights(url) is None  # DTPM_OFFLINE=1
    monkeypatch.delenv("DTPM_OFFLINE")
    assert hub.fetch_weights(url) is None  # under pytest
    assert hub.fetch_weights(url, allow_download=False) is None
    assert not hub.downloads_allowed()
    assert hub.downloads_allowed(True)
    assert not empty_hub.exists() or not any(empty_hub.iterdir())


class _FakeResponse:
    def __init__(self, payload: bytes, chunk: int = 1000, fail_at: int | None = None) -> None:
        self.payload, self.chunk, self.fail_at = payload, chunk, fail_at
        self.headers = {"content-length": str(len(payload))}
        self.closed = False

    def raise_for_status(self) -> None:
        pass

    def iter_content(self, chunk_size: int = 1):
        for i in range(0, len(self.payload), self.chunk):
            if self.fail_at is not None and i >= self.fail_at:
                raise requests.ConnectionError("connection dropped")
            yield self.payload[i : i + self.chunk]

    def close(self) -> None:
        self.closed = True


def test_fetch_weights_downloads_atomically(empty_hub, monkeypatch) -> None:
    payload = np.random.default_rng(0).bytes(4500)
    digest = hashlib.sha256(payload).hexdigest()
    name = f"model-{digest[:8]}.pth"
    url = f"https://example.invalid/models/{name}"
    calls, seen = [], []
    response = _FakeResponse(payload)

    def fake_get(u, stream=False, timeout=None, **kwargs):
        calls.append((u, stream))
        return response

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        assert not (empty_hub / name).exists()  # nothing at the final name until complete
        assert len(list(empty_hub.glob(f"{name}*.partial"))) == 1

    monkeypatch.setattr(requests, "get", fake_get)
    path = hub.fetch_weights(url, allow_download=True, progress=progress)
    assert path == empty_hub / name
    assert path.read_bytes() == payload
    assert calls == [(url, True)]
    assert response.closed
    assert seen == [(1000, 4500), (2000, 4500), (3000, 4500), (4000, 4500), (4500, 4500)]
    assert list(empty_hub.glob("*.partial")) == []
    # second call: served from the cache, no new request
    assert hub.fetch_weights(url, allow_download=True) == path
    assert len(calls) == 1


def test_fetch_weights_failures_leave_nothing(empty_hub, monkeypatch) -> None:
    payload = b"abc" * 1000
    monkeypatch.setattr(requests, "get", lambda *a, **k: _FakeResponse(payload, fail_at=2000))
    assert hub.fetch_weights("https://example.invalid/a.pth", allow_download=True) is None
    # the name carries a sha256 prefix that the payload does not match
    monkeypatch.setattr(requests, "get", lambda *a, **k: _FakeResponse(payload))
    assert hub.fetch_weights("https://example.invalid/b-deadbeef.pth", allow_download=True) is None
    assert sorted(p.name for p in empty_hub.iterdir()) == []


def test_fetch_weights_shows_a_progress_bar_by_default(empty_hub, monkeypatch, capsys) -> None:
    payload = b"x" * 3000
    monkeypatch.setattr(requests, "get", lambda *a, **k: _FakeResponse(payload))
    path = hub.fetch_weights("https://example.invalid/w.pth", allow_download=True)
    assert path is not None and path.read_bytes() == payload
    assert "downloading w.pth" in capsys.readouterr().err
