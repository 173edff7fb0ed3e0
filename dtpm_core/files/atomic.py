"""Atomic file writes: every file the project writes appears whole or not at all.

The data goes to a hidden temporary file in the target's folder, is flushed to disk, and is
then renamed over the target (an atomic step on POSIX and Windows). If anything fails before
the rename, the temporary file is removed and an existing target keeps its old bytes. With
`replace=False` the finished file is hard-linked to its name instead, which fails when a file
of that name exists, so a file that appeared after the caller looked is never replaced.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb", encoding: str | None = None, *,
                  replace: bool = True) -> Iterator[IO]:
    """Open a temporary file for `path`; on a normal exit it replaces `path` (with `replace`
    False: takes the name only if it is free, else raises FileExistsError and keeps the file
    there), on an exception it is deleted. Parent folders are created."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=TEMP_SUFFIX,
                               dir=target.parent)
    os.close(fd)  # reopened by name: some writers (tifffile) need a file object with a path
    # mkstemp makes the file private (0600); give it the permissions a plain open() would:
    # an existing target's own, else the usual ones for new files under the user's umask
    with contextlib.suppress(OSError):
        os.chmod(tmp, _existing_mode(target) or _new_file_mode())
    try:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, target)
        else:
            _link_if_free(tmp, target)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(target.parent)


def _link_if_free(tmp: str, target: Path) -> None:
    """Give the finished temporary file the name `target` unless something has that name.
    A hard link is created atomically or not at all; where the file system has none (FAT,
    some network shares) the name is checked just before the rename instead, which leaves a
    moment in which a file created by another program could be replaced."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "a file of that name exists", str(target)) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "a file of that name exists",
                                  str(target)) from None
        os.replace(tmp, target)


_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                  errno.ENOSYS}


TEMP_NAME_BYTES = 80
"""Bytes of the target's name kept in its temporary file's name (the whole name must stay
under the file system's 255 bytes, whatever the script of the name)."""


def _temp_prefix(target: Path) -> str:
    kept = os.fsencode(target.name)[:TEMP_NAME_BYTES].decode("utf-8", errors="ignore")
    return f".{kept}."


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Delete the temporary files that writes of `path` left behind when their process was
    killed before the rename (a normal failure removes its own); returns the removed paths.
    Only names `atomic_writer` makes for this very path match, so nothing else is touched."""
    target = Path(path)
    pattern = re.compile(re.escape(_temp_prefix(target)) + r"[a-z0-9_]{8}"
                         + re.escape(TEMP_SUFFIX))
    removed: list[Path] = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        if pattern.fullmatch(name):
            stale = target.parent / name
            with contextlib.suppress(OSError):
                if stale.is_file() and not stale.is_symlink():
                    stale.unlink()
                    removed.append(stale)
    return removed


def write_bytes_atomic(path: str | Path, data: bytes, *, replace: bool = True) -> Path:
    with atomic_writer(path, "wb", replace=replace) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_writer(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def _existing_mode(target: Path) -> int | None:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return None


@functools.cache
def _new_file_mode() -> int:
    """0o666 less the process umask (read once: os.umask can only be read by setting it)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
