"""Window shortcuts that an input field must not swallow.

A spin box's line edit claims some key sequences before the window's actions see them (Qt
sends it a ShortcutOverride first): with the X11 key bindings "Ctrl+E" is "move to the end of
the line", so "Swap Left and Right" did nothing while the K spin box had the focus. In a
number field that binding is worth nothing; the window's action is. `keep_shortcuts`
installs a filter on the window's spin boxes that answers their ShortcutOverride for these
actions' keys itself, so the shortcut reaches the action.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction, QKeyEvent
from PySide6.QtWidgets import QAbstractSpinBox, QLineEdit, QWidget


class ShortcutKeeper(QObject):
    """Event filter: a ShortcutOverride for one of `actions`' shortcuts is not offered to the
    widget (so the shortcut map triggers the action)."""

    def __init__(self, actions: list[QAction], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._actions = actions

    def _claimed(self, event: QKeyEvent) -> bool:
        combination = event.keyCombination()
        return any(action.isEnabled() and sequence.count() == 1
                   and sequence[0] == combination
                   for action in self._actions for sequence in action.shortcuts())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) \
                and self._claimed(event):
            event.ignore()  # not the field's: the shortcut map goes on to the action
            return True
        return False


def keep_shortcuts(window: QWidget, actions: list[QAction]) -> ShortcutKeeper:
    """Install a `ShortcutKeeper` for `actions` on every spin box of `window` (and its line
    edit, which receives the events when it holds the focus)."""
    keeper = ShortcutKeeper(actions, window)
    for spin in window.findChildren(QAbstractSpinBox):
        for widget in (spin, *spin.findChildren(QLineEdit)):
            widget.installEventFilter(keeper)
    return keeper
