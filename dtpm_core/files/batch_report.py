"""How a batch of `dtpm-restore` ends, in words and as an exit status: one set of rules for
the single-process run (`dtpm_core.cli`) and the cluster run (`dtpm_core.cluster.tally`)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .output_plan import OutputPlan

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""dtpm-restore's exit statuses: all done; some photos failed or were skipped as unreadable
inputs; a usage error; interrupted (Ctrl-C, 128 + SIGINT)."""


@dataclass(frozen=True)
class BatchEnd:
    """What became of a batch: `done` restored (`renamed` of them under another name),
    `skipped` left as finished results (--skip-existing), `not_processed` not reached,
    `failures` (input, reason), out of `total` inputs."""

    output: str
    total: int
    done: int
    skipped: int
    renamed: int
    not_processed: int
    failures: list[tuple[str, str]]
    seconds: float
    interrupted: bool


def failures_before_running(plan: OutputPlan, missing: list[str], on_conflict: str
                            ) -> list[tuple[str, str]]:
    """The inputs that fail before anything runs: missing ones, and photos with no free
    output name unless --on-conflict skip leaves them out by choice."""
    failures = [(path, "no such file or folder") for path in missing]
    if on_conflict != "skip":
        failures += [(str(path), reason) for path, reason in plan.conflicts]
    return failures


def report_batch_end(end: BatchEnd, plan: OutputPlan, on_conflict: str) -> int:
    """Print the summary line (stdout) and what was not restored and why (stderr); return the
    exit status."""
    summary = f"restored {end.done} of {end.total} image(s) into {end.output} in " \
              f"{end.seconds:.1f} s"
    if end.skipped:
        summary += f" ({end.skipped} already there, skipped)"
    if end.renamed:
        summary += f"; {end.renamed} result(s) written under another name (see the notes)"
    print(summary)
    if end.interrupted:
        print(f"interrupted: {end.not_processed} image(s) not processed; run the same "
              "command with --skip-existing to finish", file=sys.stderr)
    if plan.skipped:
        print(f"{len(plan.skipped)} input(s) skipped, not restored:", file=sys.stderr)
        for path, reason in plan.skipped:
            print(f"  {path}: {reason}", file=sys.stderr)
    if plan.conflicts and on_conflict == "skip":
        print(f"{len(plan.conflicts)} photo(s) left out (--on-conflict skip), not restored:",
              file=sys.stderr)
        for path, reason in plan.conflicts:
            print(f"  {path}: {reason}", file=sys.stderr)
    if end.failures:
        print(f"{len(end.failures)} failed:", file=sys.stderr)
        for path, reason in end.failures:
            print(f"  {path}: {reason}", file=sys.stderr)
    if end.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if end.failures or plan.skipped else EXIT_OK
