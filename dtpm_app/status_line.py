"""The status bar's one line: what is shown first, then the work in progress (no Qt here).

A restoration the person waits for ("Restoring K=9: step 3/10 · about 12 s left") takes the
whole line; work nobody waits for (the trade-off curve, the other engine's side of the split
view) comes after what is on screen ("Showing DTPM, K=4 · Trade-off curve: K=10 ...").
"""

from __future__ import annotations

from .state import Progress

PROGRESS_WORDS = ("Restoring", "Loading")
BACKGROUND_WORDS = ("Trade-off", "Refining", "DTPM side", "Single-pass side")
"""Progress of work nobody waits for (dtpm_app.controller names its jobs so)."""
BACKGROUND_MARK = " · "
SUCCESS_TITLES = {"Restored", "Saved", "Already saved", "Copied", "Models added"}
"""Messages after which an error or warning banner is stale."""
SELF_EXPLAINING = {"Restored"}
"""Messages whose text is a whole sentence without their title."""


def progress_text(progress: Progress, shown: str) -> str:
    """The status line while `progress` runs; `shown` says what the view shows."""
    if progress.total <= 0:
        text = f"{progress.what}…"
    else:
        eta = ""
        if progress.eta_s is not None:
            eta = f" · about {progress.eta_s:.0f} s left" if progress.eta_s < 90 else \
                f" · about {progress.eta_s / 60:.0f} min left"
        elif progress.done < progress.total:
            eta = " · measuring the time left"
        text = f"{progress.what}: {progress.stage}{eta}"
    if progress.what.startswith(BACKGROUND_WORDS):
        text = f"{shown}{BACKGROUND_MARK}{text}"
    return text


def is_progress_text(text: str) -> bool:
    """`text` reports work in progress (to be replaced by what is shown once it ends)."""
    return text.startswith(PROGRESS_WORDS) or BACKGROUND_MARK in text
