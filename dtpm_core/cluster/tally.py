"""The bookkeeping of one cluster batch: what became of each planned file, the results table
beside the outputs, and the end summary and exit status of a single-process run (one
function for both, `dtpm_core.files.batch_report`; tests/core/test_cluster.py runs both on
the same inputs and compares them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..files.batch_report import BatchEnd, failures_before_running, report_batch_end
from ..files.output_plan import record_output
from .results import (
    FAILED,
    MISSING,
    NOT_PROCESSED,
    RESTORED,
    RESULTS_TABLE_NAME,
    SKIPPED,
    Row,
    write_results_table,
)

if TYPE_CHECKING:
    from ..files.output_plan import BatchItem, OutputPlan
    from .pool import Outcome

NO_WORKER_LEFT = "no worker was left to restore it"


class Tally:
    """Counts, failures and a results row per input of one batch."""

    def __init__(self, args: argparse.Namespace, plan: OutputPlan, missing: list[str]) -> None:
        self.args = args
        self.plan = plan
        self.outdir = Path(args.output)
        self.rows: dict[str, Row] = {}
        self.failures = failures_before_running(plan, missing, args.on_conflict)
        for path in missing:
            self._add(path, "", MISSING, message="no such file or folder")
        for path, reason in plan.skipped:
            self._add(str(path), "", SKIPPED, message=reason)
        for path, reason in plan.conflicts:  # without a free name: a failure, unless skipped
            self._add(str(path), "", SKIPPED if args.on_conflict == "skip" else FAILED,
                      message=reason)
        self.renamed = {source for source, _ in plan.renamed}
        self.total = len(plan.items) + len(missing) + len(plan.conflicts)
        self.done = self.skipped = self.done_renamed = 0
        self.started = time.perf_counter()

    def todo(self) -> list[BatchItem]:
        """The planned items to restore: all, less the finished results of these very photos
        with --skip-existing."""
        todo = []
        for item in self.plan.items:
            if self.args.skip_existing and item.existing == "result":
                self.skipped += 1
                self._item(item, SKIPPED, message="already there (--skip-existing)")
            else:
                self._item(item, NOT_PROCESSED)
                todo.append(item)
        return todo

    def outcome(self, outcome: Outcome, log: Callable[[str], None]) -> None:
        """Record one file's end; show what the worker printed and any failure."""
        item, result = outcome.item, outcome.result
        self._item(item, outcome.status, outcome.attempts,
                   result.seconds if result else None,
                   result.worker.where if result else "",
                   result.worker.runs if result else "", outcome.message)
        for line in (result.output.splitlines() if result else []):
            log(line)  # the per-file function's notes, as a single-process run prints them
        if outcome.status == RESTORED:
            self.done += 1
            self.done_renamed += item.source in self.renamed
            try:  # the ledger is one file: only the driver updates it
                record_output(self.plan, self.outdir, item.target)
            except OSError as exc:
                log(f"{item.target}: written, but the list of results in {self.outdir} "
                    f"could not be updated ({exc})")
        else:
            self.failures.append((str(item.source), outcome.message))
            log(f"failed: {item.source}: {outcome.message}")

    def undone(self, items: list[BatchItem]) -> None:
        """`items` could not be run: every worker was lost."""
        for item in items:
            self._item(item, FAILED, message=NO_WORKER_LEFT)
            self.failures.append((str(item.source), NO_WORKER_LEFT))

    def finish(self, interrupted: bool, workers: str = "") -> int:
        """Write the results table, print the summary; the exit status. `workers` describes
        the pool for the last line (empty: no pool was started)."""
        seconds = time.perf_counter() - self.started
        not_processed = sum(row.status == NOT_PROCESSED for row in self.rows.values())
        end = BatchEnd(str(self.args.output), self.total, self.done, self.skipped,
                       self.done_renamed, not_processed, self.failures, seconds, interrupted)
        code = report_batch_end(end, self.plan, self.args.on_conflict)
        self._write_table(seconds, workers)
        return code

    def _write_table(self, seconds: float, workers: str) -> None:
        try:
            table = write_results_table(self.outdir, list(self.rows.values()))
        except OSError as exc:
            print(f"the results table {self.outdir / RESULTS_TABLE_NAME} could not be "
                  f"written ({exc})", file=sys.stderr)
            return
        line = f"results per file: {table}"
        if workers:
            rate = f", {self.done / seconds:.2f} images/s" if self.done else ""
            line = f"cluster: {workers}{rate}; {line}"
        print(line)

    def _item(self, item: BatchItem, status: str, attempts: int = 0,
              seconds: float | None = None, worker: str = "", device: str = "",
              message: str = "") -> None:
        self._add(str(item.source), str(item.target), status, attempts, seconds, worker,
                  device, message)

    def _add(self, source: str, target: str, status: str, attempts: int = 0,
             seconds: float | None = None, worker: str = "", device: str = "",
             message: str = "") -> None:
        self.rows[source] = Row(source, target, status, attempts, seconds, worker, device,
                                message)
