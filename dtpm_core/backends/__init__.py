"""Where the networks run: PyTorch (`torch_backend`) or OpenVINO (`openvino_backend`), on the
device, precision and thread count that `device` chooses.

The restorers keep one implementation of everything around the networks (DDIM loop, tiles,
blending, out-of-memory back-off); a backend only makes the network calls:

    predict(y_d) -> y_eps                                             initial predictor
    denoise(x_t, y_d, sqrt_gamma, semantic_code, guidance) -> eps     denoiser + adapters
    net(x, t) -> y                                                    single-pass network

all on (1, C, h, w) torch tensors in [-1, 1], outputs in fp32. Only the backend modules
import a runtime (an import-linter contract in pyproject.toml); this module imports none, so
that `dtpm-restore --help` and the app read the choices without paying for one.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..options import BACKEND_CHOICES

if TYPE_CHECKING:
    import torch

TORCH, OPENVINO = "torch", "openvino"

_backend_preference = "auto"


def set_backend_preference(name: str) -> None:
    """The backend a restorer uses when none is passed (None): the app sets its saved
    setting here once at start-up, as it does the precision."""
    if name not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {BACKEND_CHOICES}")
    global _backend_preference
    _backend_preference = name


def backend_preference() -> str:
    return _backend_preference


def openvino_installed() -> bool:
    """True where the `openvino` package can be imported (it is not imported here)."""
    return importlib.util.find_spec("openvino") is not None


def resolve_backend(name: str | None, device: torch.device, *, experts: bool = False,
                    native_bf16: bool | None = None) -> str:
    """"torch" or "openvino" for a backend choice on a resolved device (None: the process
    preference, `set_backend_preference`); an explicit choice that cannot run is an error,
    never a silent fallback.

    "auto" picks OpenVINO only where it was measured faster: on a CPU with native bf16 (AMX
    or AVX512-BF16: a denoiser pass 1.35x the torch fast path at 512 px, 1.9x at 1024,
    shared/CPU_SPEED_NOTES.md), with OpenVINO installed, for networks without MoE experts.
    On a CPU without native bf16 OpenVINO fp32 measured level with torch fp32 (DTPM K = 4
    28.1 vs 28.5 s/MP), and the single-pass network (`experts`) runs all its experts in the
    graph (0.61x torch), so "auto" stays with torch there."""
    if name is None:
        name = _backend_preference
    if name not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {BACKEND_CHOICES}")
    if name == "auto":
        if device.type != "cpu" or experts or not openvino_installed():
            return TORCH
        if native_bf16 is None:
            from .device import cpu_has_native_bf16  # torch-free module
            native_bf16 = cpu_has_native_bf16()
        return OPENVINO if native_bf16 else TORCH
    if name == OPENVINO:
        if device.type != "cpu":
            raise ConfigError(f"the OpenVINO backend runs on the CPU, not on {device.type}; use "
                              "--device cpu, or --backend torch for the GPU")
        if not openvino_installed():
            raise ConfigError("the OpenVINO backend needs the openvino package: "
                              "pip install openvino (or use --backend torch)")
    return name


@dataclass(frozen=True)
class GraphSpec:
    """One network to convert for a graph runtime, described without importing one.

    `build()` returns (module, example inputs): an fp32 torch module whose forward takes the
    `inputs` in order, images first (`images` of them, (1, C, H, W) with H and W multiples of
    `multiple`, already padded), then vectors; the runtime pads the images as the torch
    network pads itself (`margin` mirrored pixels, then a multiple) and crops the output.
    `key` names the weights (content hashes), config and graph layout: what the converted
    graph depends on, and so what a cache entry is keyed by."""

    role: str
    key: dict[str, Any]
    inputs: tuple[str, ...]
    images: int
    margin: int
    multiple: int
    build: Callable[[], tuple[Any, tuple[Any, ...]]] = field(compare=False, repr=False)
