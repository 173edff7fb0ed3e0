"""Where a saved result goes: its name says what it holds, a typed extension picks the format,
and an existing file is never replaced without the person's consent.

No Qt here: the window asks the questions (`dtpm_app.main_window`), this module only answers
"which file, in which format" and "which name is free".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats import OUTPUT_CHOICES, SAVE_CHOICES, OutputChoice

SUFFIX_CHOICES = {".png": "png8", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff",
                  ".tiff": "tiff", ".webp": "webp"}
"""A typed extension -> the Save As format it means (PNG keeps the filter's bit depth)."""


@dataclass(frozen=True)
class ShownResult:
    """The result the window shows for the engine in use, and what it is.

    `tag` names it in file names ("dtpm-K4", "single-pass", "single-pass-ensemble"); `label`
    in messages
    ("DTPM, K=4"); `key` identifies it (two saves of the same key hold the same pixels)."""

    image: np.ndarray
    tag: str
    label: str
    key: tuple


def result_name(source: Path, tag: str, suffix: str) -> str:
    """File name of a result of `source`, e.g. "photo_restored_dtpm-K4.png"."""
    return f"{source.stem}_restored_{tag}{suffix}"


def free_path(path: Path) -> Path:
    """`path` if no file has that name, else the first free "name-2.ext", "name-3.ext"..."""
    if not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def save_target(typed: str | Path, chosen: OutputChoice) -> tuple[Path, OutputChoice]:
    """The file and format of a Save As: a known extension typed by the person wins over the
    selected filter ("name.jpg" with the PNG filter is a JPEG); without one (or with an
    unknown one) the filter's extension is added."""
    path = Path(typed)
    key = SUFFIX_CHOICES.get(path.suffix.lower())
    if key is None:
        return path.with_name(path.name + chosen.suffix), chosen
    if key == "png8" and chosen.key in ("png8", "png16"):
        return path, chosen  # the filter says which PNG depth
    return path, OUTPUT_CHOICES[key]


def default_choice(format_key: str) -> OutputChoice:
    """The Save As format to offer first: the last one used, if it is a single-file format."""
    return OUTPUT_CHOICES[format_key if format_key in SAVE_CHOICES else "png8"]
