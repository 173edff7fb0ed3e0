"""How much memory restoring one image takes, and how much the process may still use, so that a
batch can choose a smaller tile for a large photo or skip it with a message instead of dying
with a MemoryError in the middle (issue 21 item 5).

The estimate is the peak resident memory that reading, restoring and writing one image adds
to a process that has the engine loaded: a part per image pixel (full-size buffers: the
decoded image, the blended maps, the DDIM state, the result, the encoder's copy) and a part
per pixel of one tile (the network's activations). Measured with the shipped models on the
CPU at fp32 (peak RSS after reset, 1000x1000 and 2000x1500 photos, tiles 128 / 256 / 512):

    DTPM K=4        125 MiB per megapixel + 2.0 kB per tile pixel (0.5 GiB at tile 512)
    DTPM K=1         85 MiB per megapixel
    single-pass      58 MiB per megapixel + 1.35 kB per tile pixel
    read + write     58 MiB per megapixel (what stays in host memory when a GPU computes)

The OpenVINO backend needs far less per tile pixel (`dtpm-restore`, peak RSS above that of a
64x48 photo, a 1898x1264 photo in 512 px tiles and in one window, shipped models; fp32, the
larger, is what the estimate uses; bf16 in brackets):

    DTPM K=4         90 B per pixel + 960 B per tile pixel (635; 1.9 GB peak at 2.4 MP untiled)
    single-pass      70 B per pixel + 425 B per tile pixel (262)

On a GPU the tiles and the full-size maps live in GPU memory, which is not estimated here:
the out-of-memory back-off to smaller tiles and the per-file failure handle it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..backends import OPENVINO
from ..options import DTPM, MIN_TILE, SINGLE_PASS

BYTES_PER_PIXEL: dict[str, int] = {DTPM: 131, SINGLE_PASS: 61}
"""Bytes per image pixel on the CPU (the DTPM value is K=4's, the larger)."""
BYTES_PER_TILE_PIXEL: dict[str, int] = {DTPM: 2030, SINGLE_PASS: 1400}
"""Bytes per pixel of one tile (network activations) on the CPU."""
OPENVINO_BYTES_PER_PIXEL: dict[str, int] = {DTPM: 90, SINGLE_PASS: 70}
OPENVINO_BYTES_PER_TILE_PIXEL: dict[str, int] = {DTPM: 960, SINGLE_PASS: 425}
"""The same two on the OpenVINO backend (measured at fp32; bf16 takes less)."""
HOST_BYTES_PER_PIXEL = 61
"""Host memory per image pixel when the networks run on a GPU (read, result, write)."""
SAFETY_MARGIN = 1.25
"""The estimate is multiplied by this (allocator slack, other threads, measurement spread)."""
_UNLIMITED = 1 << 60


def tile_pixels(height: int, width: int, tile: int) -> int:
    """Pixels of the largest window the tiler makes (the whole image when tile is 0 or the
    image fits in one tile)."""
    if tile <= 0:
        return height * width
    return min(tile, height) * min(tile, width)


def estimate_bytes(engine: str, height: int, width: int, tile: int, device: str = "cpu",
                   backend: str = "torch") -> int:
    """Peak memory (bytes, with SAFETY_MARGIN) that restoring a height x width image adds,
    for `engine` (DTPM or SINGLE_PASS) on `device` ("cpu", "cuda", "mps") with `backend`
    ("torch" or "openvino")."""
    pixels = height * width
    if device != "cpu":
        return int(SAFETY_MARGIN * HOST_BYTES_PER_PIXEL * pixels)
    per_pixel, per_tile_pixel = (
        (OPENVINO_BYTES_PER_PIXEL, OPENVINO_BYTES_PER_TILE_PIXEL) if backend == OPENVINO
        else (BYTES_PER_PIXEL, BYTES_PER_TILE_PIXEL))
    need = per_pixel[engine] * pixels \
        + per_tile_pixel[engine] * tile_pixels(height, width, tile)
    return int(SAFETY_MARGIN * need)


def fit_tile(engine: str, height: int, width: int, tile: int, device: str,
             available: int, backend: str = "torch") -> int | None:
    """The tile to use for this image within `available` bytes: `tile` itself if it fits,
    else the largest halving of it down to MIN_TILE that does; None if none does."""
    current = max(int(tile), 0)
    while True:
        if estimate_bytes(engine, height, width, current, device, backend) <= available:
            return current
        if device != "cpu":
            return None  # the host part does not depend on the tile
        start = current if current > 0 else max(height, width)
        smaller = start // 2
        if smaller < MIN_TILE or tile_pixels(height, width, smaller) == \
                tile_pixels(height, width, current):
            return None
        current = smaller


def available_memory_bytes() -> int | None:
    """Bytes this process may still allocate: the least of the system's available memory,
    the room left under its cgroup limits and under its address-space and data limits
    (ulimit -v / -d). None where none of them can be read (not Linux)."""
    limits = [_meminfo_available(Path("/proc/meminfo")),
              *_cgroup_room(Path("/proc/self/cgroup"), Path("/sys/fs/cgroup")),
              *_rlimit_room(Path("/proc/self/status"))]
    known = [v for v in limits if v is not None]
    return max(0, min(known)) if known else None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available(path: Path) -> int | None:
    try:
        found = re.search(r"^MemAvailable:\s+(\d+) kB", path.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def _cgroup_room(membership: Path, root: Path) -> list[int | None]:
    """Limit minus usage (less reclaimable page cache) for the process's memory cgroup and
    every cgroup above it, v2 and v1."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return []
    rooms: list[int | None] = []
    for line in lines:
        _, controllers, relative = line.split(":", 2)
        if controllers == "":  # cgroup v2
            base, limit_name, usage_name, cache_key = root, "memory.max", "memory.current", \
                "inactive_file"
        elif "memory" in controllers.split(","):
            base, limit_name, usage_name, cache_key = root / "memory", \
                "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"
        else:
            continue
        folder = base / relative.lstrip("/")
        while True:
            limit = _read_int(folder / limit_name)
            if limit is not None and limit < _UNLIMITED:
                usage = _read_int(folder / usage_name) or 0
                rooms.append(limit - max(0, usage - _stat_value(folder, cache_key)))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return rooms


def _stat_value(folder: Path, key: str) -> int:
    try:
        found = re.search(rf"^{key} (\d+)$", (folder / "memory.stat").read_text(), re.MULTILINE)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def _rlimit_room(status: Path) -> list[int | None]:
    """Room under RLIMIT_AS (virtual size) and RLIMIT_DATA (data segment), where set."""
    try:
        import resource
    except ImportError:  # not POSIX
        return []
    try:
        text = status.read_text()
    except OSError:
        return []
    rooms: list[int | None] = []
    for limit_id, key in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft, _ = resource.getrlimit(limit_id)
        found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        if soft != resource.RLIM_INFINITY and found:
            rooms.append(soft - int(found.group(1)) * 1024)
    return rooms


def describe_bytes(n: int) -> str:
    """'1.4 GiB', '300 MiB'."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{max(n, 0) / 2**20:.0f} MiB"

