"""The folder of OpenVINO's compiled-model cache (its `CACHE_DIR`), kept within a size.

Compiling a converted graph for the CPU at one input size costs a fixed part of every run
(measured on an Ice Lake, one thread: 0.68 s for the single-pass network at 1280x1920, 0.35 s
read back from this cache; 0.42 against 0.12 s at 256 px). OpenVINO writes one blob per graph,
input size, precision and thread count, keyed by a hash of all of them, and checks a blob when
it reads it: a damaged or truncated blob is compiled again and rewritten, never used (tested).

The blobs live in `<graph cache>/compiled/`. A photo of a new size adds a blob (tens of MB),
so the folder is trimmed when a session opens it: the oldest blobs go first until the folder
holds at most `COMPILED_CACHE_BYTES`. Plain Python: no runtime is imported here.
"""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

COMPILED_FOLDER = "compiled"
COMPILED_CACHE_BYTES = 1 << 30
"""The most the compiled blobs may take on disk (1 GiB: about forty single-pass sizes)."""


def trim(folder: Path, limit: int = COMPILED_CACHE_BYTES) -> list[Path]:
    """Delete the oldest files in `folder` until the rest take at most `limit` bytes; returns
    the deleted paths. Files that vanish or cannot be deleted meanwhile are passed over."""
    files = []
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            info = path.stat()
            if stat.S_ISREG(info.st_mode):
                files.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in files)
    removed = []
    for _, size, path in sorted(files, key=lambda item: (item[0], item[2].name)):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size
            removed.append(path)
    return removed


def compiled_cache_folder(graph_cache_root: Path, limit: int = COMPILED_CACHE_BYTES
                          ) -> Path | None:
    """The compiled-model folder under the graph cache, created and trimmed to `limit`; None
    when it cannot be created (a read-only cache folder): then every run compiles afresh."""
    folder = Path(graph_cache_root) / COMPILED_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        trim(folder, limit)
    except OSError:
        return None
    return folder
