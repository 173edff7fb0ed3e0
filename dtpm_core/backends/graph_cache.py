"""The cache of converted graphs: converted once, checked at every use.

    <root>/<first 32 hex digits of sha256(key)>/
        model.xml, model.bin      the converted graph
        layout.json               its inputs and padding (`GraphLayout`)
        manifest.json             the key and the size and sha256 of every file

The graphs shipped beside the models (`<models>/graphs/`, `dtpm-train export --graphs`) have
the same layout and are read first, never written.

`root` is the user cache folder ("DTPM Studio"/openvino), or $DTPM_GRAPH_CACHE. The key holds
the weight files' content hashes, the network's config and graph layout, and the runtime's
version. An entry is written into a temporary folder beside it and renamed into place whole
(the manifest last), so a crash leaves no half entry under its name; an entry whose manifest
is missing, unreadable or for another key, or whose files are missing, truncated or changed,
is reported, removed and rebuilt, never used. Plain Python: no runtime is imported here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import LAYOUT_FILE, GraphLayout

CACHE_ENV = "DTPM_GRAPH_CACHE"
"""Environment variable naming the cache folder (tests point it at a temporary folder)."""
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
ENTRY_NAME_LENGTH = 32
"""An entry's folder is named by the first this many hex digits of its key's sha256."""


def default_cache_root() -> Path:
    """$DTPM_GRAPH_CACHE, else the user cache folder's "openvino" (per user, per platform)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("DTPM Studio", appauthor=False)) / "openvino"


@dataclass(frozen=True)
class CacheEntry:
    """A checked entry: `folder` holds the files; `converted` is True when this call built
    it; `problem` says what was wrong with the entry it replaced ("" when none)."""

    folder: Path
    converted: bool
    problem: str = ""

    @property
    def layout(self) -> GraphLayout:
        """How the graph here is called (`LAYOUT_FILE`, checked with the entry)."""
        return GraphLayout.from_json((self.folder / LAYOUT_FILE).read_text(encoding="utf-8"))


def key_digest(key: dict[str, Any]) -> str:
    """sha256 of the key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def entry_name(key: dict[str, Any]) -> str:
    """The name of the folder that holds `key`'s entry."""
    return key_digest(key)[:ENTRY_NAME_LENGTH]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_key(key: dict[str, Any]) -> dict[str, Any]:
    """The key as its manifest holds it (JSON: tuples become lists, keys sorted)."""
    return json.loads(json.dumps(key, sort_keys=True))


def check_entry(folder: Path, key: dict[str, Any]) -> str:
    """What is wrong with the entry in `folder` for `key`: "" when it is whole and current."""
    key = canonical_key(key)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest (an unfinished or foreign entry)"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        recorded_key = manifest["key"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    if recorded_key != key:
        return "made for other weights or another runtime version (stale)"
    if not files:
        return "its manifest lists no files"
    for name, record in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != record.get("size"):
            return f"{name} has {path.stat().st_size} bytes, the manifest says " \
                   f"{record.get('size')} (truncated or changed)"
        if _file_sha256(path) != record.get("sha256"):
            return f"{name} does not match its sha256 (damaged)"
    return ""


def find_shipped(key: dict[str, Any], roots: tuple[Path, ...]) -> tuple[CacheEntry | None, str]:
    """The whole entry for `key` in one of the read-only `roots` (graphs shipped beside the
    models, written by `GraphCache(root).get`), and what was wrong with a damaged one ("" when
    none); a damaged entry is left as it is, never used."""
    key = canonical_key(key)
    digest = entry_name(key)
    problem = ""
    for root in roots:
        if (root / digest).exists():
            wrong = check_entry(root / digest, key)
            if not wrong:
                return CacheEntry(root / digest, converted=False), ""
            problem = problem or f"the graph shipped in {root / digest} is unusable ({wrong})"
    return None, problem


class GraphCache:
    """Converted graphs under `root`, one folder per key."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    def folder(self, key: dict[str, Any]) -> Path:
        return self.root / entry_name(key)

    def entries(self) -> list[Path]:
        """The folders of the converted graphs here, by name (none when there is no cache
        folder; OpenVINO's compiled blobs, `compiled_cache`, are not entries)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir()
                      if p.is_dir() and len(p.name) == ENTRY_NAME_LENGTH
                      and not p.name.startswith("."))

    def has(self, key: dict[str, Any]) -> bool:
        """True when a whole, current entry for `key` is here (nothing would be built)."""
        return self.find(key) is not None

    def find(self, key: dict[str, Any]) -> CacheEntry | None:
        """The whole, current entry for `key`, or None (`get` would build one)."""
        folder = self.folder(canonical_key(key))
        return CacheEntry(folder, converted=False) \
            if folder.exists() and not check_entry(folder, key) else None

    def get(self, key: dict[str, Any], build: Callable[[Path], None]) -> CacheEntry:
        """The checked entry for `key`, built with `build(folder)` (which writes the graph
        files into an empty folder) when there is none or it is damaged or stale."""
        key = canonical_key(key)
        folder = self.folder(key)
        problem = ""
        if folder.exists():
            cached = check_entry(folder, key)
            if not cached:
                return CacheEntry(folder, converted=False)
            problem = f"the graph cached in {folder} was unusable ({cached})"
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=self.root))
        try:
            build(tmp)
            files = {p.name: {"size": p.stat().st_size, "sha256": _file_sha256(p)}
                     for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {"format": MANIFEST_FORMAT, "key": key, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True),
                                        encoding="utf-8")
            if folder.exists():  # the damaged or stale entry: out of the way first
                _remove(folder)
            try:
                os.rename(tmp, folder)
            except OSError:
                # another process put a whole entry there meanwhile: use it if it checks out
                if check_entry(folder, key):
                    raise
        finally:
            if tmp.exists():
                _remove(tmp)
        return CacheEntry(folder, converted=True, problem=problem)


def _remove(folder: Path) -> None:
    """Delete a folder: renamed aside first, so that its name never shows a half-deleted
    entry."""
    aside = folder.with_name(f".{folder.name}.{os.getpid()}.removed")
    with contextlib.suppress(OSError):
        os.rename(folder, aside)
        folder = aside
    shutil.rmtree(folder, ignore_errors=True)
