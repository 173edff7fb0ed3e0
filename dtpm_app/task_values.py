"""Which K and texture strength a task starts from, and the person's own choices per task.

A task starts from the values measured best for its adapter (the manifest's `"recommended"`,
dtpm_core.modelfiles.recommended), or, for an adapter without one (a user's own file), from
the settings' `default_k` and `strength` (K = 4, strength 1 unless edited). A K or strength the
person sets is remembered for that task (`AppSettings.task_values`) and wins over the start
values until "Use recommended" forgets it. Plain Python, no Qt: the controller applies these
values to its session whenever the task changes, so the preview, the split view's sides, the
trade-off marker and the batch all use the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtpm_core.modelfiles.catalog import Catalog
from dtpm_core.modelfiles.recommended import Recommendation

from .session import Session
from .settings import AppSettings

STEPS, STRENGTH = "steps", "strength"
"""The keys of one task's entry in `AppSettings.task_values`."""


@dataclass(frozen=True)
class TaskValues:
    """The K and strength in use for `task`, and where the task starts (`start`: measured
    for its adapter when `measured`, else the settings' defaults)."""

    task: str
    steps: int
    strength: float
    start: Recommendation
    measured: bool

    @property
    def at_start(self) -> bool:
        """The values in use are the task's start values (none of the person's own)."""
        return (self.steps, self.strength) == (self.start.steps, self.start.strength)


def start_values(task: str | None, catalog: Catalog,
                 settings: AppSettings) -> tuple[Recommendation, bool]:
    """(where `task` starts, whether that was measured for its adapter)."""
    entry = catalog.adapters.get(task or "")
    if entry is not None and entry.recommended is not None:
        return entry.recommended, True
    return Recommendation(settings.default_k, settings.strength), False


def values_for(task: str | None, catalog: Catalog, settings: AppSettings) -> TaskValues:
    """The K and strength to use for `task`: the person's own for it, else its start values."""
    start, measured = start_values(task, catalog, settings)
    own = settings.task_values.get(task or "", {})
    return TaskValues(task or "", own.get(STEPS, start.steps),
                      own.get(STRENGTH, start.strength), start, measured)


def remember(settings: AppSettings, catalog: Catalog, task: str | None, *,
             steps: int | None = None, strength: float | None = None) -> None:
    """Keep the person's K and/or strength for `task`; a value equal to the task's start
    value is forgotten instead (the task then follows its recommendation again)."""
    if not task:
        return
    start, _ = start_values(task, catalog, settings)
    own = dict(settings.task_values.get(task, {}))
    for key, value, default in ((STEPS, steps, start.steps),
                                (STRENGTH, strength, start.strength)):
        if value is None:
            continue
        if value == default:
            own.pop(key, None)
        else:
            own[key] = value
    if own:
        settings.task_values[task] = own
    else:
        settings.task_values.pop(task, None)


def forget(settings: AppSettings, task: str | None) -> None:
    """Drop the person's own values for `task` (back to its start values)."""
    settings.task_values.pop(task or "", None)


def in_use(session: Session, settings: AppSettings) -> TaskValues:
    """The session's K and strength (which a large photo may have lowered) and where its task
    starts."""
    start, measured = start_values(session.task, session.catalog, settings)
    return TaskValues(session.task or "", session.k, session.strength, start, measured)


def apply_to(session: Session, settings: AppSettings) -> TaskValues:
    """Move the session's K and strength to its task's values (the person's own for it, else
    its start values) and return them."""
    values = values_for(session.task, session.catalog, settings)
    session.k, session.strength = values.steps, values.strength
    return values
