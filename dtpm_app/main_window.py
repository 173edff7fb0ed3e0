"""The main window: menus, docks, drag and drop, and the wiring between widgets and the
controller. It shows state and forwards requests; it computes nothing itself."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QStackedWidget,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from dtpm_core.files.imageio import SUPPORTED_EXTENSIONS
from dtpm_core.modelfiles.catalog import resources_dir, user_models_dir
from dtpm_core.options import ENGINE_LABELS, SINGLE_PASS

from .batch_runner import BatchRunner, default_output_dir, looks_derived
from .batch_worker import BatchSummary
from .controller import Controller
from .file_dialogs import FileDialogs
from .qt_workarounds import collect_garbage_in_gui_thread, keep_singletons_alive
from .save_flow import SaveFlow
from .settings import AppSettings, load_settings, save_settings
from .state import Display, ImageState, ModelsState, Progress
from .status_line import SELF_EXPLAINING, SUCCESS_TITLES, is_progress_text, progress_text
from .texture_strength import strength_text
from .widgets.about import AboutDialog
from .widgets.batch_queue import BatchQueue
from .widgets.compare import CompareArea
from .widgets.elided_label import ElidedLabel
from .widgets.panels import EmptyState, MessageBanner
from .widgets.restore_panel import RestorePanel
from .window_shortcuts import keep_shortcuts

REFERENCE_MODIFIER = Qt.KeyboardModifier.ShiftModifier
"""Held while dropping one file: use it as the reference instead of opening it."""
NO_MODEL_TITLE = "No model installed"
BATCH_NOTE_MS = 15_000
PHOTO_TITLES = ("Steps set to K=", "Cannot read the image", "Reference size differs",
                "Restoration adjusted", "No image open")
"""Banner titles about one photo: stale once another photo is open."""
BATCH_RUNNING = "Batch running"


def app_icon() -> QIcon:
    """The application icon: the PNG sizes rendered by scripts/make_icons.py (each drawn sharp
    for its size, the same set on every platform), else the SVG source."""
    from .desktop_entry import DESKTOP_ID, ICON_SIZES

    folder = resources_dir() / "icons"
    icon = QIcon()
    for size in ICON_SIZES:
        png = folder / f"{DESKTOP_ID}-{size}.png"
        if png.is_file():
            icon.addFile(str(png), QSize(size, size))
    if icon.isNull():
        icon.addFile(str(folder / f"{DESKTOP_ID}.svg"))
    return icon


def sample_image() -> Path | None:
    """The sample photo shown on first start, if the resources have one."""
    folder = resources_dir() / "samples"
    found = sorted(p for p in folder.glob("*") if p.suffix.lower() in SUPPORTED_EXTENSIONS) \
        if folder.is_dir() else []
    preferred = folder / "chelsea.png"
    return preferred if preferred in found else (found[0] if found else None)


def default_size(available: QSize) -> QSize:
    """First-start window size: roomy (1400x940) where the screen allows, never larger than
    90% of it (the layout is made to fit down to 1024x700)."""
    return QSize(min(1400, int(available.width() * 0.9)),
                 min(940, int(available.height() * 0.9)))


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self._refcount_guard = keep_singletons_alive(self)  # PySide6 6.12.0 on Python 3.11
        collect_garbage_in_gui_thread()  # never a Qt object freed in a worker thread
        self.controller = Controller(self.settings, self)
        self.batch = BatchRunner(self)
        self._display = Display()
        self._models = ModelsState("none", (), None, False, user_models_dir())
        self.saver = SaveFlow(self, self.controller, self.settings, self.show_message)
        self.dialogs = FileDialogs(self, self.controller, self.settings, self.open_paths)
        self._closed = False
        self.setWindowTitle("DTPM Studio")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks)
        self._build_actions()
        self._build_central()
        self._build_docks()
        self._build_menus_and_toolbar()
        self._build_status_bar()
        self._connect()
        self._apply_settings()
        self._on_reference(None)
        self._shortcut_keeper = keep_shortcuts(self, [self.swap_action])
        self._batch_notice = ""  # title of the banner about the batch queue, while shown

    # ------------------------------------------------------------------ construction

    def _action(self, text: str, slot, shortcut=None, icon=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        d = self.dialogs
        self.open_action = self._action("&Open…", d.choose_open, QKeySequence.StandardKey.Open,
                                        sp.SP_DialogOpenButton, "Open an image")
        self.open_folder_action = self._action("Open &Folder for Batch…", d.choose_folder,
                                               "Ctrl+Shift+O", sp.SP_DirOpenIcon,
                                               "Queue a folder of images for batch restoration")
        self.reference_action = self._action("Set &Reference Image…", d.choose_reference,
                                             "Ctrl+R", tip="Use a clean image as ground truth "
                                             "for the PSNR/LPIPS curve")
        self.clear_reference_action = self._action("Clear Reference",
                                                   self.controller.clear_reference)
        self.save_action = self._action("&Save", self.save, QKeySequence.StandardKey.Save,
                                        sp.SP_DialogSaveButton, "Save the result")
        self.save_as_action = self._action("Save &As…", self.save_as,
                                           QKeySequence.StandardKey.SaveAs)
        self.copy_action = self._action("&Copy Result", self.copy_result,
                                        QKeySequence.StandardKey.Copy,
                                        tip="Copy the result to the clipboard")
        self.add_model_action = self._action("Add &Model…", d.choose_models,
                                             tip="Import .safetensors model files")
        self.model_folder_action = self._action("Open Model Folder", d.open_model_folder)
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.restore_action = self._action("&Restore", self.controller.restore_now, "F5",
                                           sp.SP_MediaPlay, "Restore (again) with the current "
                                           "settings")
        self.cancel_action = self._action("&Cancel", self.controller.cancel, "Esc",
                                          sp.SP_BrowserStop, "Stop the running restoration")
        self.fit_action = self._action("&Fit", lambda: self.view.fit(), "Ctrl+0",
                                       sp.SP_TitleBarMaxButton, "Fit the image in the window")
        self.actual_action = self._action("1:1", lambda: self.view.actual_size(), "Ctrl+1",
                                          sp.SP_TitleBarNormalButton,
                                          "Actual size: one image pixel per screen pixel")
        self.zoom_in_action = self._action("Zoom &In", lambda: self.view.zoom_by(1.25),
                                           QKeySequence.StandardKey.ZoomIn)
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.view.zoom_by(0.8),
                                            QKeySequence.StandardKey.ZoomOut)
        self.swap_action = self._action("&Swap Left and Right", lambda: self.compare.swap(),
                                        "Ctrl+E", tip="Swap what the two sides show")
        self.swap_action.setIconText("⇄")  # the button above the image

    def _build_central(self) -> None:
        self.banner = MessageBanner()
        self.compare = CompareArea(self.swap_action)
        self.view, self.view_bar = self.compare.view, self.compare.bar
        self.left_side, self.right_side = self.compare.left_side, self.compare.right_side
        self.empty = EmptyState()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.compare)
        self.zoom_label = QLabel("100%")
        self.zoom_label.setMinimumWidth(52)
        self.zoom_label.setToolTip("Zoom level")
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.panel = RestorePanel(self.restore_action, self.cancel_action)
        self.task_picker, self.controls = self.panel.task_picker, self.panel.controls
        self.engine_picker = self.panel.engine_picker
        self.plot, self.reference_label = self.panel.plot, self.panel.reference_label
        self.cancel_button = self.panel.cancel_button
        self.cancel_action.setEnabled(False)
        self.cancel_button.setEnabled(False)
        self.side_dock = QDockWidget("Restoration", self)
        self.side_dock.setObjectName("restoration-dock")
        self.side_dock.setWidget(self.panel)
        self.side_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                   | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.side_dock)
        self.batch_panel = BatchQueue(self.batch)
        self.batch_dock = QDockWidget("Batch", self)
        self.batch_dock.setObjectName("batch-dock")
        self.batch_dock.setWidget(self.batch_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.batch_dock)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.batch_dock.hide()

    def _build_menus_and_toolbar(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.open_action, self.open_folder_action])
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addActions([self.reference_action, self.clear_reference_action])
        file_menu.addSeparator()
        file_menu.addActions([self.save_action, self.save_as_action, self.copy_action])
        file_menu.addSeparator()
        file_menu.addActions([self.add_model_action, self.model_folder_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = menu.addMenu("&View")
        view_menu.addActions([self.fit_action, self.actual_action, self.zoom_in_action,
                              self.zoom_out_action, self.swap_action])
        view_menu.addSeparator()
        view_menu.addAction(self.side_dock.toggleViewAction())
        view_menu.addAction(self.batch_dock.toggleViewAction())
        run_menu = menu.addMenu("&Restore")
        run_menu.addActions([self.restore_action, self.cancel_action])
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("&About DTPM Studio", self._about))
        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(20, 20))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addActions([self.open_action, self.open_folder_action, self.save_action])
        toolbar.addSeparator()
        toolbar.addActions([self.restore_action, self.cancel_action])
        toolbar.addSeparator()
        toolbar.addActions([self.fit_action, self.actual_action])
        toolbar.addWidget(self.zoom_label)
        self.addToolBar(toolbar)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        self.status_text = ElidedLabel("Ready")  # ends in "…" where the window is narrow
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.image_label = QLabel()
        self.device_label = QLabel()
        status.addWidget(self.status_text, 1)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.image_label)
        status.addPermanentWidget(self.device_label)

    def _connect(self) -> None:
        c = self.controller
        c.modelsChanged.connect(self._on_models)
        c.imageChanged.connect(self._on_image)
        c.referenceChanged.connect(self._on_reference)
        c.displayChanged.connect(self._on_display)
        c.curveChanged.connect(self.plot.set_state)
        c.progressChanged.connect(self._on_progress)
        c.busyChanged.connect(self._on_busy)
        c.message.connect(self.show_message)
        self.task_picker.taskChosen.connect(c.set_task)
        self.engine_picker.engineChosen.connect(c.set_engine)
        self.compare.sidesChanged.connect(c.set_sides)
        self.task_picker.addModelRequested.connect(self.dialogs.choose_models)
        self.empty.addModelRequested.connect(self.dialogs.choose_models)
        self.empty.openFolderRequested.connect(self.dialogs.open_model_folder)
        self.controls.stepsMoved.connect(self.plot.set_marker)
        self.controls.stepsChanged.connect(c.set_steps)
        self.controls.seedChanged.connect(c.set_seed)
        self.controls.strengthChanged.connect(c.set_strength)
        self.controls.deviceChanged.connect(c.set_device)
        self.controls.tileChanged.connect(c.set_tile)
        self.controls.ensembleChanged.connect(c.set_ensemble)
        self.plot.stepsRequested.connect(self.controls.slider.setValue)  # as if dragged there
        self.view.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.batch_panel.outputChanged.connect(self._on_batch_output_edited)
        self.batch_panel.referenceDirChanged.connect(self._on_reference_dir)
        self.batch_panel.startRequested.connect(self.start_batch)
        self.batch_panel.itemActivated.connect(
            lambda i: c.open_image(self.batch.entries[i].source))
        self.batch.problem.connect(lambda text: self.show_message("warning", "Batch", text))
        self.batch.finished.connect(self._on_batch_finished)
        self.batch.runningChanged.connect(c.set_batch_running)
        c.taskValuesChanged.connect(self.controls.set_task_values)
        self.controls.recommendedRequested.connect(c.use_recommended)

    def _apply_settings(self) -> None:
        s = self.settings
        self.controls.set_values(s.default_k, s.seed, s.device, s.tile, s.ensemble, s.strength)
        self.plot.set_marker(s.default_k)
        self.compare.set_sides(s.left_side, s.right_side)
        self.batch_panel.set_output(s.output_dir, s.output_format, s.quality)
        self.batch_panel.set_reference_dir(s.reference_dir)
        self.batch.set_output(s.output_dir or None, s.output_format, s.quality)
        self.batch.set_reference_dir(s.reference_dir or None)
        restored = False
        if s.geometry:
            restored = self.restoreGeometry(QByteArray(base64.b64decode(s.geometry)))
        if not restored:
            self.resize(default_size(self.screen().availableGeometry().size()))
            self.resizeDocks([self.side_dock], [360], Qt.Orientation.Horizontal)
        if s.window_state:
            self.restoreState(QByteArray(base64.b64decode(s.window_state)))

    def start(self, files: list[str | Path] | None = None, reference: str | Path | None = None,
              ) -> None:
        """Read the models and open `files` (several: the batch queue), or the sample."""
        self.controller.start()
        paths = [Path(f) for f in files or []]
        if not paths and self.controller.has_models:
            sample = sample_image()  # without a model the empty state says what to do
            paths = [sample] if sample is not None else []
        if len(paths) == 1 and paths[0].is_file():
            self.controller.open_image(paths[0], reference)
        elif paths:
            self.open_paths(paths)
            queued, outdir = len(self.batch.entries), self.batch.outdir
            title = f"{queued} image{'s' if queued != 1 else ''} queued"
            self.show_message("notice", title,
                              f"They will be restored into {outdir} with the task and engine "
                              "chosen on the right. Check the output folder in the Batch "
                              "panel, then press Start batch.")
            self._batch_notice = title

    # ------------------------------------------------------------------ user actions

    def open_paths(self, paths: list[Path], as_reference: bool = False) -> None:
        """What a drop does: one file opens (or becomes the reference); folders and several
        files fill the batch queue."""
        paths = [Path(p) for p in paths]
        if len(paths) == 1 and paths[0].is_file():
            if as_reference:
                self.controller.set_reference(paths[0])
            else:
                self.controller.open_image(paths[0])
            return
        if not paths:
            return
        if self._output_follows_input():
            default = str(default_output_dir(paths[0]))
            self.batch_panel.set_output(default, self.settings.output_format,
                                        self.settings.quality)
            self._on_batch_output(default, self.settings.output_format, self.settings.quality)
            self.settings.output_dir_derived = default
        self.batch.add_paths(paths)
        if self.batch_dock.isHidden():
            self.batch_dock.show()
            self.resizeDocks([self.batch_dock], [260], Qt.Orientation.Vertical)
        self.batch_dock.raise_()

    def _output_follows_input(self) -> bool:
        """The batch output folder is derived from the folder queued: when none is set, and
        for a new queue when the folder in use is one the app derived from an earlier input
        (a folder the person chose stays): results of one shoot never land among another's."""
        folder = self.batch_panel.outdir.text().strip()
        if not folder:
            return True
        if self.batch.roots:
            return False
        return folder == self.settings.output_dir_derived or looks_derived(folder)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        self.open_paths(paths, as_reference=bool(event.modifiers() & REFERENCE_MODIFIER))

    def save(self) -> None:
        self.saver.save()

    def save_as(self) -> None:
        self.saver.save_as()

    def copy_result(self) -> None:
        self.saver.copy()

    def start_batch(self) -> None:
        """Restore the queue with the engine in use and the current task."""
        c = self.controller.session
        models, problem = self.controller.planner.batch_models()
        if models is None:
            self.show_message("error", "Cannot run the batch", problem)
            return
        if self.batch.outdir is None:
            self.show_message("warning", "No output folder", "Choose an output folder first.")
            return
        task = self.task_picker.combo.currentText()
        how = f"K={c.k}, seed {c.seed}{strength_text(c.strength)}"
        if models.engine == SINGLE_PASS:
            how = ENGINE_LABELS[SINGLE_PASS] + (", 8-way ensemble" if models.ensemble else "")
        self.batch_panel.running_text = f"Running: {task}, {how}…"
        if self.batch.start(models, c.device, c.k, c.seed, c.tile, c.strength) \
                and self._batch_banner_shown():
            count = len(self.batch.entries)
            self.show_message("notice", BATCH_RUNNING,
                              f"Restoring {count} image{'s' if count != 1 else ''} into "
                              f"{self.batch.outdir} ({task}, {how}); pause or cancel in the "
                              "Batch panel.")
            self._batch_notice = BATCH_RUNNING

    def _batch_banner_shown(self) -> bool:
        """The banner shows the queue's notice (stale once the batch starts or ends)."""
        return bool(self._batch_notice) and self.banner.isVisible() \
            and self.banner.title == self._batch_notice

    def show_message(self, level: str, title: str, text: str) -> None:
        """"info" goes to the status bar (a success also clears an error or warning banner
        it makes stale); "notice" (info worth reading), "warning" and "error" to the banner."""
        if level == "info":
            if title in SUCCESS_TITLES and self.banner.level in ("error", "warning") \
                    and self.banner.title != NO_MODEL_TITLE:
                self.banner.hide()
            self.show_status(text if title in SELF_EXPLAINING else f"{title}: {text}")
            return
        self.banner.show_message("info" if level == "notice" else level, title, text)

    def show_status(self, text: str) -> None:
        self.status_text.setText(text)

    def _about(self) -> None:
        AboutDialog(self).exec()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_files:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.controller.open_image(p))
        if not self.settings.recent_files:
            self.recent_menu.addAction("(none)").setEnabled(False)

    # ------------------------------------------------------------------ controller -> view

    def _on_models(self, state: ModelsState) -> None:
        self._models = state
        self.task_picker.set_models(state)
        self.empty.set_folder(state.folder, state.has_base, state.error)
        self.panel.set_models_installed(state.state != "none")
        self.engine_picker.set_models(state)
        self.controls.set_engine(state.engine)
        self.controls.set_scores(state.scores)
        self.controls.set_single_pass_score(state.single_pass_scores.get(state.task or ""))
        has_view = state.state != "none" or self.controller.session.image is not None
        self.stack.setCurrentWidget(self.compare if has_view else self.empty)
        if state.task:
            self.settings.task = state.task
        self.device_label.setText(f"Device: {state.device}" if state.device else "")
        if state.state != "none" and self.banner.title == NO_MODEL_TITLE:
            self.banner.hide()

    def _on_image(self, image: ImageState | None) -> None:
        if image is None:
            return
        if self.banner.isVisible() and self.banner.title.startswith(PHOTO_TITLES):
            self.banner.hide()  # about the photo before this one
        h, w = image.loaded.rgb.shape[:2]
        self.setWindowTitle(f"{image.path.name} — DTPM Studio")
        self.image_label.setText(f"{w}×{h}, {image.loaded.bit_depth}-bit")
        self.saver.new_image()
        self._on_models(self._models)
        if self._models.state == "none":
            self.show_message("warning", NO_MODEL_TITLE,
                              f"Add a model (File ▸ Add Model…) or export one with "
                              f"`dtpm-train export` into {self._models.folder}.")

    def _on_reference(self, path: Path | None) -> None:
        self.reference_label.setText(
            f"<small>Reference: <b>{path.name}</b></small>" if path is not None else
            "<small>No reference: the curve compares each result with the initial "
            "prediction. Shift+drop or File ▸ Set Reference to use ground truth.</small>")

    def _on_display(self, display: Display) -> None:
        self._display = display
        self.compare.set_display(display)
        if self.progress.isHidden() and self._models.state != "none":
            self.show_status(self.controller.shown_text())

    def shown_images(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The arrays the split view shows now (left, right)."""
        return self.compare.shown_images()

    def _on_progress(self, progress: Progress | None) -> None:
        if progress is None:
            self.progress.hide()
            if self._models.state == "none":
                self.show_status(NO_MODEL_TITLE)
            elif is_progress_text(self.status_text.text()):
                self.show_status(self.controller.shown_text())
            return
        self.statusBar().clearMessage()  # a batch summary gives way to the work on screen
        self.progress.show()
        self.progress.setRange(0, max(0, progress.total))
        if progress.total > 0:
            self.progress.setValue(progress.done)
            self.progress.setFormat(f"{100 * progress.done / progress.total:.0f}%")
        self.show_status(progress_text(progress, self.controller.shown_text()))

    def _on_busy(self, busy: bool) -> None:
        self.cancel_action.setEnabled(busy)
        self.cancel_button.setEnabled(busy)

    def _on_batch_output_edited(self, folder: str, format_key: str, quality: int) -> None:
        """The person set the output folder or format in the Batch panel."""
        if folder != self.settings.output_dir:
            self.settings.output_dir_derived = ""  # chosen: it stays for the next queues
        self._on_batch_output(folder, format_key, quality)

    def _on_batch_output(self, folder: str, format_key: str, quality: int) -> None:
        self.settings.output_dir, self.settings.output_format = folder, format_key
        self.settings.quality = quality
        self.batch.set_output(folder or None, format_key, quality)

    def _on_reference_dir(self, folder: str) -> None:
        self.settings.reference_dir = folder
        self.batch.set_reference_dir(folder or None)

    def _on_batch_finished(self, summary: BatchSummary) -> None:
        ended = "cancelled" if summary.cancelled else "stopped" if summary.error else "finished"
        text = (f"Batch {ended}: {summary.done} restored, {summary.skipped} skipped, "
                f"{summary.failed} failed" + (f", {summary.remaining} not processed"
                                              if summary.remaining else ""))
        if self._batch_banner_shown():  # the queue's notice is stale now
            self.show_message("notice", f"Batch {ended}", text[len(f"Batch {ended}: "):]
                              + f" (results in {self.batch.outdir})")
        self._batch_notice = ""
        if summary.error:
            self.show_message("error", "Batch stopped", summary.error)
        elif summary.failed:
            first, reason = summary.failures[0]
            self.show_message("warning", f"Batch: {summary.failed} file(s) failed",
                              f"{Path(first).name}: {reason}" +
                              (" (see the batch panel for all)" if summary.failed > 1 else ""))
        # for a while, unless a restoration on screen needs the status bar
        if self.progress.isHidden():
            self.statusBar().showMessage(text, BATCH_NOTE_MS)

    # ------------------------------------------------------------------ closing

    def store_settings(self) -> None:
        s, c = self.settings, self.controller.session
        s.seed, s.engine, s.ensemble = c.seed, c.engine, c.ensemble  # K, strength: per task
        s.device, s.tile = c.device, c.tile
        s.left_side, s.right_side = self.compare.sides()
        s.geometry = base64.b64encode(bytes(self.saveGeometry())).decode("ascii")
        s.window_state = base64.b64encode(bytes(self.saveState())).decode("ascii")
        try:
            save_settings(s)
        except OSError as exc:
            self.show_message("error", "Settings not saved", str(exc))

    def shutdown(self) -> None:
        """Save settings and stop every thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.store_settings()
        self.batch.shutdown()
        self.controller.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
