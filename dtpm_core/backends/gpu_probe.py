"""Whether the installed PyTorch could find a GPU here, answered without importing torch
(about 2 s): `resolve_backend("auto")` asks it before it looks for a GPU through torch, so a
machine without one picks OpenVINO without paying for the import (issue 22, start-up)."""

from __future__ import annotations

import ctypes
import importlib.util
import re
import sys
from pathlib import Path

NVIDIA_DRIVER_LIBRARIES = {"win32": ("nvcuda.dll",)}
"""The CUDA driver library by platform (Linux and others: libcuda.so.1)."""


def torch_may_see_a_gpu() -> bool:
    """False only where the installed torch certainly finds no GPU: torch not installed, a
    CPU-only wheel (version "+cpu"), a ROCm wheel without AMD's kernel driver (/dev/kfd), or a
    CUDA wheel without an NVIDIA driver or device. True otherwise (then torch decides), and
    always on macOS, whose Metal GPU only torch can ask about."""
    if sys.platform == "darwin":
        return True
    version = installed_torch_version()
    if version is None:
        return False
    if "+cpu" in version:
        return False
    if "rocm" in version:
        return Path("/dev/kfd").exists()
    return nvidia_device_count() > 0


_VERSION_LINE = re.compile(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)


def installed_torch_version() -> str | None:
    """torch.__version__ ("2.14.1+cu130", with the wheel's build tag, which the installed
    package's metadata may leave out) read from the package's `version.py` without importing
    torch or importlib.metadata (30-70 ms of every start-up, measured); None where torch is
    not installed, "" where its version file is missing or unreadable."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found = _VERSION_LINE.search(text)
        if found:
            return found.group(1)
    return ""


def nvidia_device_count() -> int:
    """CUDA devices the NVIDIA driver reports (driver API: cuInit, cuDeviceGetCount); 0 where
    the driver library is missing or fails."""
    for name in NVIDIA_DRIVER_LIBRARIES.get(sys.platform, ("libcuda.so.1", "libcuda.so")):
        try:
            cuda = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        try:
            if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
        except AttributeError:  # not the driver library after all
            return 0
        return count.value
    return 0
