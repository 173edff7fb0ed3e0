"""A photographer's session, scripted on the real window and its real dialogs: open a photo
with File > Open, restore, save, switch engine, save again into the same folder, and check
that no file was ever replaced without a yes. Dialogs are answered from a timer, as a person
would (their exec() blocks), never replaced by stubs."""

from __future__ import annotations

import numpy as np
import pytest
from app_helpers import make_image, wait_result
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QLineEdit, QMessageBox
from test_single_pass_engine import (  # noqa: F401  (fixtures)
    single_pass_model_dir,
    single_pass_models,
)

from dtpm_app.save_flow import KEEP_BOTH, REPLACE
from dtpm_core.files.imageio import read_image
from dtpm_core.options import SINGLE_PASS

_TIMERS: list = []  # the pollers stay alive until they answered
_ANSWERED: set = set()


@pytest.fixture(autouse=True)
def _stop_pollers():
    """No poller outlives its test (it would answer another test's dialogs)."""
    yield
    for timer in _TIMERS:
        timer.stop()
    _TIMERS.clear()


def answer_next_dialog(kind: type, answer) -> list:
    """Call `answer(dialog)` once a modal `kind` dialog is up (its exec() blocks the test's
    call, so a timer answers it); returns the dialogs answered (0 or 1)."""
    seen: list = []
    timer = QTimer()
    timer.setInterval(20)

    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, kind) and id(dialog) not in _ANSWERED and not seen:
            _ANSWERED.add(id(dialog))
            seen.append(dialog)
            timer.stop()
            answer(dialog)

    timer.timeout.connect(poll)
    timer.start()
    _TIMERS.append(timer)
    return seen


def _file_dialog(name: str | None = None, name_filter: str | None = None):
    def answer(dialog) -> None:
        assert isinstance(dialog, QFileDialog)
        if name_filter is not None:
            dialog.selectNameFilter(name_filter)
        if name is not None:
            dialog.findChild(QLineEdit, "fileNameEdit").setText(name)
        answer.directory = dialog.directory().absolutePath()
        answer.filename = dialog.selectedFiles()[0] if dialog.selectedFiles() else ""
        dialog.accept()
    return answer


def _message_box(button_text: str):
    def answer(box) -> None:
        assert isinstance(box, QMessageBox)
        answer.text = box.text()
        next(b for b in box.buttons() if b.text().replace("&", "") == button_text).click()
    return answer


def _accept(dialog) -> None:
    assert isinstance(dialog, QInputDialog)
    dialog.accept()


def _saved(qtbot, window, action) -> None:
    with qtbot.waitSignal(window.controller.saved, timeout=30_000):
        action()


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_open_restore_switch_engine_and_save_twice_without_losing_a_file(
        single_pass_models, tmp_path, make_window, qtbot):  # noqa: F811
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    photo = make_image(shoot / "beach.png", 40, 56, seed=4)
    original = photo.read_bytes()
    window = make_window(default_k=1, task="motion-deblur")
    window.start([])  # the sample photo first, as on a first start
    wait_result(qtbot, window)

    # File > Open: the dialog, then the photo
    opener = _file_dialog(name=str(photo))
    answer_next_dialog(QFileDialog, opener)
    window.open_action.trigger()
    qtbot.waitUntil(lambda: window.controller.session.image is not None
                    and window.controller.session.image.path == photo, timeout=30_000)
    wait_result(qtbot, window)
    assert str(photo) in window.settings.recent_files  # absolute: opens from anywhere
    assert window.status_text.text().startswith("Showing DTPM, K=1")

    # first Save is a Save As, in the photo's folder, named for what it holds
    save_as = _file_dialog()
    answer_next_dialog(QFileDialog, save_as)
    _saved(qtbot, window, window.save_action.trigger)
    assert save_as.directory == str(shoot)
    assert save_as.filename.endswith("beach_restored_dtpm-K1.png")
    first = shoot / "beach_restored_dtpm-K1.png"
    assert read_image(first).rgb.shape == (40, 56, 3)
    assert "Saved: DTPM, K=1 to" in window.status_text.text()  # not "Saved: Saved ..."
    before = _snapshot(shoot)

    # the single-pass engine; Ctrl+S writes a second file beside the first, named for it
    window.engine_picker.buttons[SINGLE_PASS].click()
    qtbot.waitUntil(lambda: window.controller.shown_result() is not None
                    and window.controller.shown_result().tag == SINGLE_PASS, timeout=30_000)
    _saved(qtbot, window, window.save_action.trigger)
    single_file = shoot / "beach_restored_single-pass.png"
    assert set(_snapshot(shoot)) == {*before, single_file.name}
    assert {k: v for k, v in _snapshot(shoot).items() if k in before} == before
    np.testing.assert_allclose(read_image(single_file).rgb, window.controller.shown_result().image,
                               atol=0.5 / 255 + 1e-6)

    # back to DTPM with another seed: same name, other pixels -> asked; "Keep both"
    window.engine_picker.buttons["dtpm"].click()
    window.controls.seed.setValue(7)
    wait_result(qtbot, window)
    snapshot = _snapshot(shoot)
    keep = _message_box("Keep both")
    answer_next_dialog(QMessageBox, keep)
    _saved(qtbot, window, window.save_action.trigger)
    assert "beach_restored_dtpm-K1.png already exists" in keep.text
    assert _snapshot(shoot) == {**snapshot, "beach_restored_dtpm-K1-2.png":
                                (shoot / "beach_restored_dtpm-K1-2.png").read_bytes()}

    # asked again: Cancel writes nothing
    snapshot = _snapshot(shoot)
    window.controls.seed.setValue(8)
    wait_result(qtbot, window)
    cancel = _message_box("Cancel")
    seen = answer_next_dialog(QMessageBox, cancel)
    window.save_action.trigger()
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=60_000)
    qtbot.waitUntil(lambda: window.controller.idle, timeout=60_000)
    assert _snapshot(shoot) == snapshot

    # and Replace replaces, only after that yes
    replace = _message_box("Replace")
    answer_next_dialog(QMessageBox, replace)
    _saved(qtbot, window, window.save_action.trigger)
    after = _snapshot(shoot)
    assert set(after) == set(snapshot) and after[first.name] != snapshot[first.name]
    assert all(after[name] == snapshot[name] for name in snapshot if name != first.name)

    # Save As with a typed .jpg while the PNG filter is selected writes a JPEG
    typed = _file_dialog(name=str(shoot / "for-print.jpg"), name_filter="PNG, 8-bit (*.png)")
    answer_next_dialog(QFileDialog, typed)
    quality = answer_next_dialog(QInputDialog, _accept)
    _saved(qtbot, window, window.save_as_action.trigger)
    assert len(quality) == 1  # the JPEG quality was asked
    assert (shoot / "for-print.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert not (shoot / "for-print.jpg.png").exists() and not (shoot / "for-print.png").exists()
    assert photo.read_bytes() == original


def test_the_replace_question_names_both_choices(models, image_file, make_window, qtbot):
    window = make_window(default_k=1)
    assert (REPLACE, KEEP_BOTH) == ("replace", "keep both")
    window.start([image_file])
    wait_result(qtbot, window)
    target = image_file.parent / "taken.png"
    target.write_bytes(b"precious")
    box = _message_box("Cancel")
    answer_next_dialog(QMessageBox, box)
    assert window.saver.ask_replace(target) is None
    assert "taken.png already exists" in box.text and target.read_bytes() == b"precious"
