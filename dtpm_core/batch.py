"""Planning a batch: which output file each input gets, never one over an input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .imageio import SUPPORTED_EXTENSIONS, list_images

OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "tiff": ".tif", "tif": ".tif",
                  "webp": ".webp", "bmp": ".bmp"}
"""Output format names accepted by the CLI and the app, with the extension they write."""
COLLISION_SUFFIX = "_restored"


@dataclass(frozen=True)
class BatchItem:
    source: Path
    target: Path


def plan_batch(inputs: list[str | Path], outdir: str | Path, fmt: str = "same",
               recursive: bool = True) -> list[BatchItem]:
    """Expand files and folders into (source, target) pairs.

    A file keeps its name in `outdir`; files found inside a folder keep their path relative to
    that folder (so equal names in sub-folders never collide). `fmt` is "same" or a key of
    OUTPUT_FORMATS. A target that would be an input file gets COLLISION_SUFFIX instead.
    """
    if fmt != "same" and fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose 'same' or one of "
                         f"{sorted(OUTPUT_FORMATS)}")
    outdir = Path(outdir)
    items: list[BatchItem] = []
    sources: set[Path] = set()
    for raw in inputs:
        root = Path(raw)
        files = list_images([root], recursive=recursive) if root.is_dir() else [root]
        for source in files:
            relative = source.relative_to(root) if root.is_dir() else Path(source.name)
            suffix = relative.suffix.lower()
            if fmt != "same":
                suffix = OUTPUT_FORMATS[fmt]
            elif suffix not in SUPPORTED_EXTENSIONS:
                suffix = ".png"
            items.append(BatchItem(source, outdir / relative.with_suffix(suffix)))
            sources.add(source.resolve())
    planned = []
    for item in items:
        target = item.target
        if target.resolve() in sources:
            target = target.with_name(target.stem + COLLISION_SUFFIX + target.suffix)
        planned.append(BatchItem(item.source, target))
    return planned
