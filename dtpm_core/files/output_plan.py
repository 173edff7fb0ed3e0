"""Output planning for a batch restore, shared by `dtpm-restore` and the app's batch queue.

Every rule is checked for the whole batch before anything is computed:

1. Sources are the supported regular image files of the inputs (folders searched
   recursively). Special files (FIFOs, devices, sockets, broken links), image types that
   cannot be read (GIF, HEIC, raw, ...) and named folders without images are listed in
   `OutputPlan.skipped`, never opened.
2. Earlier results are never sources: files inside the output folder when it lies inside an
   input folder; files whose own metadata holds an output marker (`dtpm_core.files.output_marker`,
   written with every result), listed in `OutputPlan.earlier_results`; and, for outputs of
   older versions, the files the output folder's ledger (`LEDGER_NAME`) lists.
3. A target is OUTDIR / (the path relative to its input folder, or the file name) with the
   output format's extension. No target is any source or any other target, compared
   case-insensitively (x.PNG and x.png are one name on macOS and Windows): a name that is
   taken becomes `<stem>_restored<ext>`, then `<stem>_restored-2<ext>`, ... (at most
   MAX_NAME_CANDIDATES names; a name longer than the file system allows is shortened).
4. A file already on disk is replaced only when its marker says it is a result of this very
   input (the sha256 of the input's bytes): a rerun, or `--skip-existing` finishing a killed
   run, finds it again. Any other file of that name (the user's own, a result of another
   photo, a read-only file, a link, a folder) is never replaced: the result takes the next
   free name (`on_conflict` "rename", noted in `OutputPlan.renamed`), or the item is left
   out ("skip", listed in `OutputPlan.conflicts`; "error": the caller refuses the batch).
   "overwrite" replaces such files, except inputs, read-only files, links and folders.
5. The plan depends only on the inputs and the files on disk, so a rerun after a kill plans
   the same targets.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DTPMError
from .atomic import TEMP_SUFFIX, remove_stale_temp_files, write_text_atomic
from .imageio import SUPPORTED_EXTENSIONS, scan_images
from .output_marker import file_sha256, read_output_marker

OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "tiff": ".tif", "tif": ".tif",
                  "webp": ".webp", "bmp": ".bmp"}
"""Output format names accepted by the CLI and the app, with the extension they write."""
COLLISION_SUFFIX = "_restored"
"""Added to the name of a target that would be an input or another item's target."""
LEDGER_NAME = ".dtpm-restore-outputs.json"
"""Hidden file in an output folder listing the results written there (relative paths)."""
ON_CONFLICT = ("rename", "skip", "error", "overwrite")
"""What to do when a file that is not a result of the input has the result's name (rule 4)."""
MAX_NAME_CANDIDATES = 1000
"""Names tried for one result before it is left out ("no free name")."""
NAME_MAX_BYTES = 255
"""Longest file name (bytes) where the file system does not say (ext4, APFS, NTFS: 255)."""
SHORT_HASH_CHARS = 8
"""Hex digits of the hash that replaces the cut end of a shortened name."""
# existing-file states of a candidate name (rule 4)
_FREE, _OWN, _OTHER, _FIXED = "free", "result", "other", "fixed"


class OutputPlanError(DTPMError):
    """The batch cannot be planned safely (e.g. the output folder cannot be written)."""


@dataclass(frozen=True)
class BatchItem:
    """One result to compute. `existing`: "" when no file has the target's name, "result"
    when the file there is an earlier result of this very source (a rerun replaces it,
    `--skip-existing` keeps it), "other" when it is another file that --overwrite replaces."""

    source: Path
    target: Path
    existing: str = ""


@dataclass(frozen=True)
class OutputPlan:
    """What a batch will do: `items` in source order; `skipped` (path, reason) for inputs that
    cannot be read; `renamed` (source, reason) for items whose target is not the usual name;
    `keeps_ledger` when the output folder is an input folder (its results are recorded);
    `earlier_results` (path, reason) for inputs left out as results of earlier runs;
    `conflicts` (source, reason) for inputs left out because no name could be taken.
    """

    items: list[BatchItem]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    renamed: list[tuple[Path, str]] = field(default_factory=list)
    keeps_ledger: bool = False
    earlier_results: list[tuple[Path, str]] = field(default_factory=list)
    conflicts: list[tuple[Path, str]] = field(default_factory=list)


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
                 recursive: bool = True, on_conflict: str = "rename") -> OutputPlan:
    """Expand files and folders into a collision-free (source, target) plan (rules 1-5).

    Args:
        inputs: image files and folders; a path that does not exist raises ImageReadError.
        outdir: the output folder (it need not exist yet).
        fmt: "same" (each input's own format) or a key of OUTPUT_FORMATS.
        recursive: search sub-folders of input folders.
        on_conflict: one of ON_CONFLICT (rule 4).
    """
    if fmt != "same" and fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose 'same' or one of "
                         f"{sorted(OUTPUT_FORMATS)}")
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"unknown on_conflict {on_conflict!r}; choose one of {ON_CONFLICT}")
    outdir = Path(outdir)
    ledger = read_ledger(outdir)
    skipped: list[tuple[Path, str]] = []
    earlier: list[tuple[Path, str]] = []
    natural: dict[Path, tuple[Path, Path]] = {}  # the file itself -> (source, usual target)
    keeps_ledger = False
    for raw in inputs:
        root = Path(raw)
        is_folder = root.is_dir()
        keeps_ledger |= is_folder and _key(root) == _key(outdir)
        scan = scan_images([root], recursive=recursive)
        if is_folder and not scan.images and not scan.skipped:
            skipped.append((root, "a folder without PNG, JPEG, TIFF, WebP or BMP images"
                                  + ("" if recursive else " (sub-folders not searched)")))
        skipped += [s for s in scan.skipped if not (is_folder and _earlier_output(
            s[0], root, outdir, ledger))]
        for source in scan.images:
            if is_folder and _earlier_output(source, root, outdir, ledger):
                continue
            marker = read_output_marker(source)
            if marker is not None:
                earlier.append((source, f"a result of dtpm-restore (restored from "
                                        f"{marker.input_name}); results are not restored "
                                        "again"))
                continue
            relative = source.relative_to(root) if is_folder else Path(source.name)
            target = outdir / relative.with_suffix(_target_suffix(source, fmt))
            natural.setdefault(source.resolve(), (source, target))
    sources = sorted(natural.values())
    taken = {key for source, _ in sources for key in (_key(source), _abs_key(source))}
    # who gets a contested name: an input already of the target's type, then path order
    claim_order = sorted(sources, key=lambda st: (st[0].suffix != st[1].suffix, st[0]))
    chosen: dict[Path, BatchItem] = {}
    renamed: list[tuple[Path, str]] = []
    conflicts: list[tuple[Path, str]] = []
    for source, target in claim_order:
        item, reasons = _choose(source, target, taken, chosen, on_conflict)
        if item is None:
            conflicts.append((source, "; ".join(reasons)))
            continue
        taken.update((_key(item.target), _abs_key(item.target)))
        chosen[source] = item
        if item.target != target:
            renamed.append((source, f"result written to {item.target} ("
                                    + "; ".join(reasons) + ")"))
        elif item.existing == _OTHER:
            renamed.append((source, f"replaces {item.target} (--overwrite)"))
    items = [chosen[source] for source, _ in sources if source in chosen]
    return OutputPlan(items, sorted(skipped), sorted(renamed), keeps_ledger, sorted(earlier),
                      sorted(conflicts))


def _choose(source: Path, target: Path, taken: set[str], chosen: dict[Path, BatchItem],
            on_conflict: str) -> tuple[BatchItem | None, list[str]]:
    """The item for `source` (rules 3 and 4), with the reasons why earlier names were not
    taken; None when no name may be taken. An earlier result of this source wins over a free
    name before it (its older neighbour may have been deleted since), so names are looked at
    until a second free one."""
    reasons: list[str] = []
    first: tuple[BatchItem, list[str]] | None = None
    for candidate in _candidates(target):
        if _key(candidate) in taken or _abs_key(candidate) in taken:
            reasons.append(f"{candidate} is " + _why_taken(candidate, chosen))
            continue
        state, why = _existing(candidate, source)
        if state == _OWN:
            return BatchItem(source, candidate, _OWN), reasons
        if first is not None:
            if state == _FREE:
                break
            continue
        if state == _FREE or (state == _OTHER and on_conflict == "overwrite"):
            first = BatchItem(source, candidate, "" if state == _FREE else _OTHER), \
                list(reasons)
            continue
        reasons.append(f"{candidate} {why}")
        if on_conflict in ("skip", "error"):
            return None, reasons
    if first is not None:
        return first
    reasons.append(f"no free name for the result: {target.name} and the next "
                   f"{MAX_NAME_CANDIDATES - 1} names are taken")
    return None, reasons[-3:]


def _candidates(target: Path) -> Iterator[Path]:
    """The names a result may take, in order (rule 3), each short enough for the folder."""
    stem, suffix = target.stem, target.suffix
    limit = _name_max(target.parent)
    yield _fit_name(target, limit)
    yield _fit_name(target.with_name(f"{stem}{COLLISION_SUFFIX}{suffix}"), limit)
    for number in range(2, MAX_NAME_CANDIDATES):
        yield _fit_name(target.with_name(f"{stem}{COLLISION_SUFFIX}-{number}{suffix}"), limit)


def _name_max(folder: Path) -> int:
    """The longest file name (bytes) the file system of `folder` takes."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return int(os.pathconf(existing, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # not POSIX, or the file system will not say
        return NAME_MAX_BYTES


def _fit_name(path: Path, limit: int) -> Path:
    """`path` itself if its name fits in `limit` bytes, else the stem cut on a character
    boundary plus "~" and a short hash of the whole name (so that cut names stay distinct)."""
    name = path.name
    encoded = os.fsencode(name)
    if len(encoded) <= limit:
        return path
    suffix = os.fsencode(path.suffix)
    digest = hashlib.sha256(encoded).hexdigest()[:SHORT_HASH_CHARS]
    keep = max(0, limit - len(suffix) - 1 - SHORT_HASH_CHARS)
    stem = os.fsencode(path.stem)[:keep].decode("utf-8", errors="ignore")
    return path.with_name(f"{stem}~{digest}{path.suffix}")


def is_read_only(path: Path) -> bool:
    """No write permission bit is set (mode 444): the user protects this file. (os.access
    would say writable to root.)"""
    return stat.S_IMODE(path.stat().st_mode) & 0o222 == 0


def _existing(candidate: Path, source: Path) -> tuple[str, str]:
    """What has the name `candidate` on disk (rule 4): (state, description)."""
    try:
        info = candidate.lstat()
    except (FileNotFoundError, NotADirectoryError):  # (a file in the folder's place:
        return _FREE, ""                              # check_output_folder says so)
    except OSError as exc:
        return _FIXED, f"cannot be checked ({exc.strerror or exc})"
    if stat.S_ISLNK(info.st_mode):
        return _FIXED, "is a link (links are never replaced): kept"
    if not stat.S_ISREG(info.st_mode):
        return _FIXED, "already exists and is not a file"
    if is_read_only(candidate):
        return _FIXED, "already exists and is read-only: kept"
    marker = read_output_marker(candidate)
    if marker is not None and marker.input_sha256 == _source_sha256(source):
        return _OWN, ""
    if marker is not None:
        return _OTHER, (f"already exists and is the result of another photo "
                        f"({marker.input_name}): kept")
    return _OTHER, "already exists and was not written by dtpm-restore for this photo: kept"


_SHA_CACHE: dict[tuple[str, int, int, int], str] = {}
_SHA_CACHE_SIZE = 4096


def _source_sha256(source: Path) -> str | None:
    """sha256 of the source's bytes, cached by path, size, mtime and inode (the app plans
    again on every change of the queue)."""
    try:
        info = source.stat()
    except OSError:
        return None
    key = (str(source.resolve()), info.st_size, info.st_mtime_ns, info.st_ino)
    if key not in _SHA_CACHE:
        try:
            digest = file_sha256(source)
        except OSError:
            return None
        if len(_SHA_CACHE) >= _SHA_CACHE_SIZE:
            _SHA_CACHE.clear()
        _SHA_CACHE[key] = digest
    return _SHA_CACHE[key]


def _abs_key(path: Path) -> str:
    """The link itself, not what it points to (writing there would replace the link)."""
    return os.path.normcase(os.path.abspath(path)).casefold()


def _earlier_output(path: Path, root: Path, outdir: Path, ledger: set[str]) -> bool:
    """Rule 2 for a file found by searching the input folder `root`: inside a separate
    output folder, or listed in the ledger of the output folder that is `root`."""
    if not _inside(outdir, root):
        return False
    if _key(outdir) != _key(root):
        return _inside(path, outdir)
    return _key(path) in ledger


def _why_taken(candidate: Path, chosen: dict[Path, BatchItem]) -> str:
    key = _key(candidate)
    for source, item in chosen.items():
        if _key(item.target) == key:
            return f"the result of {source}"
    return "an input"


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
