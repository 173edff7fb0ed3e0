"""The batch queue: which files go where, their status, and the `BatchWorker` that runs them.

No widgets here; `widgets.batch_queue.BatchQueue` shows this state. Targets come from
`dtpm_core.files.output_plan.plan_outputs`, the planner `dtpm-restore` uses: never over an input or
another item's target, earlier results never taken as inputs, special files and unreadable
image types listed as skipped. The output folder is proved writable before the batch starts,
and finished items are skipped by the worker: those whose result in the output folder was
made from this very input (its output marker says so); a file of that name that is not (the
result of another photo of the same name, the person's own file) is kept and the result
takes a free name, which the plan's notes report.

The item running while the batch is paused shows "paused"; each finished item keeps the
path of its result (`outputs`).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from dtpm_core.errors import ImageReadError
from dtpm_core.files.imageio import SUPPORTED_EXTENSIONS
from dtpm_core.files.output_plan import (
    OutputPlan,
    OutputPlanError,
    check_output_folder,
    plan_outputs,
    record_output,
    sweep_stale_temp_files,
)

from .batch_worker import BatchEntry, BatchModels, BatchSettings, BatchSummary, BatchWorker
from .formats import OUTPUT_CHOICES
from .workers import ThreadPool

STATUSES = ("queued", "running", "paused", "done", "failed", "skipped")
PLAN_NOTES_SHOWN = 8
"""Skipped files and renamed results named in the banner; the rest are counted."""


def match_reference(source: str | Path, reference_dir: str | Path | None) -> Path | None:
    """The file in `reference_dir` with the same name stem as `source` (any image type)."""
    if not reference_dir:
        return None
    folder, source = Path(reference_dir), Path(source)
    if not folder.is_dir():
        return None
    for suffix in sorted(SUPPORTED_EXTENSIONS):
        for name in (source.stem + suffix, source.stem + suffix.upper()):
            candidate = folder / name
            if candidate.is_file() and candidate.resolve() != source.resolve():
                return candidate
    return None


DERIVED_SUFFIX = "-restored"
"""The batch output folder derived from an input folder "shoot" is "shoot-restored"."""


def default_output_dir(first: Path) -> Path:
    """The output folder for a queue whose first input is `first`: "<folder>-restored"
    beside a folder, "restored" beside a file."""
    first = Path(first)
    return (first.parent / f"{first.name}{DERIVED_SUFFIX}" if first.is_dir()
            else first.parent / "restored")


def looks_derived(folder: str | Path) -> bool:
    """`folder` is "<x>-restored" beside an existing folder "<x>": what `default_output_dir`
    makes (settings of older versions did not record which folder was derived)."""
    folder = Path(folder)
    name = folder.name
    return (name.endswith(DERIVED_SUFFIX) and len(name) > len(DERIVED_SUFFIX)
            and folder.with_name(name[:-len(DERIVED_SUFFIX)]).is_dir())


def _plan_notes(plan: OutputPlan) -> str:
    """What the person should know about a plan: files left out, results renamed."""
    lines = [f"Skipped {path.name}: {reason}"
             for path, reason in (*plan.skipped, *plan.earlier_results, *plan.conflicts)]
    lines += [f"{path.name}: {reason}" for path, reason in plan.renamed]
    if len(lines) > PLAN_NOTES_SHOWN:
        lines = [*lines[:PLAN_NOTES_SHOWN], f"… and {len(lines) - PLAN_NOTES_SHOWN} more"]
    return "\n".join(lines)


class BatchRunner(QObject):
    queueChanged = Signal()
    itemChanged = Signal(int)
    progressChanged = Signal(float)  # 0..1 over the whole queue
    runningChanged = Signal(bool)
    pausedChanged = Signal(bool)
    finished = Signal(object)  # BatchSummary
    problem = Signal(str)  # a message for the person (planning errors)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.roots: list[Path] = []
        self.entries: list[BatchEntry] = []
        self.plan = OutputPlan([])
        self.status: list[str] = []
        self.messages: list[str] = []
        self.outputs: list[str] = []  # the result's path of each finished item ("" if none)
        self.outdir: Path | None = None
        self.format_key = "png8"
        self.quality = 92
        self.reference_dir: Path | None = None
        self.paused = False
        self.summary: BatchSummary | None = None
        self._worker: BatchWorker | None = None
        self._threads = ThreadPool()
        self._finished_items = 0

    @property
    def running(self) -> bool:
        return self._worker is not None

    def add_paths(self, paths: list[Path]) -> None:
        """Queue files and folders (folders recursively)."""
        known = {p.resolve() for p in self.roots}
        self.roots += [Path(p) for p in paths if Path(p).resolve() not in known]
        self.replan()

    def clear(self) -> None:
        if not self.running:
            self.roots = []
            self.replan()

    def set_output(self, outdir: str | Path | None, format_key: str, quality: int) -> None:
        self.outdir = Path(outdir) if outdir else None
        self.format_key, self.quality = format_key, int(quality)
        self.replan()

    def set_reference_dir(self, folder: str | Path | None) -> None:
        self.reference_dir = Path(folder) if folder else None
        self.replan()

    def replan(self) -> None:
        """Recompute sources and targets (not while a batch runs)."""
        if self.running:
            return
        entries: list[BatchEntry] = []
        plan = OutputPlan([])
        if self.roots:
            outdir = self.outdir or Path("restored")
            fmt = OUTPUT_CHOICES[self.format_key].batch_format
            try:
                plan = plan_outputs(self.roots, outdir, fmt)
            except ImageReadError as exc:
                self.problem.emit(str(exc))
                self.roots = [p for p in self.roots if p.exists()]
                plan = plan_outputs(self.roots, outdir, fmt)
            entries = [BatchEntry(item.source, item.target,
                                  match_reference(item.source, self.reference_dir))
                       for item in plan.items]
        notes = _plan_notes(plan)
        if notes and notes != _plan_notes(self.plan):
            self.problem.emit(notes)
        self.plan = plan
        self.entries = entries
        self.status = ["queued"] * len(entries)
        self.messages = [""] * len(entries)
        self.outputs = [""] * len(entries)
        self.summary = None
        self.queueChanged.emit()
        self.progressChanged.emit(0.0)

    def start(self, models: BatchModels, device: str, k: int, seed: int, tile: int,
              strength: float = 1.0) -> bool:
        """Run the queue in a worker thread with `models` (DTPM at K, seed and texture
        strength, or the single-pass engine, which takes none of them); False when there is
        nothing to run. The worker loads its own engine (`BatchSettings.engine_spec`)."""
        if self.running or not self.roots or self.outdir is None:
            return False
        self.replan()
        plan, outdir = self.plan, self.outdir
        try:  # an unusable folder is said as such, also when it left no item a name
            check_output_folder(plan, outdir)
        except OutputPlanError as exc:
            self.problem.emit(str(exc))
            return False
        if not self.entries:
            return False  # (the plan's notes said why)
        sweep_stale_temp_files(plan, outdir)
        settings = BatchSettings(models, device, k, seed, tile, self.format_key, self.quality,
                                 strength)
        worker = BatchWorker(self.entries, settings,
                             record=lambda target: record_output(plan, outdir, target))
        worker.item_started.connect(self._on_started)
        worker.item_progress.connect(self._on_progress)
        worker.item_finished.connect(self._on_item_finished)
        worker.finished.connect(self._on_finished)
        self._worker, self.paused, self._finished_items = worker, False, 0
        self._threads.start(worker, worker.finished)
        self.runningChanged.emit(True)
        self.pausedChanged.emit(False)
        return True

    def pause(self) -> None:
        """Hold the batch after the current network pass; the running item says "paused"
        (and its time leaves the pause out)."""
        if self._worker is not None and not self.paused:
            self._worker.pause()
            self.paused = True
            self._swap_status("running", "paused")
            self.pausedChanged.emit(True)

    def resume(self) -> None:
        if self._worker is not None and self.paused:
            self._worker.resume()
            self.paused = False
            self._swap_status("paused", "running")
            self.pausedChanged.emit(False)

    def _swap_status(self, old: str, new: str) -> None:
        for i, status in enumerate(self.status):
            if status == old:
                self._set(i, new, self.messages[i])

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def shutdown(self) -> None:
        self.cancel()
        self._threads.wait_all()

    def counts(self) -> dict[str, int]:
        return {s: self.status.count(s) for s in STATUSES}

    def _set(self, index: int, status: str, message: str) -> None:
        if 0 <= index < len(self.status):
            self.status[index], self.messages[index] = status, message
            self.itemChanged.emit(index)

    @Slot(int)
    def _on_started(self, index: int) -> None:
        self._set(index, "paused" if self.paused else "running", "")

    @Slot(int, int, int)
    def _on_progress(self, index: int, done: int, total: int) -> None:
        if total > 0 and self.entries:
            self.progressChanged.emit((self._finished_items + done / total) / len(self.entries))

    @Slot(int, str, str, str)
    def _on_item_finished(self, index: int, status: str, message: str, output: str) -> None:
        self._finished_items += 1
        if 0 <= index < len(self.outputs):
            self.outputs[index] = output
        self._set(index, status, message)
        self.progressChanged.emit(self._finished_items / max(1, len(self.entries)))

    @Slot(object)
    def _on_finished(self, summary: BatchSummary) -> None:
        for i, status in enumerate(self.status):
            if status in ("running", "paused"):
                self._set(i, "queued", "cancelled")
        self._worker, self.paused, self.summary = None, False, summary
        self.runningChanged.emit(False)
        self.pausedChanged.emit(False)
        self.finished.emit(summary)
