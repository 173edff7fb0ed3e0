"""Training data: paired dataset discovery, the prepared Stage I patches, and map-style torch
datasets whose randomness depends only on (seed, epoch, index).

Layouts (`find_pairs(layout, root, split)`):

    gopro         root/{train,test}/<scene>/{blur|blur_gamma,sharp}/*.png      (GOPRO_Large)
    dpdd          root/{train,val,test}_c/{source,target}/*.png          (dd_dp_dataset_png)
    snow100k      root/train/{synthetic,gt} (or the official all/{synthetic,gt}),
                  root/test/Snow100K-{L,M,S}/{synthetic,gt} (found at any depth)
    outdoor-rain  root/{train,test1}/{in,gt}: im_0001_s80_a04.png -> im_0001.png
    raindrop      root/{train,test_a,test_b}/{data,gt}: 7_rain.png -> 7_clean.png
    folders       any two folders matched by file name (suffixes such as _gt stripped)

Every dataset item is drawn with `np.random.default_rng([seed, epoch, index])`, so the same
item is identical in every worker, rank and resumed run; `set_epoch` varies it per epoch.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dtpm_core.errors import ConfigError, DTPMError
from dtpm_core.imageio import SUPPORTED_EXTENSIONS, list_images, read_image

T = TypeVar("T")

LAYOUTS = ("gopro", "dpdd", "snow100k", "outdoor-rain", "raindrop", "folders")
DEFAULT_SUFFIXES: tuple[str, ...] = (
    "_rain", "_rainy", "_clean", "_gt", "_target", "_input", "_blur", "_blurry", "_sharp",
    "_snow", "_haze", "_hazy", "_lq", "_hq", "_degraded", "_groundtruth",
)
"""File-name endings removed before matching degraded and clean files (case-insensitive)."""
DPDD_MAX_CAPTURE_GAP = 3
"""DPDD names a target by its own capture number, 1-2 from its source (1P0A0917 -> 1P0A0916)."""
INDEX_NAME, CLEAN_DIR, SMOOTH_DIR = "index.json", "clean", "smooth"
"""The layout `trainer.prepare` writes and `PreparedPatches` reads."""
DEFAULT_CACHE_MB = 512
_EXAMPLES = 3


class DataError(DTPMError):
    """A dataset is missing, empty, laid out unexpectedly or holds unusable files."""


class UnmatchedFilesWarning(UserWarning):
    """Some files of a paired dataset have no partner; the matched pairs are still used."""


@dataclass(frozen=True)
class Pair:
    """A degraded image and its clean target."""

    degraded: Path
    clean: Path


@dataclass(frozen=True)
class FolderMatch:
    """Result of matching two folders: the pairs and the files left without a partner."""

    pairs: tuple[Pair, ...]
    unmatched_degraded: tuple[Path, ...]
    unmatched_clean: tuple[Path, ...]


# ----------------------------------------------------------------------------- matching


def _quote(paths: Sequence[Path], n: int = _EXAMPLES) -> str:
    more = f" and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(repr(p.name) for p in paths[:n]) + more


def strip_suffixes(stem: str, suffixes: Sequence[str] = DEFAULT_SUFFIXES) -> str:
    """The matching key of a file stem: lower-cased, with the longest listed suffix removed."""
    low = stem.casefold()
    for suffix in sorted(suffixes, key=len, reverse=True):
        s = suffix.casefold()
        if s and low.endswith(s) and len(low) > len(s):
            return low[: -len(s)]
    return low


def _require_dir(path: Path, role: str, expected: str) -> Path:
    if not path.is_dir():
        raise DataError(f"folder {path} not found ({role}); expected {expected}")
    return path


def _images(folder: Path, role: str, recursive: bool) -> list[Path]:
    files = list_images([folder], recursive=recursive)
    if not files:
        raise DataError(f"no images in {folder} (expected the {role} images, with extensions "
                        f"{', '.join(sorted(SUPPORTED_EXTENSIONS))})")
    return files


def match_folders(degraded_dir: Path | str, clean_dir: Path | str, *,
                  key: Callable[[str], str] | None = None,
                  suffixes: Sequence[str] = DEFAULT_SUFFIXES,
                  recursive: bool = False) -> FolderMatch:
    """Match the images of two folders by file name, whatever their extensions.

    `key(stem)` gives the name two partners share (default: `strip_suffixes`); several degraded
    files may share one clean file (Outdoor-Rain). With `recursive`, sub-folder paths must
    match too. Raises DataError for a missing or empty folder, or two clean files with one key.
    """
    degraded_dir, clean_dir = Path(degraded_dir), Path(clean_dir)
    key = key or (lambda stem: strip_suffixes(stem, suffixes))
    _require_dir(degraded_dir, "degraded images", "a folder of degraded images")
    _require_dir(clean_dir, "clean images", "a folder of clean images")

    def full_key(path: Path, base: Path) -> tuple[str, str]:
        return path.parent.relative_to(base).as_posix(), key(path.stem)

    clean_by_key: dict[tuple[str, str], Path] = {}
    for path in _images(clean_dir, "clean", recursive):
        k = full_key(path, clean_dir)
        if k in clean_by_key:
            raise DataError(f"{clean_by_key[k].name!r} and {path.name!r} in {clean_dir} both "
                            f"match the name {k[1]!r}; keep one of them")
        clean_by_key[k] = path
    pairs, unmatched, used = [], [], set()
    for path in _images(degraded_dir, "degraded", recursive):
        k = full_key(path, degraded_dir)
        if k in clean_by_key:
            pairs.append(Pair(path, clean_by_key[k]))
            used.add(k)
        else:
            unmatched.append(path)
    lonely = sorted(p for k, p in clean_by_key.items() if k not in used)
    return FolderMatch(tuple(pairs), tuple(unmatched), tuple(lonely))


def _accept(match: FolderMatch, degraded_dir: Path, clean_dir: Path, hint: str) -> list[Pair]:
    """The pairs of a match; DataError if there are none, a warning if some files are alone."""
    if not match.pairs:
        raise DataError(
            f"no pairs matched between {degraded_dir} and {clean_dir}: "
            f"{_quote(match.unmatched_degraded, 1)} in {degraded_dir} has no partner; files in "
            f"{clean_dir} look like {_quote(match.unmatched_clean)}. {hint}")
    parts = [f"{len(files)} in {folder} (e.g. {_quote(files)})"
             for files, folder in ((match.unmatched_degraded, degraded_dir),
                                   (match.unmatched_clean, clean_dir)) if files]
    if parts:
        warnings.warn(f"{len(match.pairs)} pairs matched; files without a partner, skipped: "
                      + "; ".join(parts), UnmatchedFilesWarning, stacklevel=3)
    return list(match.pairs)


def pairs_from_folders(degraded_dir: Path | str, clean_dir: Path | str, *,
                       suffixes: Sequence[str] = DEFAULT_SUFFIXES,
                       recursive: bool = False) -> list[Pair]:
    """Pairs from any two folders matched by file name (see `match_folders`), sorted by the
    degraded path. DataError if nothing matches; a warning listing examples if some files are
    left without a partner (`match_folders` gives the full lists)."""
    match = match_folders(degraded_dir, clean_dir, suffixes=suffixes, recursive=recursive)
    hint = ("Files are matched by name without extension, case-insensitively, after removing "
            f"one of the endings {', '.join(suffixes)}; rename the files or pass other suffixes.")
    return _accept(match, Path(degraded_dir), Path(clean_dir), hint)


# ----------------------------------------------------------------------------- layouts


def _split_name(split: str, allowed: dict[str, str], layout: str) -> str:
    name = allowed.get(split.strip().lower().replace("-", "_"))
    if name is None:
        raise DataError(f"unknown split {split!r} for the {layout} layout; use one of "
                        + ", ".join(sorted(allowed)))
    return name


def _first_dir(candidates: Sequence[Path], layout: str, expected: str) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    raise DataError(f"folder {candidates[0]} not found for the {layout} layout (also looked for "
                    f"{', '.join(str(p) for p in candidates[1:]) or 'nothing else'}); "
                    f"expected {expected}")


def _sub_pair(base: Path, names: Sequence[tuple[str, str]], layout: str,
              expected: str) -> tuple[Path, Path]:
    """The first (degraded, clean) pair of sub-folder names present under `base`."""
    for deg, clean in names:
        if (base / deg).is_dir() and (base / clean).is_dir():
            return base / deg, base / clean
    deg, clean = names[0]
    missing = base / deg if not (base / deg).is_dir() else base / clean
    raise DataError(f"folder {missing} not found for the {layout} layout; expected {expected}")


def gopro(root: Path | str, split: str = "train", *, blur: str = "blur") -> list[Pair]:
    """GoPro (GOPRO_Large): root/{train,test}/<scene>/{blur,sharp}/*.png; `blur="blur_gamma"`
    picks the gamma-encoded blurred frames. The input/target re-packaging of MPRNet and
    Restormer (root/{train,test}/{input,target}) is accepted too."""
    if blur not in ("blur", "blur_gamma"):
        raise ConfigError(f"GoPro blur must be 'blur' or 'blur_gamma', got {blur!r}")
    expected = f"{root}/{{train,test}}/<scene>/{{{blur},sharp}}/*.png (the GOPRO_Large download)"
    base = _require_dir(Path(root) / _split_name(split, {"train": "train", "test": "test"},
                                                 "gopro"), "GoPro split", expected)
    if (base / "input").is_dir() and (base / "target").is_dir():
        return pairs_from_folders(base / "input", base / "target")
    scenes = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not scenes:
        raise DataError(f"no scene folders in {base}; expected {expected}")
    pairs: list[Pair] = []
    for scene in scenes:
        pairs += pairs_from_folders(*_sub_pair(scene, [(blur, "sharp")], "gopro", expected),
                                    suffixes=())
    return pairs


def _capture_number(stem: str) -> int | None:
    found = re.search(r"(\d+)$", stem)
    return int(found.group(1)) if found else None


def _pair_by_order(source: Path, target: Path) -> list[Pair]:
    """DPDD pairs: sorted sources with sorted targets, checked by their capture numbers."""
    src, tgt = _images(source, "blurred", False), _images(target, "sharp", False)
    if len(src) != len(tgt):
        raise DataError(f"{source} holds {len(src)} images but {target} holds {len(tgt)}; DPDD "
                        "pairs them by sorted order, so both must have the same number")
    for s, t in zip(src, tgt, strict=True):
        ns, nt = _capture_number(s.stem), _capture_number(t.stem)
        if ns is None or nt is None or abs(ns - nt) > DPDD_MAX_CAPTURE_GAP:
            raise DataError(f"cannot pair {s} with {t}: DPDD pairs sorted files whose capture "
                            f"numbers differ by at most {DPDD_MAX_CAPTURE_GAP} (like "
                            "1P0A0917.png -> 1P0A0916.png); is a file missing or extra?")
    return [Pair(s, t) for s, t in zip(src, tgt, strict=True)]


def dpdd(root: Path | str, split: str = "train") -> list[Pair]:
    """DPDD (dd_dp_dataset_png): root/{train,val,test}_c/{source,target}/*.png, the combined
    (centre) view, 16-bit. Files with equal names are paired by name; otherwise (the official
    release names each target by its own capture number) by sorted order, checked. The
    Restormer re-packaging root/{train,val,test}/{inputC,target} is accepted too."""
    name = _split_name(split, {"train": "train", "val": "val", "test": "test", "train_c": "train",
                               "val_c": "val", "test_c": "test"}, "dpdd")
    expected = f"{root}/{{train_c,val_c,test_c}}/{{source,target}}/*.png (dd_dp_dataset_png)"
    base = _first_dir([Path(root) / f"{name}_c", Path(root) / name], "dpdd", expected)
    source, target = _sub_pair(base, [("source", "target"), ("inputC", "target")], "dpdd",
                               expected)
    match = match_folders(source, target, suffixes=())
    if not match.pairs:  # the official release: every target has its own capture number
        return _pair_by_order(source, target)
    return _accept(match, source, target, "")


_SNOW_SIZES = {"test": "L", "test_l": "L", "test_m": "M", "test_s": "S", "l": "L", "m": "M",
               "s": "S"}


def snow100k(root: Path | str, split: str = "train") -> list[Pair]:
    """Snow100K: root/train/{synthetic,gt} (or Snow100K-training/all/{synthetic,gt}) and
    root/test/Snow100K-{L,M,S}/{synthetic,gt}; split "train", "test-L" (= "test"), "test-M"
    or "test-S". Snowy and clean files share their names."""
    root = Path(root)
    expected = (f"{root}/train/{{synthetic,gt}} and {root}/test/Snow100K-{{L,M,S}}/"
                "{synthetic,gt}/*.jpg")
    key = split.strip().lower().replace("-", "_")
    if key == "train":
        base = _first_dir([root / "train", root / "all", root / "Snow100K-training" / "all"],
                          "snow100k", expected)
    elif key in _SNOW_SIZES:
        size = f"Snow100K-{_SNOW_SIZES[key]}"
        direct = [root / "test" / size, root / size]
        # the official test archive nests it: jdway/GameSSD/overlapping/test/Snow100K-L
        found = [p for p in direct if p.is_dir()] or sorted(
            p for p in root.glob(f"**/{size}") if p.is_dir())
        if not found:
            raise DataError(f"folder {direct[0]} not found for the snow100k layout (nor a "
                            f"folder named {size} anywhere below {root}); expected {expected}")
        base = found[0]
    else:
        raise DataError(f"unknown split {split!r} for the snow100k layout; use train, test-L "
                        "(= test), test-M or test-S")
    deg, clean = _sub_pair(base, [("synthetic", "gt")], "snow100k", expected)
    return pairs_from_folders(deg, clean, suffixes=())


_RAIN_PARAMS = re.compile(r"_s\d+_a\d+$", re.IGNORECASE)


def outdoor_rain(root: Path | str, split: str = "train") -> list[Pair]:
    """Outdoor-Rain (Li et al., CVPR 2019, "Heavy Rain Image Restoration"): root/train and
    root/test1 (Test1) with in/ and gt/; fifteen rainy versions im_0001_s80_a04.png ...
    share the clean im_0001.png (matched by the part before _s<beta>_a<alpha>)."""
    root = Path(root)
    name = _split_name(split, {"train": "train", "test": "test1", "test1": "test1"},
                       "outdoor-rain")
    expected = f"{root}/{{train,test1}}/{{in,gt}}/im_XXXX[_sNN_aNN].png"
    candidates = [root / name] + ([root / "test", root / "test_with_train_param_v5"]
                                  if name == "test1" else [])
    base = _first_dir(candidates, "outdoor-rain", expected)
    deg, clean = _sub_pair(base, [("in", "gt"), ("input", "gt"), ("data", "gt")],
                           "outdoor-rain", expected)
    match = match_folders(deg, clean, key=lambda stem: _RAIN_PARAMS.sub("", stem).casefold())
    return _accept(match, deg, clean, "Outdoor-Rain matches im_0001_s80_a04.png with "
                   "im_0001.png.")


def raindrop(root: Path | str, split: str = "train") -> list[Pair]:
    """RainDrop (Qian et al., CVPR 2018): root/{train,test_a,test_b}/{data,gt} with
    N_rain.png -> N_clean.png (any extension); split "test" means test_a."""
    root = Path(root)
    name = _split_name(split, {"train": "train", "test": "test_a", "test_a": "test_a",
                               "test_b": "test_b"}, "raindrop")
    expected = f"{root}/{{train,test_a,test_b}}/{{data,gt}}/N_rain.png, N_clean.png"
    base = _require_dir(root / name, "RainDrop split", expected)
    deg, clean = _sub_pair(base, [("data", "gt")], "raindrop", expected)
    return pairs_from_folders(deg, clean, suffixes=("_rain", "_clean"))


_FOLDER_NAMES = (("input", "target"), ("degraded", "clean"), ("lq", "gt"), ("input", "gt"),
                 ("blur", "sharp"), ("rain", "norain"), ("data", "gt"), ("source", "target"))


def find_pairs(layout: str, root: Path | str, split: str = "train", *,
               degraded_dir: Path | str | None = None, clean_dir: Path | str | None = None,
               **options: Any) -> list[Pair]:
    """Pairs of a dataset by layout name (one of `LAYOUTS`), sorted by degraded path.

    For "folders", give `degraded_dir` and `clean_dir` (relative ones are taken under `root`),
    or a root (or root/split) holding input/target, degraded/clean, lq/gt, ... sub-folders.
    Extra `options` go to the layout function (e.g. blur="blur_gamma" for GoPro).
    """
    name = layout.strip().lower().replace("_", "-")
    if name == "folders":
        if degraded_dir and clean_dir:
            base = Path(root) if root else Path()
            return pairs_from_folders(base / degraded_dir, base / clean_dir, **options)
        base = Path(root) / split if (Path(root) / split).is_dir() else Path(root)
        expected = ("degraded_dir and clean_dir, or sub-folders "
                    + ", ".join(f"{d}/+{c}/" for d, c in _FOLDER_NAMES))
        deg, clean = _sub_pair(base, _FOLDER_NAMES, "folders", expected)
        return pairs_from_folders(deg, clean, **options)
    readers: dict[str, Callable[..., list[Pair]]] = {
        "gopro": gopro, "dpdd": dpdd, "snow100k": snow100k, "outdoor-rain": outdoor_rain,
        "raindrop": raindrop}
    if name not in readers:
        raise DataError(f"unknown dataset layout {layout!r}; use one of {', '.join(LAYOUTS)} "
                        "(or 'synthetic' for degradations of clean images)")
    return readers[name](root, split, **options)


# ----------------------------------------------------------------------------- held-out split


def _default_key(item: Any) -> str:
    if isinstance(item, Pair):
        return item.clean.name
    if isinstance(item, str | Path):
        return Path(item).name
    if isinstance(item, np.ndarray):
        return hashlib.sha256(repr(item.shape).encode() + item.tobytes()).hexdigest()
    raise ConfigError(f"split_held_out: no file name for a {type(item).__name__}; pass key=")


def split_held_out(items: Sequence[T], held_out: float | Collection[str], seed: int = 0, *,
                   key: Callable[[T], str] | None = None) -> tuple[list[T], list[T]]:
    """Split items into (train, held_out), deterministically on every run and machine.

    `held_out` is a fraction of the distinct keys (file names by default: a Pair's clean file
    name, so all the degraded versions of one clean image land on the same side), chosen by
    ranking keys by a seeded hash, or a collection of names (with or without extension).
    Both lists keep the input order; no key is on both sides. GoPro frame names repeat across
    scenes: `key=lambda p: p.clean.parent.parent.name` holds out whole scenes instead.
    """
    if isinstance(held_out, str):
        held_out = [held_out]
    key = key or _default_key
    keys = [key(item) for item in items]
    unique = sorted(set(keys))
    if isinstance(held_out, int | float) and not isinstance(held_out, bool):
        if not 0.0 <= held_out < 1.0:
            raise ConfigError(f"held-out fraction must be in [0, 1), got {held_out}")
        count = 0 if held_out == 0 else max(1, round(held_out * len(unique)))
        if count >= len(unique):
            raise DataError(f"cannot hold out {held_out:.0%} of {len(unique)} image(s) and "
                            "keep some for training; add images or set the fraction to 0")

        def rank(k: str) -> tuple[bytes, str]:
            return hashlib.blake2b(f"{seed}\0{k}".encode(), digest_size=8).digest(), k

        chosen = set(sorted(unique, key=rank)[:count])
    else:
        wanted = {str(n) for n in held_out}
        chosen = {k for k in unique if k in wanted or Path(k).stem in wanted}
        found = {n for n in wanted if any(n in (k, Path(k).stem) for k in chosen)}
        if wanted - found:
            raise DataError(f"held-out name(s) {sorted(wanted - found)[:_EXAMPLES]} match no "
                            f"item; names look like {unique[:_EXAMPLES]}")
    train = [it for it, k in zip(items, keys, strict=True) if k not in chosen]
    held = [it for it, k in zip(items, keys, strict=True) if k in chosen]
    return train, held


# ----------------------------------------------------------------------------- crops


def _pad_to(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad (bottom, right) to at least (height, width); repeats for tiny images."""
    while array.shape[0] < height or array.shape[1] < width:
        h, w = array.shape[:2]
        dh, dw = min(max(height - h, 0), h - 1), min(max(width - w, 0), w - 1)
        pad = ((0, dh), (0, dw)) + ((0, 0),) * (array.ndim - 2)
        if dh == 0 and dw == 0:  # a 1-pixel side cannot reflect: repeat it
            pad = ((0, max(height - h, 0)), (0, max(width - w, 0))) + pad[2:]
            return np.pad(array, pad, mode="edge")
        array = np.pad(array, pad, mode="reflect")
    return array


def random_crop(arrays: Sequence[np.ndarray], size: int | tuple[int, int],
                rng: np.random.Generator) -> list[np.ndarray]:
    """The same random (h, w) window of every (H, W[, C]) array; smaller ones are
    reflect-padded first. Raises ValueError if the arrays differ in height or width."""
    ch, cw = (size, size) if isinstance(size, int) else size
    if ch < 1 or cw < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"arrays to crop together differ in size: {sorted(shapes)}")
    arrays = [_pad_to(a, ch, cw) for a in arrays]
    h, w = arrays[0].shape[:2]
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return [a[y:y + ch, x:x + cw].copy() for a in arrays]  # copies: never views of a cache


def augment(arrays: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One of the 8 flips/rotations (horizontal flip, then k * 90 degrees), the same for all."""
    flip, turns = bool(rng.integers(2)), int(rng.integers(4))
    out = []
    for a in arrays:
        a = a[:, ::-1] if flip else a
        out.append(np.ascontiguousarray(np.rot90(a, turns, axes=(0, 1))))
    return out


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float array -> (3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


# ----------------------------------------------------------------------------- datasets


class _ImageCache:
    """Decoded images (float32 RGB) by path, least recently used dropped past max_bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(int(max_bytes), 0)
        self._items: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, path: Path) -> np.ndarray:
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        image = read_image(path).rgb
        if image.nbytes <= self.max_bytes:
            self._items[path] = image
            self._bytes += image.nbytes
            while self._bytes > self.max_bytes:
                self._bytes -= self._items.popitem(last=False)[1].nbytes
        return image


class _Seeded(Dataset):
    """Per-item generators from (seed, epoch, index)."""

    def __init__(self, seed: int) -> None:
        if int(seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Vary the crops and augmentations per epoch (call before creating the loader)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < len(self):  # type: ignore[arg-type]
            raise IndexError(f"index {index} out of range for {len(self)} items")  # type: ignore[arg-type]
        return np.random.default_rng([self.seed, self.epoch, int(index)])


def _check_crop(crop: int | None) -> None:
    if crop is not None and int(crop) < 1:
        raise ConfigError(f"crop must be a positive number of pixels or None, got {crop}")


class PairedCrops(_Seeded):
    """Aligned random crops of (degraded, clean) pairs with the same flip/rotation.

    Images smaller than the crop are reflect-padded; `crop=None` returns whole images.
    Decoded images are cached per worker up to `cache_mb` megabytes. An empty pair list
    gives an empty dataset (the held-out side of a split with fraction 0).
    Items: dict(degraded=(3, crop, crop), clean=(3, crop, crop)) float32 tensors in [0, 1].
    """

    def __init__(self, pairs: Sequence[Pair], crop: int | None, seed: int = 0, *,
                 augment: bool = True, cache_mb: int = DEFAULT_CACHE_MB) -> None:
        super().__init__(seed)
        _check_crop(crop)
        self.pairs, self.crop, self.augment = list(pairs), crop, augment
        self._cache = _ImageCache(cache_mb * 2**20)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng, pair = self._rng(index), self.pairs[index]
        degraded, clean = self._cache.get(pair.degraded), self._cache.get(pair.clean)
        if degraded.shape != clean.shape:
            raise DataError(f"the pair {pair.degraded} / {pair.clean} differs in size: "
                            f"{degraded.shape[1]}x{degraded.shape[0]} vs {clean.shape[1]}x"
                            f"{clean.shape[0]} pixels; pairs must be aligned, same-size images")
        arrays = [degraded, clean]
        if self.crop is not None:
            arrays = random_crop(arrays, self.crop, rng)
        if self.augment:
            arrays = augment(arrays, rng)
        return {"degraded": _to_tensor(arrays[0]), "clean": _to_tensor(arrays[1])}


class SyntheticPairs(_Seeded):
    """Crops of clean images degraded on the fly by `trainer.degradations.degrade(task, ...)`.

    `held_out=True` draws degradations from the held-out parameter distribution (evaluation
    of generalisation). `length` sets a virtual epoch size (item i uses image i mod N); no
    images give an empty dataset.
    Items: dict(degraded=(3, crop, crop), clean=(3, crop, crop)) float32 tensors in [0, 1].
    """

    def __init__(self, clean_images: Sequence[Path] | Sequence[np.ndarray], task: str,
                 crop: int, seed: int = 0, held_out: bool = False, length: int | None = None,
                 *, augment: bool = True, cache_mb: int = DEFAULT_CACHE_MB) -> None:
        super().__init__(seed)
        _check_crop(crop)
        from trainer import degradations  # lazy: numpy-heavy, only needed for this dataset

        if task not in degradations.TASKS:
            raise ConfigError(f"unknown task {task!r}; use one of {', '.join(degradations.TASKS)}")
        for image in clean_images:
            if isinstance(image, np.ndarray) and (image.ndim != 3 or image.shape[2] != 3):
                raise ConfigError(f"clean images must be (H, W, 3) arrays, got {image.shape}")
        self.images = list(clean_images)
        self.task, self.crop, self.held_out, self.augment = task, int(crop), held_out, augment
        self.length = len(self.images) if length is None else int(length)
        if self.length < 1:
            raise ConfigError(f"length must be >= 1, got {length}")
        if not self.images:  # e.g. the held-out side of a split with fraction 0
            self.length = 0
        self._cache = _ImageCache(cache_mb * 2**20)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from trainer import degradations

        rng = self._rng(index)
        source = self.images[index % len(self.images)]
        image = source if isinstance(source, np.ndarray) else self._cache.get(Path(source))
        (clean,) = random_crop([np.asarray(image, dtype=np.float32)], self.crop, rng)
        if self.augment:
            (clean,) = augment([clean], rng)
        degraded = degradations.degrade(self.task, clean, rng, held_out=self.held_out)
        if degraded.shape != clean.shape:
            raise DataError(f"degrade({self.task!r}) returned shape {degraded.shape} for a "
                            f"crop of shape {clean.shape}")
        degraded = np.clip(degraded, 0.0, 1.0)
        return {"degraded": _to_tensor(degraded), "clean": _to_tensor(clean)}


# ----------------------------------------------------------------------------- prepared patches


@dataclass(frozen=True)
class PreparedIndex:
    """The content of a prepared folder's index.json."""

    root: Path
    patches: tuple[dict[str, Any], ...]  # {"name", "source", "y", "x"}
    settings: dict[str, Any]
    complete: bool

    @property
    def sources(self) -> list[str]:
        """The distinct source images of the patches, sorted."""
        return sorted({p["source"] for p in self.patches})


def read_index(root: Path | str) -> PreparedIndex:
    """Read `root/index.json` written by `trainer.prepare`; DataError if it is missing,
    unreadable or lists no patches."""
    root = Path(root)
    run_first = f"run `dtpm-train prepare <clean images> --out {root}` first"
    path = root / INDEX_NAME
    if not path.is_file():
        missing = f"the index {path}" if root.is_dir() else "the folder"
        raise DataError(f"no prepared patches at {root} ({missing} does not exist); {run_first}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        patches = tuple(data["patches"])
        settings = dict(data["settings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read {path} ({exc}); {run_first} again") from exc
    if not patches:
        raise DataError(f"{path} lists no patches (were all source images too small or "
                        f"unreadable?); {run_first}")
    return PreparedIndex(root, patches, settings, bool(data.get("complete", False)))


def _read_patch(path: Path) -> np.ndarray:
    """A prepared 8- or 16-bit RGB PNG as (H, W, 3) float32 in [0, 1] (OpenCV: fast)."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.ndim != 3 or array.shape[2] != 3:
        raise DataError(f"prepared patch {path} is missing or unreadable; run `dtpm-train "
                        "prepare` again with the same settings to complete the folder")
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB).astype(np.float32) / np.float32(scale)


class PreparedPatches(_Seeded):
    """Stage I training data: clean patches x_g and their RTV-smoothed versions y_s, read from
    the folder `trainer.prepare` wrote, with the same random crop and flip/rotation for both.

    `split` "train" or "held-out" keeps the patches of one side of
    `split_held_out(sources, held_out_fraction, seed)`, split by source image so that no photo
    is on both sides ("all" keeps every patch); `sources` further keeps only the patches of
    those source images (paths or file names). `crop=None` returns whole patches.
    Items: dict(clean=(3, crop, crop), smooth=(3, crop, crop)) float32 tensors in [0, 1].
    """

    def __init__(self, root: Path | str, crop: int | None = 256, seed: int = 0, *,
                 augment: bool = True, split: str = "all", held_out_fraction: float = 0.0,
                 sources: Collection[str] | None = None) -> None:
        super().__init__(seed)
        _check_crop(crop)
        self.index = read_index(root)
        self.root, self.crop, self.augment = Path(root), crop, augment
        size = int(self.index.settings.get("patch", 0))
        if crop is not None and size and crop > size:
            raise ConfigError(f"crop {crop} is larger than the prepared patches ({size} pixels "
                              f"in {self.root}); lower the crop or prepare larger patches")
        if split not in ("all", "train", "held-out"):
            raise ConfigError(f"split must be 'all', 'train' or 'held-out', got {split!r}")
        keep = set(self.index.sources)
        if split != "all":
            train, held = split_held_out(self.index.sources, held_out_fraction, self.seed)
            keep = set(train if split == "train" else held)
        if sources is not None:
            wanted = {str(s) for s in sources}
            keep = {s for s in keep if s in wanted or Path(s).name in wanted}
            if not keep:
                raise DataError(f"none of the selected source images {sorted(wanted)[:3]} "
                                f"has patches in {self.root} (split {split!r})")
        self.patches = tuple(p for p in self.index.patches if p["source"] in keep)
        if not self.index.complete:
            warnings.warn(f"{self.root} was not finished by `dtpm-train prepare`; using the "
                          f"{len(self.patches)} patches listed so far", UserWarning, stacklevel=2)

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        name = self.patches[index]["name"]
        arrays = [_read_patch(self.root / CLEAN_DIR / f"{name}.png"),
                  _read_patch(self.root / SMOOTH_DIR / f"{name}.png")]
        if self.crop is not None:
            arrays = random_crop(arrays, self.crop, rng)
        if self.augment:
            arrays = augment(arrays, rng)
        return {"clean": _to_tensor(arrays[0]), "smooth": _to_tensor(arrays[1])}
