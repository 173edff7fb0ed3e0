"""`dtpm-train prepare`: cut clean high-quality photos into patches and precompute their
RTV-smoothed versions for Stage I (DESIGN 1.2: x0 = x_g - y_s, condition y_s).

Output (read back by `trainer.data.PreparedPatches`):

    out_dir/clean/<stem>_<y>_<x>.png    x_g, 8-bit RGB
    out_dir/smooth/<stem>_<y>_<x>.png   y_s = RTV(x_g), 16-bit RGB (keeps the smoothing precise)
    out_dir/index.json                  settings (patch, stride, RTV parameters), the patches,
                                        the sources skipped as too small or unreadable

Every file is written atomically, so a killed run leaves only whole files; running the same
command again skips the patches whose two files exist and completes the rest. Patches are cut
on a regular grid (stride = patch by default: non-overlapping); the remainder at the right and
bottom borders is dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dtpm_core.diffusion.smoothing import RTVConfig, rtv_smooth
from dtpm_core.errors import ConfigError, ImageReadError
from dtpm_core.files.atomic import write_text_atomic
from dtpm_core.files.imageio import list_images, read_image, write_image

from .data import CLEAN_DIR, INDEX_NAME, SMOOTH_DIR, DataError

FORMAT_VERSION = 1
PAPER_PATCH = 512
"""Patch size of the paper's Stage I data."""
INDEX_SAVE_SECONDS = 60.0
"""How often the index is rewritten during a run, so a killed run leaves a usable index."""
_SETTINGS_THAT_CHANGE_PIXELS = ("format_version", "patch", "stride", "rtv", "clean_bit_depth",
                                "smooth_bit_depth")


@dataclass(frozen=True)
class PrepareReport:
    """What a `prepare` run did."""

    out_dir: Path
    patches_written: int  # new patches this run
    patches_skipped: int  # already complete from an earlier run
    patches_total: int  # listed in index.json
    sources_used: int
    too_small: tuple[Path, ...]  # shorter side below min_side
    failed: tuple[tuple[Path, str], ...]  # unreadable sources and the reason
    seconds: float

    def summary(self) -> str:
        """One paragraph for the command line."""
        lines = [f"{self.patches_total} patches in {self.out_dir} ({self.patches_written} new, "
                 f"{self.patches_skipped} already there) from {self.sources_used} image(s) in "
                 f"{self.seconds:.1f} s"]
        if self.too_small:
            lines.append(f"{len(self.too_small)} image(s) smaller than the patch size skipped, "
                         f"e.g. {self.too_small[0]}")
        lines += [f"skipped, unreadable: {reason}" for _, reason in self.failed]
        return "\n".join(lines)


def _unique_stems(files: Sequence[Path]) -> list[str]:
    """File stems, with a short hash of the path added where two files share a stem."""
    stems = [f.stem for f in files]
    counts = {s: stems.count(s) for s in set(stems)}
    return [s if counts[s] == 1 else
            f"{s}-{hashlib.blake2b(str(f.resolve()).encode(), digest_size=4).hexdigest()}"
            for s, f in zip(stems, files, strict=True)]


def _grid(height: int, width: int, patch: int, stride: int) -> list[tuple[int, int]]:
    return [(y, x) for y in range(0, height - patch + 1, stride)
            for x in range(0, width - patch + 1, stride)]


def _header_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header without decoding; (0, 0) if unreadable."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0, 0


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=1))


def _previous_index(out_dir: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Patches listed by an earlier run; DataError if it used settings that change pixels."""
    path = out_dir / INDEX_NAME
    if not path.is_file():
        return []
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_settings, patches = dict(old["settings"]), list(old["patches"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); delete it (the patch files are kept "
                        "and reused) or choose another output folder") from exc
    diff = {k: (old_settings.get(k), settings[k]) for k in _SETTINGS_THAT_CHANGE_PIXELS
            if old_settings.get(k) != settings[k]}
    if diff:
        shown = "; ".join(f"{k}: {a} before, {b} now" for k, (a, b) in diff.items())
        raise DataError(f"{out_dir} holds patches prepared with other settings ({shown}); "
                        "choose another output folder, or delete this one to start over")
    return patches


def _smooth(patch: np.ndarray, rtv: RTVConfig, device: torch.device) -> np.ndarray:
    """y_s = RTV(x_g) of one (P, P, 3) patch in [0, 1], float32 in [0, 1].

    One patch at a time: a batched solve rounds differently, and a resumed run must write
    the same bytes as an uninterrupted one.
    """
    x_g = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).to(device)  # (3,P,P)
    return np.clip(rtv_smooth(x_g, rtv).permute(1, 2, 0).cpu().numpy(), 0.0, 1.0)  # (P,P,3)


def prepare(sources: Sequence[Path | str], out_dir: Path | str, patch: int = PAPER_PATCH,
            stride: int | None = None, min_side: int | None = None,
            rtv: RTVConfig = RTVConfig(), progress: bool = True,  # noqa: B008 (frozen)
            limit: int | None = None, device: str | None = None) -> PrepareReport:
    """Cut the images in `sources` (files or folders, searched recursively) into patches and
    store each with its RTV-smoothed version; resumable.

    Args:
        patch: patch side in pixels (512 as in the paper).
        stride: grid step, default `patch` (non-overlapping).
        min_side: skip images whose shorter side is below this (default and minimum: patch);
            they are counted in the report.
        rtv: RTV smoothing parameters, stored in the index.
        progress: show a tqdm bar (patches per second).
        limit: stop once the index holds this many patches (existing ones count).
        device: where to run RTV ("cpu", "cuda"...); default CUDA when available.

    Unreadable images are reported and skipped. Raises DataError when no source image is found
    or `out_dir` holds patches made with other settings; ConfigError for bad numbers.
    """
    started = time.perf_counter()
    stride = patch if stride is None else stride
    min_side = patch if min_side is None else min_side
    if patch < 8 or stride < 1:
        raise ConfigError(f"patch must be >= 8 and stride >= 1 pixels, got {patch} and {stride}")
    if min_side < patch:
        raise ConfigError(f"min_side ({min_side}) cannot be below the patch size ({patch}): "
                          "smaller images give no patch")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1 patches, got {limit}")
    out_dir = Path(out_dir)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    settings = {"format_version": FORMAT_VERSION, "patch": patch, "stride": stride,
                "min_side": min_side, "rtv": dataclasses.asdict(rtv), "clean_bit_depth": 8,
                "smooth_bit_depth": 16}
    try:
        files = list_images(sources)
    except ImageReadError as exc:
        raise DataError(f"cannot list the source images: {exc}") from exc
    out_resolved = out_dir.resolve()
    files = [f for f in files if not f.resolve().is_relative_to(out_resolved)]
    if not files:
        raise DataError(f"no images found in {', '.join(str(s) for s in sources)} (clean "
                        "photos expected, as PNG, JPEG, TIFF, WebP or BMP files)")
    for sub in (CLEAN_DIR, SMOOTH_DIR):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    previous = _previous_index(out_dir, settings)

    entries: list[dict[str, Any]] = []
    too_small: list[Path] = []
    failed: list[tuple[Path, str]] = []
    written = skipped = used = 0

    def save(complete: bool) -> None:
        listed = entries
        if not complete:  # keep what an earlier run listed until this run gets there
            seen = {e["name"] for e in entries}
            listed = entries + [e for e in previous if e.get("name") not in seen]
        _write_json(out_dir / INDEX_NAME, {
            "format": "dtpm-prepared", "settings": settings, "complete": complete,
            "limit": limit, "patches": listed,
            "too_small": [str(p) for p in too_small],
            "failed": [{"source": str(p), "reason": r} for p, r in failed]})

    total = sum(len(_grid(*_header_size(f), patch, stride)) for f in files)
    bar = tqdm(total=min(total, limit) if limit else total, unit="patch", desc="prepare",
               disable=not progress, dynamic_ncols=True)
    save(complete=False)
    last_save = time.monotonic()
    try:
        for file, stem in zip(files, _unique_stems(files), strict=True):
            if limit is not None and len(entries) >= limit:
                break
            try:
                rgb = read_image(file).rgb  # (H, W, 3) float32
            except ImageReadError as exc:
                failed.append((file, str(exc)))
                bar.write(f"skipped: {exc}")
                continue
            if min(rgb.shape[:2]) < min_side:
                too_small.append(file)
                continue
            used += 1
            # x_g as it will be read back (8 bit), so that y_s is the smoothing of exactly it
            rgb = (np.rint(np.clip(rgb, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)
            for y, x in _grid(*rgb.shape[:2], patch, stride):
                if limit is not None and len(entries) >= limit:
                    break
                name = f"{stem}_{y}_{x}"
                entries.append({"name": name, "source": str(file), "y": y, "x": x})
                clean_path, smooth_path = (out_dir / d / f"{name}.png"
                                           for d in (CLEAN_DIR, SMOOTH_DIR))
                if clean_path.is_file() and smooth_path.is_file():
                    skipped += 1
                else:
                    x_g = rgb[y:y + patch, x:x + patch]  # (P, P, 3)
                    write_image(clean_path, x_g, bit_depth=8)
                    write_image(smooth_path, _smooth(x_g, rtv, dev), bit_depth=16)
                    written += 1
                bar.update(1)
            if time.monotonic() - last_save > INDEX_SAVE_SECONDS:
                save(complete=False)
                last_save = time.monotonic()
    except BaseException:
        save(complete=False)  # a kill or an error keeps what is done usable and resumable
        raise
    finally:
        bar.close()
    save(complete=True)
    return PrepareReport(out_dir, written, skipped, len(entries), used, tuple(too_small),
                         tuple(failed), time.perf_counter() - started)
