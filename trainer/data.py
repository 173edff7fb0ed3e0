"""Training data: the held-out split, aligned crops and augmentation, the prepared Stage I
patches, and map-style torch datasets whose randomness depends only on (seed, epoch, index).
Finding paired datasets on disk is `trainer.pairs`.

Every dataset item is drawn with `np.random.default_rng([seed, epoch, index])`, so the same
item is identical in every worker, rank and resumed run; `set_epoch` varies it per epoch.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dtpm_core.errors import ConfigError
from dtpm_core.files.imageio import list_images, read_image
from dtpm_core.options import TASKS

from .pairs import DataError, Pair

T = TypeVar("T")

INDEX_NAME, CLEAN_DIR, SMOOTH_DIR = "index.json", "clean", "smooth"
"""The layout `trainer.prepare` writes and `PreparedPatches` reads."""
DEFAULT_CACHE_MB = 512
_EXAMPLES = 3


# ----------------------------------------------------------------------------- synthetic photos


def degraded_photos(clean: Sequence[Path | str], task: str, seed: int = 0, *,
                    held_out: bool = False) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """(photo, degraded, clean) for every image in `clean` (files or folders, sorted): photo i
    is degraded for `task` with `np.random.default_rng([seed, i])`, from the held-out
    degradation distribution when `held_out`. `dtpm-train eval --layout synthetic`,
    `dtpm-train compare` and scripts/texture_amplitude.py all draw their images here, so the
    same photos and seed give them the same degradations. `degraded` is `degrade`'s output as
    it is (not clipped)."""
    from trainer.degradations import degrade  # lazy: numpy-heavy, only needed here
    for index, path in enumerate(list_images(list(clean))):
        image = read_image(path).rgb
        rng = np.random.default_rng([seed, index])
        yield path, degrade(task, image, rng, held_out=held_out), image


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

        if task not in TASKS:
            raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
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
