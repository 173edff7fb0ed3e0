"""The weight average of single-pass files from one training line (checkpoint averaging, as
in stochastic weight averaging and model soups).

Slices of one campaign line lie in one basin of the loss, and the mean of their weights can
keep what each gained: measured on the `singlepass-s2` line, where each slice traded the blur
tasks against the weather ones, the mean of its 6000-, 13500-, 15000- and 16500-iteration files
beat the 6000 file on every task's held-out PSNR, SSIM, LPIPS and MAE (README "Training
campaign"). Evaluate an average before shipping it, as any other file.
Every source must be the same network (config) restoring the same tasks at the same t_mat;
floating-point tensors are averaged in fp32, the rest must agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dtpm_core.errors import ConfigError
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass

MIN_SOURCES = 2


def average_singlepass(sources: Sequence[Path], out: Path,
                       metrics: dict[str, Any] | None = None) -> str:
    """Write the uniform weight average of `sources` to `out` (atomically); returns its
    content sha256. The file keeps the first source's training notes, with the sources
    (name and content sha256) listed under "weight_average"."""
    sources = [Path(s) for s in sources]
    if len(sources) < MIN_SOURCES:
        raise ConfigError(f"averaging needs at least {MIN_SOURCES} single-pass files, got "
                          f"{len(sources)}")
    out = Path(out)
    for source in sources:
        if source.exists() and out.exists() and source.resolve() == out.resolve():
            raise ConfigError(f"the output {out} is one of the files to average: write the "
                              "average to a new file")
    first, first_info = load_singlepass(sources[0])
    total = {name: value.detach().to(torch.float32).clone() if value.is_floating_point()
             else value.detach().clone() for name, value in first.state_dict().items()}
    listed = [{"file": sources[0].name, "sha256": first_info.sha256}]
    for source in sources[1:]:
        net, info = load_singlepass(source)
        if info.config.to_dict() != first_info.config.to_dict():
            raise ConfigError(f"{source} is another network than {sources[0]} (its config "
                              "differs): only files of one training line can be averaged")
        if info.tasks != first_info.tasks:
            raise ConfigError(f"{source} restores {info.tasks}, {sources[0]} "
                              f"{first_info.tasks}: the tasks and their t_mat must agree")
        for name, value in net.state_dict().items():
            if value.is_floating_point():
                total[name] += value.detach().to(torch.float32)
            elif not torch.equal(value, total[name]):
                raise ConfigError(f"{source} and {sources[0]} differ in {name}, which cannot "
                                  "be averaged")
        listed.append({"file": source.name, "sha256": info.sha256})
    state = first.state_dict()
    averaged = {name: (value / len(sources)).to(state[name].dtype)
                if state[name].is_floating_point() else value
                for name, value in total.items()}
    first.load_state_dict(averaged)
    training = dict(first_info.training)
    training["weight_average"] = listed
    return save_singlepass(out, first, tasks=dict(first_info.tasks), training=training,
                           metrics=metrics)
