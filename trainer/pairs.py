"""Paired datasets on disk: the named layouts of the public restoration datasets and any two
folders matched by file name, as lists of (degraded, clean) `Pair`s.

Layouts (`find_pairs(layout, root, split)`):

    gopro         root/{train,test}/<scene>/{blur|blur_gamma,sharp}/*.png      (GOPRO_Large)
    dpdd          root/{train,val,test}_c/{source,target}/*.png          (dd_dp_dataset_png)
    snow100k      root/train/{synthetic,gt} (or the official all/{synthetic,gt}),
                  root/test/Snow100K-{L,M,S}/{synthetic,gt} (found at any depth)
    outdoor-rain  root/{train,test1}/{in,gt}: im_0001_s80_a04.png -> im_0001.png
    raindrop      root/{train,test_a,test_b}/{data,gt}: 7_rain.png -> 7_clean.png
    folders       any two folders matched by file name (suffixes such as _gt stripped)
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtpm_core.errors import ConfigError, DTPMError
from dtpm_core.files.imageio import SUPPORTED_EXTENSIONS, list_images

LAYOUTS = ("gopro", "dpdd", "snow100k", "outdoor-rain", "raindrop", "folders")
DEFAULT_SUFFIXES: tuple[str, ...] = (
    "_rain", "_rainy", "_clean", "_gt", "_target", "_input", "_blur", "_blurry", "_sharp",
    "_snow", "_haze", "_hazy", "_lq", "_hq", "_degraded", "_groundtruth",
)
"""File-name endings removed before matching degraded and clean files (case-insensitive)."""
DPDD_MAX_CAPTURE_GAP = 3
"""DPDD names a target by its own capture number, 1-2 from its source (1P0A0917 -> 1P0A0916)."""
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
