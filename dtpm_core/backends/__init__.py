"""Where the networks run: PyTorch (`torch_backend`) or OpenVINO (`openvino_backend`), on the
device, precision and thread count that `device` chooses.

The restorers keep one implementation of everything around the networks (DDIM loop, tiles,
blending, out-of-memory back-off); a backend only makes the network calls:

    predict(y_d) -> y_eps                                             initial predictor
    denoise(x_t, y_d, sqrt_gamma, semantic_code, guidance) -> eps     denoiser + adapters
    net(x, t) -> y                                                    single-pass network

all on (1, C, h, w) float32 numpy arrays in [-1, 1], outputs float32 arrays. Only the backend modules
import a runtime (an import-linter contract in pyproject.toml); this module imports none, so
that `dtpm-restore --help` and the app read the choices without paying for one.
"""

from __future__ import annotations

import importlib.util
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..options import BACKEND_CHOICES

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


def torch_installed() -> bool:
    """True where PyTorch can be imported (it is not imported here): a pip install; the CPU
    bundle leaves it out."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


@dataclass(frozen=True)
class CPUDevice:
    """The CPU as the OpenVINO backend names it: what the engines read of a `torch.device`
    (`type`, `str()`), without importing torch."""

    type: str = "cpu"

    def __str__(self) -> str:
        return self.type


MEASURED_MACHINES = ("x86_64", "amd64")
"""Processor architectures where OpenVINO was measured faster than torch (`platform.machine()`,
lower case); elsewhere (ARM) "auto" stays with torch until measured there."""


def resolve_backend(name: str | None, device: str = "auto", *,
                    machine: str | None = None) -> str:
    """"torch" or "openvino" for a backend choice and a device choice (None: the process
    preference, `set_backend_preference`); an explicit choice that cannot run is an error,
    never a silent fallback. OpenVINO runs on the CPU: with it, "auto" means the CPU. Only
    "auto" on a machine whose torch may see a GPU (`gpu_probe`) imports torch, to look.

    "auto" picks OpenVINO where it was measured faster: installed, on an x86-64 CPU
    (`machine`, default `platform.machine()`). End to end through `dtpm-restore` on a
    2.4 MP photo (benchmarks/bench_cli_backends.py) it ran DTPM K = 4 1.96x the torch fast
    path on a Sapphire Rapids with AMX (OpenVINO bf16) and 1.83x torch on an Ice Lake without
    native bf16 (both fp32, README "Backends"): besides the faster passes, a run without
    torch saves torch's import (1.7-2.5 s). ARM CPUs were never measured: "auto" stays with
    torch there. Without torch (the CPU bundle) "auto" is OpenVINO."""
    if name is None:
        name = _backend_preference
    if name not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {name!r}; choose one of {BACKEND_CHOICES}")
    on_cpu = device in ("auto", "cpu")
    if name == "auto":
        if not torch_installed():  # OpenVINO where it can run, else refused with the reason
            return _checked(OPENVINO if openvino_installed() and on_cpu else TORCH, device)
        if not on_cpu or not openvino_installed():
            return _checked(TORCH, device)
        if machine is None:
            machine = platform.machine()
        if machine.lower() not in MEASURED_MACHINES:
            return TORCH
        if device == "auto":
            from .gpu_probe import torch_may_see_a_gpu  # torch-free

            if torch_may_see_a_gpu():
                from .device import resolve_device  # imports torch: a GPU goes first
                if resolve_device("auto").type != "cpu":
                    return TORCH
        return OPENVINO
    return _checked(name, device)


def _checked(name: str, device: str) -> str:
    if name == OPENVINO:
        if device not in ("auto", "cpu"):
            raise ConfigError(f"the OpenVINO backend runs on the CPU, not on {device}; use "
                              "--device cpu, or --backend torch for the GPU")
        if not openvino_installed():
            raise ConfigError("the OpenVINO backend needs the openvino package: "
                              "pip install openvino (or use --backend torch)")
    elif not torch_installed():
        raise ConfigError("the torch backend needs PyTorch, which this installation leaves "
                          "out: use --backend openvino (or pip install torch)")
    return name


@dataclass(frozen=True)
class GraphLayout:
    """How a converted graph is called: its `inputs` by name, images first (`images` of them,
    (1, C, H, W) with H and W multiples of `multiple`, already padded), then vectors; the
    runtime pads the images as the torch network pads itself (`margin` mirrored pixels, then
    a multiple) and crops the output. Stored beside the graph (`LAYOUT_FILE`), so that a
    graph runs without building its network."""

    inputs: tuple[str, ...]
    images: int
    margin: int
    multiple: int

    def to_json(self) -> str:
        return json.dumps({"inputs": list(self.inputs), "images": self.images,
                           "margin": self.margin, "multiple": self.multiple}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GraphLayout:
        data = json.loads(text)
        return cls(tuple(data["inputs"]), int(data["images"]), int(data["margin"]),
                   int(data["multiple"]))


LAYOUT_FILE = "layout.json"


@dataclass(frozen=True)
class GraphSpec:
    """One network to convert for a graph runtime, described without importing one.

    `key` names the weights (content hashes), config and graph layout: what the converted
    graph depends on, and so what a cache entry is keyed by; it is known without torch.
    `build()` (torch, only when no converted graph is at hand) returns (module, example
    inputs, layout): an fp32 torch module whose forward takes the layout's inputs in order."""

    role: str
    key: dict[str, Any]
    build: Callable[[], tuple[Any, tuple[Any, ...], GraphLayout]] = field(compare=False,
                                                                         repr=False)
    shipped: tuple[Path, ...] = ()
    """Read-only folders that may hold this graph converted already, in the cache's layout:
    the `SHIPPED_GRAPHS` folder beside the weight files (`dtpm-train export --graphs`)."""


SHIPPED_GRAPHS = "graphs"
"""The folder beside a model's weight files that holds its converted graphs."""


def shipped_graph_folders(*paths: Path | None) -> tuple[Path, ...]:
    """The `SHIPPED_GRAPHS` folders beside these weight files, each once."""
    folders: list[Path] = []
    for path in paths:
        if path is not None and path.parent / SHIPPED_GRAPHS not in folders:
            folders.append(path.parent / SHIPPED_GRAPHS)
    return tuple(folders)
