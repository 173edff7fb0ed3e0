"""The data of one restoration task, for Stage II and single-pass fine-tuning: training
pairs and held-out pairs, synthetic (degraded on the fly from clean photos) or from a paired
dataset, as `config.data` describes."""

from __future__ import annotations

from pathlib import Path

from dtpm_core.errors import ConfigError
from dtpm_core.files.imageio import list_images
from dtpm_core.options import TASKS

from .config import TrainConfig
from .data import PairedCrops, SyntheticPairs, split_held_out
from .pairs import find_pairs, pairs_from_folders
from .validation import as_array_pair


def build_datasets(config: TrainConfig, task: str | None = None, with_calibration: bool = False):
    """(train dataset, held-out (degraded, clean) array pairs) for the configured data;
    synthetic data is made for `task` (default: stage2.task). With `with_calibration`, a
    third item: config.calibration.crops held-out dataset items (for `measure_calibration`)."""
    data, loop = config.data, config.loop
    task = task or config.stage2.task
    if data.layout == "synthetic":
        if task not in TASKS:
            raise ConfigError(f"synthetic data exists for {TASKS}; task "
                              f"{task!r} needs a paired dataset (data.layout)")
        images = list_images([Path(p) for p in data.clean])
        train, held = split_held_out(images, data.held_out_fraction, loop.seed)
        train_set = SyntheticPairs(train, task, data.crop, loop.seed,
                                   length=data.synthetic_length)
        val_set = SyntheticPairs(held, task, loop.val_size, loop.seed + 1,
                                 length=max(len(held), 1), augment=False)
        calibration_set = SyntheticPairs(held, task, loop.val_size, loop.seed + 2,
                                         length=config.calibration.crops, augment=False)
    else:
        if data.layout == "folders":
            pairs = pairs_from_folders(data.degraded_dir, data.clean_dir)
        else:
            pairs = find_pairs(data.layout, data.root, data.split)
        train, held = split_held_out(pairs, data.held_out_fraction, loop.seed)
        train_set = PairedCrops(train, data.crop, loop.seed)
        val_set = PairedCrops(held, loop.val_size, loop.seed + 1, augment=False)
        calibration_set = val_set
    count = min(loop.val_images, len(val_set)) if len(held) else 0
    val_pairs = [as_array_pair(val_set[i], ("degraded", "clean")) for i in range(count)]
    if not with_calibration:
        return train_set, val_pairs
    crops = [calibration_set[i % len(calibration_set)] for i in range(config.calibration.crops)]\
        if len(held) and len(calibration_set) else []
    return train_set, val_pairs, crops
