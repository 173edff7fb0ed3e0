"""Image-quality metrics: PSNR, SSIM, MAE, LPIPS, the EffNet-Lite0 feature distance and
patch-level FID.

Images are float arrays ``(H, W, C)`` in [0, 1] (``(H, W)`` grey and ``(N, H, W, C)`` batches are
accepted too), or torch tensors ``(B, C, H, W)`` / ``(C, H, W)`` in [0, 1]. For a batch, PSNR and
SSIM are the mean of the per-image values.

PSNR, SSIM and MAE are pure numpy/scipy and agree with scikit-image's
``peak_signal_noise_ratio`` and ``structural_similarity(channel_axis=-1)`` (scikit-image is only a
test dependency). LPIPS and FID need torch, imported only when such a metric is built, so
``import dtpm_core.evaluation.metrics`` stays light and works without torch. The pretrained
backbones of LPIPS and FID come from the torch hub cache (:mod:`dtpm_core.networks.hub`); nothing
is downloaded when downloads are not allowed. The EffNet-Lite0 feature distance
(:mod:`dtpm_core.evaluation.feature_distance`, re-exported here) runs on torch or as an OpenVINO
graph, so it is the perceptual distance an installation without torch has.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..backends import torch_installed
from ..errors import ConfigError, WeightsError
from ..networks.hub import fetch_weights, find_cached_weights, torch_hub_checkpoint_dir
from .feature_distance import (
    FEATURE_DISTANCE_KEY,
    FEATURE_DISTANCE_NAME,
    FEATURE_DISTANCE_STAGES,
    FeatureDistanceMetric,
    feature_distance_available,
)
from .metric_inputs import MetricInputError, nchw_pair, pair, to_nchw_tensor

__all__ = [
    "FEATURE_DISTANCE_KEY",
    "FEATURE_DISTANCE_NAME",
    "FEATURE_DISTANCE_STAGES",
    "LPIPS_NEEDS_TORCH",
    "FIDMetric",
    "FeatureDistanceMetric",
    "LPIPSMetric",
    "MetricInputError",
    "feature_distance_available",
    "frechet_distance",
    "mae",
    "perceptual_metric",
    "psnr",
    "ssim",
]

_TV_URL = "https://download.pytorch.org/models/"

LPIPS_BACKBONE_FILES: dict[str, str] = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
"""torchvision's ImageNet weight file of each LPIPS trunk, as named in the torch hub cache."""

INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
"""torchvision's Inception-v3 ImageNet weights, used for FID features."""

_INCEPTION_SIZE = 299
_INCEPTION_DIM = 2048


# --------------------------------------------------------------------------------------------
# pixel metrics


def psnr(pred: Any, target: Any, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images); mean over a batch."""
    p, t = pair(pred, target)
    values = []
    for pi, ti in zip(p, t, strict=True):
        mse = float(np.mean((pi - ti) ** 2))
        values.append(math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse))
    return float(np.mean(values))


def _ssim_2d(x: np.ndarray, y: np.ndarray, data_range: float, win: int) -> float:
    """Mean SSIM of one channel: uniform window, sample covariance, K1=0.01, K2=0.03."""
    n = win * win
    cov_norm = n / (n - 1.0)
    def uniform_filter(a: np.ndarray, size: int) -> np.ndarray:
        # scipy.ndimage.uniform_filter's mean with its default mirrored border ("reflect":
        # the edge pixel repeated), equal to 1e-15; OpenCV keeps scipy out of the app bundle
        return cv2.boxFilter(a, -1, (size, size), normalize=True, borderType=cv2.BORDER_REFLECT)

    ux = uniform_filter(x, size=win)
    uy = uniform_filter(y, size=win)
    uxx = uniform_filter(x * x, size=win)
    uyy = uniform_filter(y * y, size=win)
    uxy = uniform_filter(x * y, size=win)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ssim(pred: Any, target: Any, data_range: float = 1.0) -> float:
    """Structural similarity (7x7 uniform window, as scikit-image's default), mean over
    channels; mean over a batch. 1.0 for identical images."""
    win = 7
    p, t = pair(pred, target)
    if p.shape[1] < win or p.shape[2] < win:
        raise MetricInputError(
            f"SSIM needs images of at least {win}x{win} pixels, got {p.shape[1]}x{p.shape[2]}"
        )
    values = [
        np.mean([_ssim_2d(pi[..., c], ti[..., c], data_range, win) for c in range(p.shape[3])])
        for pi, ti in zip(p, t, strict=True)
    ]
    return float(np.mean(values))


def mae(pred: Any, target: Any) -> float:
    """Mean absolute error over all pixels and channels."""
    p, t = pair(pred, target)
    return float(np.mean(np.abs(p - t)))


def _load_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds on a bad file
        raise WeightsError(
            f"could not read the weight file {path}: {exc}; delete it so that it is fetched again"
        ) from exc
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict; delete it")
    return state


# --------------------------------------------------------------------------------------------
# LPIPS


class LPIPSMetric:
    """LPIPS perceptual distance (Zhang et al. 2018) via the ``lpips`` package.

    The small linear calibration layers ship inside the ``lpips`` package. The trunk's ImageNet
    weights are taken from the torch hub cache (torchvision's file, e.g.
    ``alexnet-owt-7be5be79.pth``), downloaded there only if downloads are allowed; without them
    the trunk keeps a seeded random initialisation (deterministic, but not the published metric)
    and :attr:`backbone` says so.
    """

    name = "LPIPS"

    def __init__(
        self,
        net: str = "alex",
        device: Any = "cpu",
        allow_download: bool | None = None,
        seed: int = 0,
    ) -> None:
        import torch

        net = "vgg" if net == "vgg16" else net
        if net not in LPIPS_BACKBONE_FILES:
            raise MetricInputError(
                f"unknown LPIPS network {net!r}; choose one of {sorted(LPIPS_BACKBONE_FILES)}"
            )
        self.net = net
        self.device = torch.device(device)
        filename = LPIPS_BACKBONE_FILES[net]
        path = find_cached_weights(filename) or fetch_weights(
            _TV_URL + filename, filename, allow_download=allow_download
        )
        self.weights_path: Path | None = path
        self.pretrained_backbone: bool = path is not None
        self.backbone: str = (
            f"{net} (ImageNet)"
            if path is not None
            else f"{net} (random weights: ImageNet backbone not in the torch hub cache)"
        )

        import lpips

        # pnet_rand=True: the trunk is built without torchvision downloading anything; its random
        # initialisation is seeded (without touching the caller's RNG) so results are repeatable.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` notice
            torch.manual_seed(seed)
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if path is not None:
            state = _load_state_dict(path)
            # lpips keeps torchvision's `features[i]` modules as `slice<k>.<i>`
            mapped = {}
            for key in model.net.state_dict():
                _, rest = key.split(".", 1)
                src = f"features.{rest}"
                if src not in state:
                    raise WeightsError(
                        f"{path} lacks {src}: not torchvision's {net} ImageNet weights; delete it"
                    )
                mapped[key] = state[src]
            try:
                model.net.load_state_dict(mapped, strict=True)
            except RuntimeError as exc:
                raise WeightsError(f"{path} does not fit the LPIPS {net} trunk: {exc}") from exc
        model.eval().requires_grad_(False)
        self._model = model.to(self.device)

    def __call__(self, pred: Any, target: Any) -> float:
        """LPIPS distance between images in [0, 1] (mean over a batch); 0 for identical images."""
        import torch

        a, b = nchw_pair(pred, target, self.device)
        with torch.inference_mode():
            d = self._model(a * 2 - 1, b * 2 - 1)
        return float(d.mean().item())

    def __repr__(self) -> str:
        return f"LPIPSMetric(backbone={self.backbone!r}, device={str(self.device)!r})"


LPIPS_NEEDS_TORCH = (
    "LPIPS needs PyTorch (its trunk is a torchvision network with ImageNet weights from the "
    "torch hub), which this installation leaves out")
"""Why an installation without torch (the CPU bundle) measures no LPIPS."""


def perceptual_metric(device: Any = "cpu", allow_download: bool | None = None,
                      backend: str | None = "torch") -> LPIPSMetric | FeatureDistanceMetric:
    """One perceptual distance for a display that has room for one: LPIPS where its trunk has
    ImageNet weights, otherwise the EffNet-Lite0 feature distance on `backend` (real ImageNet
    features rather than LPIPS's formula on a random trunk); LPIPS with the random trunk only
    where the EfficientNet package is missing too. Without torch it is the feature distance
    on OpenVINO (LPIPS cannot run: :data:`LPIPS_NEEDS_TORCH`), or a `ConfigError` saying why
    neither can run. Its ``name`` and ``backbone`` say which it is."""
    if not torch_installed():
        try:
            return FeatureDistanceMetric(backend=backend)
        except ConfigError as exc:
            raise ConfigError(f"no perceptual distance: {LPIPS_NEEDS_TORCH}, and the "
                              f"EffNet-Lite0 feature network cannot run either: {exc}") from exc
    alex = LPIPS_BACKBONE_FILES["alex"]
    if feature_distance_available(backend) and fetch_weights(
            _TV_URL + alex, alex, allow_download=allow_download) is None:
        return FeatureDistanceMetric(device=device, backend=backend)
    return LPIPSMetric("alex", device=device, allow_download=allow_download)


# --------------------------------------------------------------------------------------------
# FID


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))``.

    If the matrix square root is not finite (singular covariances), ``eps`` is added to the
    diagonals, as in pytorch-fid; a small imaginary part from rounding is dropped.
    """
    from scipy.linalg import sqrtm

    m1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    m2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = m1.shape[0]
    if m1.shape != (d,) or m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise MetricInputError(
            f"frechet_distance: shapes do not match: mu {m1.shape}, {m2.shape}; "
            f"sigma {s1.shape}, {s2.shape}"
        )
    diff = m1 - m2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        covmean = sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(d) * eps
            covmean = sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def _extract_patches(images: Any, patch_size: int) -> Any:
    """Split images into non-overlapping ``patch_size`` squares (remainders dropped):
    a float32 tensor ``(n, 3, patch_size, patch_size)`` on the CPU."""
    x = to_nchw_tensor(images, "images", "cpu")
    b, c, h, w = x.shape
    nh, nw = h // patch_size, w // patch_size
    x = x[:, :, : nh * patch_size, : nw * patch_size]
    x = x.reshape(b, c, nh, patch_size, nw, patch_size).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * nh * nw, c, patch_size, patch_size)


class FIDMetric:
    """Patch-level FID: Fréchet distance between Inception-v3 pool3 (2048-d) features of the
    non-overlapping ``patch_size`` patches of restored and reference images, as in the
    super-resolution literature (few images still give many samples).

    Needs torchvision's ImageNet Inception-v3 weights (``inception_v3_google-0cc3c7bd.pth``) in
    the torch hub cache, or downloads allowed. Without them ``available`` is False, ``reason``
    says why, and :meth:`update` / :meth:`compute` raise :class:`WeightsError` (FID with random
    weights would be meaningless). With fewer than 2 patches in either set :meth:`compute`
    returns nan and sets ``reason``.
    """

    def __init__(
        self,
        device: Any = "cpu",
        patch_size: int = 128,
        allow_download: bool | None = None,
        batch_size: int = 32,
    ) -> None:
        if patch_size < 1 or batch_size < 1:
            raise MetricInputError(
                f"patch_size and batch_size must be >= 1, got {patch_size}, {batch_size}"
            )
        self.device = device
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.available = False
        self.reason = ""
        self._model: Any = None
        self._feats: dict[str, list[np.ndarray]] = {"pred": [], "target": []}
        path = find_cached_weights(INCEPTION_FILE) or fetch_weights(
            _TV_URL + INCEPTION_FILE, INCEPTION_FILE, allow_download=allow_download
        )
        self.weights_path: Path | None = path
        if path is None:
            self.reason = (
                f"Inception-v3 weights {INCEPTION_FILE} are not in the torch hub cache "
                f"({torch_hub_checkpoint_dir()}) and downloading is not allowed or failed; "
                f"put the file there (or allow downloads) to compute FID"
            )
            return
        try:
            self._model = self._build(path)
        except WeightsError as exc:
            self.reason = f"cannot use the Inception-v3 weights: {exc}"
            return
        self.available = True

    def _build(self, path: Path) -> Any:
        import torch
        from torchvision.models import inception_v3

        state = _load_state_dict(path)
        model = inception_v3(
            weights=None, aux_logits=True, transform_input=False, init_weights=False
        )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path} is not torchvision's Inception-v3: {exc}") from exc
        model.AuxLogits = None
        model.fc = torch.nn.Identity()  # output = 2048-d pool3 features
        return model.eval().requires_grad_(False).to(self.device)

    def _require(self) -> None:
        if not self.available:
            raise WeightsError(self.reason)

    def _features(self, patches: Any) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        out = []
        with torch.inference_mode():
            for chunk in patches.split(self.batch_size):
                x = chunk.to(self.device)
                x = F.interpolate(
                    x,
                    size=(_INCEPTION_SIZE, _INCEPTION_SIZE),
                    mode="bilinear",
                    align_corners=False,
                    antialias=x.shape[-1] > _INCEPTION_SIZE,
                )
                out.append(self._model(x * 2 - 1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, _INCEPTION_DIM))

    def update(self, pred: Any, target: Any) -> None:
        """Add the patches of ``pred`` (restored) and ``target`` (reference) images."""
        self._require()
        for key, images in (("pred", pred), ("target", target)):
            patches = _extract_patches(images, self.patch_size)
            if patches.shape[0]:
                self._feats[key].append(self._features(patches))

    @property
    def num_patches(self) -> tuple[int, int]:
        """Patches accumulated so far: (pred, target)."""
        return tuple(sum(f.shape[0] for f in self._feats[k]) for k in ("pred", "target"))

    def reset(self) -> None:
        """Forget all accumulated features."""
        self._feats = {"pred": [], "target": []}

    def compute(self) -> float:
        """Patch FID of everything added so far (nan with ``reason`` if under 2 patches a set)."""
        self._require()
        n_pred, n_target = self.num_patches
        if n_pred < 2 or n_target < 2:
            self.reason = (
                f"FID needs at least 2 patches per set, got {n_pred} restored and {n_target} "
                f"reference patches of {self.patch_size}x{self.patch_size} (smaller images give none)"
            )
            return math.nan
        self.reason = ""
        fp = np.concatenate(self._feats["pred"])
        ft = np.concatenate(self._feats["target"])
        return frechet_distance(
            fp.mean(0), np.cov(fp, rowvar=False), ft.mean(0), np.cov(ft, rowvar=False)
        )
