"""Output formats offered by Save As and the batch panel, mapped onto `write_image` options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OutputChoice:
    """One entry of the format menus."""

    key: str
    label: str
    batch_format: str  # an `dtpm_core.files.output_plan` format: "same" or a key of OUTPUT_FORMATS
    suffix: str  # "" for "same as input"
    bit_depth: int | None  # None: like the source (16-bit sources stay 16-bit where possible)
    uses_quality: bool = False


OUTPUT_CHOICES: dict[str, OutputChoice] = {
    c.key: c
    for c in (
        OutputChoice("png8", "PNG, 8-bit", "png", ".png", 8),
        OutputChoice("png16", "PNG, 16-bit", "png", ".png", 16),
        OutputChoice("jpeg", "JPEG", "jpeg", ".jpg", 8, uses_quality=True),
        OutputChoice("tiff", "TIFF (bit depth of the source)", "tiff", ".tif", None),
        OutputChoice("webp", "WebP", "webp", ".webp", 8, uses_quality=True),
        OutputChoice("same", "Same as input", "same", "", None, uses_quality=True),
    )
}
"""Keyed by the value stored in the settings (`AppSettings.output_format`)."""

SAVE_CHOICES = ("png8", "png16", "jpeg", "tiff", "webp")
"""The entries of the Save As dialog (a single file needs a definite format)."""


def dialog_filter(choice: OutputChoice) -> str:
    """The QFileDialog name filter of a format, e.g. "JPEG (*.jpg *.jpeg)"."""
    patterns = {".jpg": "*.jpg *.jpeg", ".tif": "*.tif *.tiff"}.get(choice.suffix,
                                                                    f"*{choice.suffix}")
    return f"{choice.label} ({patterns})"


def choice_for_filter(name_filter: str) -> OutputChoice:
    """Inverse of `dialog_filter` (PNG 8-bit when nothing matches)."""
    for key in SAVE_CHOICES:
        if dialog_filter(OUTPUT_CHOICES[key]) == name_filter:
            return OUTPUT_CHOICES[key]
    return OUTPUT_CHOICES["png8"]


def write_options(choice: OutputChoice, quality: int, source_bit_depth: int,
                  target: Path) -> dict:
    """Keyword arguments for `write_image` for a file of `choice` written at `target`."""
    suffix = target.suffix.lower()
    depth = choice.bit_depth
    if depth is None and suffix not in {".png", ".tif", ".tiff"}:
        depth = 8  # "same as input" for a JPEG/WebP/BMP source
    if depth is None:
        depth = 16 if source_bit_depth == 16 else 8
    return {"bit_depth": depth, "quality": int(quality)}
