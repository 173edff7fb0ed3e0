"""The per-file results table of a cluster batch, a TSV written beside the outputs: one row
per planned file (and per missing input) saying what became of it, where and how long it
took. Written atomically at the end of the run, also an interrupted one."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ..files.atomic import write_text_atomic

RESULTS_TABLE_NAME = "dtpm-restore-results.tsv"
"""File name of the table, in the output folder (not an image: never taken for an input)."""
COLUMNS = ("source", "target", "status", "attempts", "seconds", "worker", "device",
           "message")
RESTORED, FAILED, SKIPPED, MISSING, NOT_PROCESSED = (
    "restored", "failed", "skipped", "missing", "not processed")
"""Statuses: restored; failed (the message says why); skipped (--skip-existing found the
result there, the input cannot be read, or --on-conflict skip left it out: the message says
which); missing (no such input); not processed (the run was interrupted)."""


@dataclass(frozen=True)
class Row:
    source: str
    target: str
    status: str
    attempts: int = 0
    seconds: float | None = None
    worker: str = ""
    device: str = ""
    message: str = ""

    def cells(self) -> list[str]:
        seconds = "" if self.seconds is None else f"{self.seconds:.2f}"
        return [self.source, self.target, self.status, str(self.attempts), seconds,
                self.worker, self.device, self.message]


def write_results_table(outdir: str | Path, rows: list[Row]) -> Path:
    """Write `rows` (sorted by source) to OUTDIR/RESULTS_TABLE_NAME; returns its path."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in sorted(rows, key=lambda r: (r.source, r.target)):
        writer.writerow(row.cells())
    return write_text_atomic(Path(outdir) / RESULTS_TABLE_NAME, text.getvalue())


def read_results_table(path: str | Path) -> list[dict[str, str]]:
    """The rows of a table written by `write_results_table`, as dicts keyed by COLUMNS."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))
