"""Output planning for a batch restore, shared by `dtpm-restore` and the app's batch queue.

Every rule is checked for the whole batch before anything is computed:

1. Sources are the supported regular image files of the inputs (folders searched
   recursively). Special files (FIFOs, devices, sockets, broken links) and image types that
   cannot be read (GIF, HEIC, raw, ...) are listed in `OutputPlan.skipped`, never opened.
2. Earlier outputs are never sources: files inside the output folder when it lies inside an
   input folder, and, when the output folder *is* an input folder, the files its ledger
   (`LEDGER_NAME`, hidden, written by `record_output`) lists as results of earlier runs.
3. A target is OUTDIR / (the path relative to its input folder, or the file name) with the
   output format's extension. No target is any source or any other target, compared
   case-insensitively (x.PNG and x.png are one name on macOS and Windows): a name that is
   taken becomes `<stem>_restored<ext>`, then `<stem>_restored-2<ext>`, ...; every such
   rename is reported in `OutputPlan.renamed`.
4. The plan depends only on the inputs and the files on disk, never on which results exist,
   so a rerun after a kill plans the same targets and `--skip-existing` (the app's batch
   always) skips exactly the finished ones.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import TEMP_SUFFIX, remove_stale_temp_files, write_text_atomic
from .errors import DTPMError
from .imageio import SUPPORTED_EXTENSIONS, scan_images

OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "tiff": ".tif", "tif": ".tif",
                  "webp": ".webp", "bmp": ".bmp"}
"""Output format names accepted by the CLI and the app, with the extension they write."""
COLLISION_SUFFIX = "_restored"
"""Added to the name of a target that would be an input or another item's target."""
LEDGER_NAME = ".dtpm-restore-outputs.json"
"""Hidden file in an output folder listing the results written there (relative paths)."""


class OutputPlanError(DTPMError):
    """The batch cannot be planned safely (e.g. the output folder cannot be written)."""


@dataclass(frozen=True)
class BatchItem:
    source: Path
    target: Path


@dataclass(frozen=True)
class OutputPlan:
    """What a batch will do: `items` in source order; `skipped` (path, reason) for files that
    are not restored; `renamed` (source, reason) for items whose target is not the usual name;
    `keeps_ledger` when the output folder is an input folder (its results are recorded).
    """

    items: list[BatchItem]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    renamed: list[tuple[Path, str]] = field(default_factory=list)
    keeps_ledger: bool = False


def _key(path: Path) -> str:
    """One name per file on every platform: absolute, links resolved, case folded."""
    return os.path.normcase(str(Path(os.path.abspath(path)).resolve())).casefold()


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(path)).resolve().relative_to(Path(os.path.abspath(folder)).resolve())
    except ValueError:
        return False
    return True


def read_ledger(outdir: str | Path) -> set[str]:
    """Keys (see `_key`) of the results earlier runs wrote into `outdir`."""
    outdir = Path(outdir)
    try:
        names = json.loads((outdir / LEDGER_NAME).read_text(encoding="utf-8"))["outputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {_key(outdir / name) for name in names if isinstance(name, str)}


def record_output(plan: OutputPlan, outdir: str | Path, target: str | Path) -> None:
    """Add `target` to the ledger of `outdir` when `plan` keeps one, so a later batch over a
    folder that is also its output folder never takes this result for an input (rule 2)."""
    if not plan.keeps_ledger:
        return
    outdir, target = Path(outdir), Path(target)
    path = outdir / LEDGER_NAME
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["outputs"]
        names = [n for n in names if isinstance(n, str)]
    except (OSError, ValueError, KeyError, TypeError):
        names = []
    try:
        relative = Path(os.path.abspath(target)).relative_to(Path(os.path.abspath(outdir)))
    except ValueError:
        return  # not inside the output folder: nothing to remember
    name = relative.as_posix()
    if name not in names:
        write_text_atomic(path, json.dumps({"outputs": sorted([*names, name])}, indent=0))


def _target_suffix(source: Path, fmt: str) -> str:
    if fmt != "same":
        return OUTPUT_FORMATS[fmt]
    suffix = source.suffix.lower()
    return suffix if suffix in SUPPORTED_EXTENSIONS else ".png"


def plan_outputs(inputs: list[str | Path], outdir: str | Path, fmt: str = "same",
                 recursive: bool = True) -> OutputPlan:
    """Expand files and folders into a collision-free (source, target) plan (rules 1-4).

    Args:
        inputs: image files and folders; a path that does not exist raises ImageReadError.
        outdir: the output folder (it need not exist yet).
        fmt: "same" (each input's own format) or a key of OUTPUT_FORMATS.
        recursive: search sub-folders of input folders.
    """
    if fmt != "same" and fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose 'same' or one of "
                         f"{sorted(OUTPUT_FORMATS)}")
    outdir = Path(outdir)
    ledger = read_ledger(outdir)
    skipped: list[tuple[Path, str]] = []
    natural: dict[Path, tuple[Path, Path]] = {}  # the file itself -> (source, usual target)
    keeps_ledger = False
    for raw in inputs:
        root = Path(raw)
        is_folder = root.is_dir()
        keeps_ledger |= is_folder and _key(root) == _key(outdir)
        scan = scan_images([root], recursive=recursive)
        skipped += [s for s in scan.skipped if not (is_folder and _earlier_output(
            s[0], root, outdir, ledger))]
        for source in scan.images:
            if is_folder and _earlier_output(source, root, outdir, ledger):
                continue
            relative = source.relative_to(root) if is_folder else Path(source.name)
            target = outdir / relative.with_suffix(_target_suffix(source, fmt))
            natural.setdefault(source.resolve(), (source, target))
    sources = sorted(natural.values())
    taken = {key for source, _ in sources for key in (_key(source), _abs_key(source))}
    # who gets a contested name: an input already of the target's type, then path order
    claim_order = sorted(sources, key=lambda st: (st[0].suffix != st[1].suffix, st[0]))
    targets: dict[Path, Path] = {}
    renamed: list[tuple[Path, str]] = []
    for source, target in claim_order:
        chosen = _free_name(target, taken)
        taken.add(_key(chosen))
        targets[source] = chosen
        if chosen != target:
            renamed.append((source, f"written as {chosen.name}: {target.name} is "
                                    + _why_taken(target, sources, targets)))
    items = [BatchItem(source, targets[source]) for source, _ in sources]
    return OutputPlan(items, sorted(skipped), sorted(renamed), keeps_ledger)


def _abs_key(path: Path) -> str:
    """The link itself, not what it points to (writing there would replace the link)."""
    return os.path.normcase(os.path.abspath(path)).casefold()


def _earlier_output(path: Path, root: Path, outdir: Path, ledger: set[str]) -> bool:
    """Rule 2, for a file found by searching the input folder `root`."""
    if not _inside(outdir, root):
        return False
    if _key(outdir) != _key(root):
        return _inside(path, outdir)
    return _key(path) in ledger


def _free_name(target: Path, taken: set[str]) -> Path:
    stem, suffix = target.stem, target.suffix
    candidates = (target, target.with_name(f"{stem}{COLLISION_SUFFIX}{suffix}"))
    number = 2
    while True:
        for candidate in candidates:
            if _key(candidate) not in taken and _abs_key(candidate) not in taken \
                    and not _blocked(candidate):
                return candidate
        candidates = (target.with_name(f"{stem}{COLLISION_SUFFIX}-{number}{suffix}"),)
        number += 1


def _blocked(path: Path) -> bool:
    """Something that is not a regular file (a folder, a FIFO) already has this name."""
    try:
        return not path.is_file() and path.exists()
    except OSError:
        return True


def _why_taken(target: Path, sources: list[tuple[Path, Path]],
               targets: dict[Path, Path]) -> str:
    key = _key(target)
    for source, _ in sources:
        if _key(source) == key or _abs_key(source) == _abs_key(target):
            return f"the input {source}"
    for source, chosen in targets.items():
        if _key(chosen) == key:
            return f"the result of {source}"
    return "taken by something that is not an image file"


def check_output_folder(plan: OutputPlan, outdir: str | Path) -> None:
    """Before any work: create `outdir` and prove that every folder a target goes to can be
    written (a test file is created and removed). Raises OutputPlanError naming the folder."""
    outdir = Path(outdir)
    for folder in sorted({outdir, *(item.target.parent for item in plan.items)}):
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputPlanError(f"cannot write results to {folder}: {existing} is not a "
                                  "folder; choose another output folder")
        try:
            if folder == outdir:
                outdir.mkdir(parents=True, exist_ok=True)
                existing = outdir
            fd, probe = tempfile.mkstemp(prefix=".dtpm-write-test.", suffix=TEMP_SUFFIX,
                                         dir=existing)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise OutputPlanError(
                f"cannot write results to {folder} ({exc.strerror or exc}); choose an output "
                "folder you can write to") from exc


def sweep_stale_temp_files(plan: OutputPlan, outdir: str | Path) -> list[Path]:
    """Remove the hidden temporary files that a killed earlier run left beside this plan's
    targets and its ledger; returns what was removed. (A run writing the same targets at the
    same moment would lose its temporary file: two runs into one folder already conflict.)"""
    removed = remove_stale_temp_files(Path(outdir) / LEDGER_NAME)
    for item in plan.items:
        removed += remove_stale_temp_files(item.target)
    return removed
