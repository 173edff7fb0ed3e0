"""How the metrics take their images: float arrays ``(H, W, C)`` in [0, 1] (``(H, W)`` grey and
``(N, H, W, C)`` batches too), or torch tensors ``(B, C, H, W)`` / ``(C, H, W)``. torch is
imported only for a metric that runs on it (a tensor can only exist once torch is imported)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import DTPMError


class MetricInputError(DTPMError, ValueError):
    """Images given to a metric have mismatched or unsupported shapes."""


# --------------------------------------------------------------------------------------------
# input handling


def is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist if torch was imported
    return torch is not None and isinstance(x, torch.Tensor)


def to_nhwc(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a float64 ``(N, H, W, C)`` array."""
    if is_tensor(x):
        arr = x.detach().to("cpu").double().numpy()
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4:
            raise MetricInputError(
                f"{name}: expected a tensor (B, C, H, W) or (C, H, W), got shape {tuple(arr.shape)}"
            )
        return arr.transpose(0, 2, 3, 1)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        return arr[None, :, :, None]
    if arr.ndim == 3:
        return arr[None]
    if arr.ndim == 4:
        return arr
    raise MetricInputError(
        f"{name}: expected an array (H, W), (H, W, C) or (N, H, W, C), got shape {arr.shape}"
    )


def pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = to_nhwc(pred, "pred"), to_nhwc(target, "target")
    if p.shape != t.shape:
        raise MetricInputError(
            f"pred and target differ in shape: {p.shape} vs {t.shape} (as N, H, W, C)"
        )
    return p, t


def nchw_pair(pred: Any, target: Any, device: Any) -> tuple[Any, Any]:
    """Both images as (N, 3, H, W) tensors on `device`; differing shapes are an error."""
    a = to_nchw_tensor(pred, "pred", device)
    b = to_nchw_tensor(target, "target", device)
    if a.shape != b.shape:
        raise MetricInputError(
            f"pred and target differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}"
        )
    return a, b


def to_nchw_tensor(x: Any, name: str, device: Any) -> Any:
    """Return ``x`` as a float32 torch tensor ``(N, 3, H, W)`` on ``device`` (grey -> 3 channels)."""
    import torch

    if is_tensor(x):
        t = x.detach()
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4:
            raise MetricInputError(
                f"{name}: expected a tensor (B, C, H, W) or (C, H, W), got shape {tuple(t.shape)}"
            )
    else:
        arr = to_nhwc(x, name)
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    t = t.to(device=device, dtype=torch.float32)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    if t.shape[1] != 3:
        raise MetricInputError(f"{name}: expected 1 or 3 channels, got {t.shape[1]}")
    return t
