"""Training data of the single-pass engine: clean crops for TMDDP pre-training, and task pairs
tagged with their matched time step (one task for GEF, the cumulative union for MTUL)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dtpm_core.errors import ConfigError

from ..config import TrainConfig
from ..data import DEFAULT_CACHE_MB, _ImageCache, _Seeded, _to_tensor, augment, random_crop


class CleanCrops(_Seeded):
    """Random crops of clean images (with flips/rotations): TMDDP pre-training data.

    Items: dict(clean=(3, crop, crop)) float32 tensors in [0, 1]. `length` sets a virtual
    epoch size (item i uses image i mod N).
    """

    def __init__(self, images: Sequence[Path], crop: int, seed: int = 0,
                 length: int | None = None, *, augment: bool = True,
                 cache_mb: int = DEFAULT_CACHE_MB) -> None:
        super().__init__(seed)
        self.images, self.crop, self.augment = list(images), int(crop), augment
        if self.crop < 1:
            raise ConfigError(f"crop must be a positive number of pixels, got {crop}")
        self.length = 0 if not self.images else (len(self.images) if length is None
                                                 else int(length))
        self._cache = _ImageCache(cache_mb * 2**20)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng(index)
        image = self._cache.get(Path(self.images[index % len(self.images)]))
        (clean,) = random_crop([image], self.crop, rng)
        if self.augment:
            (clean,) = augment([clean], rng)
        return {"clean": _to_tensor(clean)}


class TimeStepped(Dataset):
    """Adds the matched time step `t` (a long scalar tensor) to every item of a pair dataset."""

    def __init__(self, dataset: Dataset, t_mat: int) -> None:
        self.dataset, self.t_mat = dataset, int(t_mat)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.dataset[index])
        item["t"] = torch.tensor(self.t_mat, dtype=torch.long)
        return item


class TaskMixture(Dataset):
    """Several TimeStepped task datasets as one (MTUL's cumulative data): each item keeps its
    own task's t_mat.

    Without `weights` the datasets are concatenated (every task's items once per epoch). With
    `weights` (one non-negative number per dataset) item i draws its task with probability
    weight / sum(weights) and then one of that task's items, both from (seed, epoch, i): the
    same item in every worker and resumed run, a new draw each epoch."""

    def __init__(self, datasets: Sequence[TimeStepped], weights: Sequence[float] | None = None,
                 seed: int = 0) -> None:
        if not datasets:
            raise ConfigError("a task mixture needs at least one task")
        self.datasets = list(datasets)
        self.ends = list(np.cumsum([len(d) for d in self.datasets]))
        self.seed, self.epoch = int(seed), 0
        self.shares: list[float] | None = None
        if weights is not None:
            w = np.asarray(list(weights), dtype=np.float64)
            if w.shape != (len(self.datasets),):
                raise ConfigError(f"{len(w)} task weights for {len(self.datasets)} tasks")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ConfigError(f"task weights must be >= 0 with a positive sum, got "
                                  f"{list(weights)}")
            if any(len(d) == 0 for d, wi in zip(self.datasets, w, strict=True) if wi > 0):
                raise ConfigError("a task with a positive weight has no training items")
            self.shares = list(np.cumsum(w) / w.sum())

    def __len__(self) -> int:
        return int(self.ends[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for d in self.datasets:
            d.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.shares is not None:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            which = min(bisect.bisect_right(self.shares, rng.random()), len(self.datasets) - 1)
            part = self.datasets[which]
            return part[int(rng.integers(len(part)))]
        which = bisect.bisect_right(self.ends, index)
        start = 0 if which == 0 else int(self.ends[which - 1])
        return self.datasets[which][index - start]


def clean_images(config: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(training, held-out) clean photos of `data.clean`, split by `data.held_out_fraction`."""
    from dtpm_core.files.imageio import list_images

    from ..data import split_held_out
    if not config.data.clean:
        raise ConfigError("single-pass training needs clean photos: set data.clean "
                          "(e.g. --set 'data.clean=[\"data/clean_train\"]')")
    images = list_images([Path(p) for p in config.data.clean])
    if not images:
        raise ConfigError(f"no images found in {list(config.data.clean)}")
    train, held = split_held_out(images, config.data.held_out_fraction, config.loop.seed)
    return list(train), list(held)
