"""Choosing the compute device, the precision and the CPU thread count for inference.

The fast CPU path (measured on a 2-core Sapphire Rapids, ../shared/CPU_SPEED_NOTES.md):
channels-last networks and inputs, weights converted to bf16 *once* at load, and bf16
autocast for the passes. It is chosen by ``precision="auto"`` on CPUs with native bf16
(AMX-BF16 or AVX512-BF16); elsewhere "auto" is fp32. Autocast alone, with fp32 weights
re-cast at every call, was slower than fp32. What the sampling maths needs in fp32 stays
fp32: the denoiser's ending convolution (its epsilon output), the DDIM update and the
image conversion.

torch is imported inside the functions, so that `dtpm-restore --help` and the app's start-up
(which only read the choices) do not pay for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..options import DEVICE_CHOICES, PRECISION_CHOICES

if TYPE_CHECKING:
    import torch
    from torch import nn

"""auto: bf16 on a CPU with native bf16 (AMX / AVX512-BF16), fp32 everywhere else."""
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of CPUs that compute bf16 natively (without them bf16 is emulated
and slower than fp32)."""
THREADS_ENV = "DTPM_THREADS"
"""Environment variable that fixes the CPU thread count (else: the free cores at start)."""

_configured_threads: int | None = None
_precision_preference = "auto"


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" picks CUDA, then Apple MPS, then the CPU; a named device must be available."""
    import torch

    if name not in DEVICE_CHOICES and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; choose one of {DEVICE_CHOICES}")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available "
                          "(use --device auto or cpu)")
    if name == "mps" and not mps_ok:
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available "
                          "(use --device auto or cpu)")
    return torch.device(name)


@functools.cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux); empty where it does not."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_native_bf16(flags: Iterable[str] | None = None) -> bool:
    """True on CPUs with AMX-BF16 or AVX512-BF16 (Intel Cooper Lake / Sapphire Rapids and
    later, AMD Zen 4 and later). Other systems (macOS, Windows, older CPUs) report False,
    and "auto" keeps fp32 there."""
    flags = cpu_flags() if flags is None else frozenset(flags)
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def set_precision_preference(precision: str) -> None:
    """The precision a `Restorer` / `SinglePassRestorer` uses when none is passed (the app
    sets its saved setting here once at start-up)."""
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {PRECISION_CHOICES}")
    global _precision_preference
    _precision_preference = precision


def resolve_precision(device: torch.device, precision: str | None = None,
                      bf16_cpu: bool | None = None) -> str:
    """The precision to run: "fp32", "bf16" or "fp16". None means the process preference
    (`set_precision_preference`, default "auto"). An explicit choice the device cannot
    honour is an error, never a silent fallback.

    Args:
        bf16_cpu: whether the CPU has native bf16 (default: detected; tests pass it).
    """
    precision = _precision_preference if precision is None else precision
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {PRECISION_CHOICES}")
    if device.type == "cpu":
        native = cpu_has_native_bf16() if bf16_cpu is None else bf16_cpu
        if precision == "auto":
            return "bf16" if native else "fp32"
        if precision == "fp16":
            raise ConfigError("fp16 is not supported on the CPU; use --precision auto, bf16 "
                              "or fp32")
        if precision == "bf16" and not native:
            raise ConfigError("this CPU has no native bf16 (AMX-BF16 or AVX512-BF16), where "
                              "bf16 is emulated and slower than fp32; use --precision auto "
                              "or fp32")
        return precision
    if precision == "auto":
        return "fp32"  # GPUs: unchanged until measured there
    if precision == "bf16" and device.type == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return precision
        raise ConfigError("this GPU does not support bf16; use --precision fp16 or fp32")
    return precision


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for the network passes at a resolved precision (fp32: no autocast)."""
    import torch

    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"unknown precision {precision!r}; resolve it first "
                          "(resolve_precision)")
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type == "cpu" and precision == "fp16":
        raise ConfigError("fp16 is not supported on the CPU; use bf16 or fp32")
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_for_inference(module: nn.Module, device: torch.device, precision: str,
                          keep_fp32: Iterable[nn.Module] = ()) -> nn.Module:
    """Move a network to `device` for inference at a resolved precision, once:
    - on the CPU, channels-last weights (convolutions run 1.3-1.6x faster, same output) and
      LayerNorm2d as one fused op over the channels (`dtpm_core.networks.inference_layers`);
    - bf16: weights converted to bf16 once, except the modules in `keep_fp32` (the
      denoiser's ending convolution, which runs outside autocast so that epsilon stays
      fp32). Returns the module (changed in place)."""
    import torch

    from ..networks.inference_layers import use_fused_layer_norms

    module.to(device).eval().requires_grad_(False)
    if device.type == "cpu":
        module.to(memory_format=torch.channels_last)
        use_fused_layer_norms(module)
    if precision == "bf16":
        kept = {id(p) for m in keep_fp32 for p in m.parameters()}
        for param in module.parameters():
            if id(param) not in kept:
                param.data = param.data.to(torch.bfloat16)
        for buffer_owner in module.modules():
            for name, buf in buffer_owner.named_buffers(recurse=False):
                if buf.is_floating_point():
                    setattr(buffer_owner, name, buf.to(torch.bfloat16))
    return module


def to_network_layout(x: torch.Tensor) -> torch.Tensor:
    """An input batch (B, C, H, W) in the layout `prepare_for_inference` chose (channels-last
    on the CPU): the first convolution then needs no reorder."""
    import torch

    if x.device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def default_thread_count(cores: int | None = None, load: float | None = None) -> int:
    """Threads for the free cores: all usable cores minus those that other processes keep
    busy (1-minute load average). OpenMP threads that share a busy core spin and ran 2.3x
    slower than one thread (CPU_SPEED_NOTES)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # Windows has no load average
            load = 0.0
    return max(1, min(cores, cores - int(load + 0.5)))


def configure_threads(threads: int | None = None) -> int:
    """Set the CPU thread count for the whole process, once. The entry points call it before
    their first model loads (`dtpm-restore`, the app's workers for interactive and batch
    work, the benchmarks), so they all run with the same count; library users such as the
    trainer keep torch's own setting unless they call it.
    The first call decides (an explicit `threads`, else $DTPM_THREADS, else
    $OMP_NUM_THREADS as torch read it, else `default_thread_count()`); later calls return it
    unchanged. Returns the count."""
    global _configured_threads
    if _configured_threads is not None:
        return _configured_threads
    if threads is None:
        threads = _threads_from_environment()
    if threads < 1:
        raise ConfigError(f"the thread count must be at least 1, got {threads}")
    _configured_threads = threads
    if "torch" in sys.modules:  # else `apply_threads_to_torch` when a torch backend starts
        apply_threads_to_torch()
    return threads


def _threads_from_environment() -> int:
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):  # OMP_NUM_THREADS: as torch reads it
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        try:
            return int(value.split(",")[0])
        except ValueError:
            if name == THREADS_ENV:
                raise ConfigError(f"{THREADS_ENV}={value!r} is not a whole number of "
                                  "threads") from None
    return default_thread_count()


def thread_count() -> int:
    """The configured thread count (`configure_threads`), else what it would choose."""
    return _configured_threads if _configured_threads is not None \
        else _threads_from_environment()


def apply_threads_to_torch() -> None:
    """Give torch the configured thread count (no-op before `configure_threads`)."""
    if _configured_threads is None:
        return
    import torch

    if torch.get_num_threads() != _configured_threads:
        torch.set_num_threads(_configured_threads)


def describe_cpu_path(device: torch.device, precision: str) -> str:
    """One line for logs and benchmarks: device, precision, threads."""
    import torch

    layout = ", channels-last" if device.type == "cpu" else ""
    return f"{device.type}, {precision}{layout}, {torch.get_num_threads()} threads, " \
           f"torch {torch.__version__} ({sys.platform})"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, which a smaller tile may avoid (torch's own
    error class is checked only where torch is loaded already)."""
    torch = sys.modules.get("torch")
    if isinstance(exc, MemoryError) or (
            torch is not None and isinstance(exc, torch.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text
                                              or "failed to allocate" in text)


def release_cached_memory(device: torch.device) -> None:
    if device.type not in ("cuda", "mps"):
        return
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
