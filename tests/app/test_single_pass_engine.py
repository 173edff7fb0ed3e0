"""The single-pass engine in the app: engine switch, one pass, the same output as
`SinglePassRestorer`, split view DTPM vs single-pass, the single-pass point on the trade-off plot,
save / clipboard / batch, a task the network lacks, no network installed, cancel, the
engine choice kept across a restart, and the optional 8-way ensemble."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import hold_first_pass, job_kind, make_image, wait_result
from PySide6.QtWidgets import QApplication

from dtpm_app.model_store import install_models
from dtpm_app.settings import load_settings, save_settings
from dtpm_app.workers import preview
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer
from dtpm_core.evaluation.metrics import perceptual_metric, psnr
from dtpm_core.files.imageio import read_image
from dtpm_core.modelfiles.catalog import load_catalog
from dtpm_core.options import SINGLE_PASS
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import save_singlepass

SINGLE_PASS_TASKS = {"motion-deblur": 50, "desnow": 15}
SINGLE_PASS_FILE = "fast.safetensors"


def _make_singlepass(path: Path) -> Path:
    """A tiny single-pass network whose output differs from its input (an untrained one
    starts close to the identity), for two tasks."""
    torch.manual_seed(3)
    net = SinglePassNet(singlepass_preset("tiny", width=8))
    with torch.no_grad():
        for param in net.parameters():
            param.add_(0.05 * torch.randn_like(param))
    save_singlepass(path, net, tasks=SINGLE_PASS_TASKS)
    return path


@pytest.fixture(scope="session")
def single_pass_model_dir(model_dir, tmp_path_factory) -> Path:
    """The DTPM test models plus a single-pass network, named by the manifest."""
    folder = tmp_path_factory.mktemp("fast-models")
    for file in model_dir.glob("*.safetensors"):
        shutil.copy(file, folder / file.name)
    _make_singlepass(folder / SINGLE_PASS_FILE)
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["singlepass"] = SINGLE_PASS_FILE
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture
def single_pass_models(single_pass_model_dir, monkeypatch) -> Path:
    monkeypatch.setenv("DTPM_USER_MODELS", str(single_pass_model_dir))
    return single_pass_model_dir


def _expected(folder: Path, image: Path, task: str = "motion-deblur", tile: int = 512,
              ensemble: bool = False):
    """What `SinglePassRestorer` itself makes of the image, on the backend the app resolves
    (the process preference: "auto", OpenVINO on an x86-64 CPU)."""
    return SinglePassRestorer(folder / SINGLE_PASS_FILE, device="cpu", backend=None).restore(
        read_image(image).rgb, task, tile=tile, ensemble=ensemble).result


def _record_jobs(window) -> list:
    jobs: list = []
    window.controller._submit.connect(lambda job: jobs.append(job.request))
    return jobs


def _wait_single_pass_result(qtbot, window, timeout: int = 60_000) -> np.ndarray:
    qtbot.waitUntil(lambda: window.controller.current_result() is not None
                    and window._display.single_pass is not None, timeout=timeout)
    return window.controller.current_result()


def test_engine_switch_restores_in_one_pass_and_disables_the_steps(single_pass_models, image_file,
                                                                    make_window, qtbot):
    window = make_window(default_k=4)
    jobs = _record_jobs(window)
    progress = []
    window.controller.progressChanged.connect(
        lambda p: p is not None and p.total and progress.append(p))
    window.start([image_file])
    wait_result(qtbot, window)
    dtpm = window.controller.current_result()
    single_button = window.engine_picker.buttons[SINGLE_PASS]
    assert single_button.isEnabled() and window.controls.slider.isEnabled()

    single_button.click()
    assert window.controller.planner.active_engine == SINGLE_PASS
    assert not window.controls.slider.isEnabled() and not window.controls.steps.isEnabled()
    assert not window.controls.seed.isEnabled() and not window.controls.dice.isEnabled()
    assert not window.controls.strength.isEnabled()  # DTPM's texture layer: none in one pass
    assert not window.controls.strength_label.isEnabled()
    assert "no steps, seed or texture strength" in window.controls.hint.text()
    assert window.controls.device.isEnabled() and window.controls.tile.isEnabled()
    result = _wait_single_pass_result(qtbot, window)
    single_jobs = [j for j in jobs if job_kind(j) == "restore single-pass"]
    assert len(single_jobs) == 1 and single_jobs[0].key.task == "motion-deblur"
    single_progress = [p for p in progress if p.what == "Restoring (Single-pass)"]
    # one pass (after converting the graph, on the OpenVINO backend's first use)
    passes = {(p.done, p.total) for p in single_progress if not p.stage.startswith("converting")}
    assert single_progress and passes == {(1, 1)}
    assert not np.array_equal(result, dtpm)
    _, right = window.shown_images()
    assert right is result and window.view._labels[1] == "Result · Single-pass"
    assert window.controller.result_tag() == SINGLE_PASS

    # back to DTPM: the cached K=4 result at once, the slider usable again
    restores = len([j for j in jobs if job_kind(j) == "restore dtpm"])
    window.engine_picker.buttons["dtpm"].click()
    assert window.controls.slider.isEnabled() and window.controls.seed.isEnabled()
    assert window.controls.strength.isEnabled()
    assert np.array_equal(window.controller.current_result(), dtpm)
    assert len([j for j in jobs if job_kind(j) == "restore dtpm"]) == restores


def test_single_pass_result_is_the_restorer_output(single_pass_models, image_file, tmp_path,
                                                        make_window, qtbot):
    window = make_window(engine=SINGLE_PASS)
    jobs = _record_jobs(window)
    window.start([image_file])
    result = _wait_single_pass_result(qtbot, window)
    # the engine in use goes first: no DTPM restoration before the single-pass one
    restores = [j for j in jobs if job_kind(j).startswith("restore")]
    assert job_kind(restores[0]) == "restore single-pass"
    expected = _expected(single_pass_models, image_file, tile=window.controller.session.tile)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-6)

    # save and the clipboard take the single-pass result
    target = tmp_path / "saved.png"
    with qtbot.waitSignal(window.controller.saved, timeout=30_000):
        window.controller.save_result(target, "png16", 92)
    saved = read_image(target)
    assert saved.bit_depth == 16
    np.testing.assert_allclose(saved.rgb, result, rtol=0, atol=1 / 65535 + 1e-6)
    window.copy_result()
    copied = QApplication.clipboard().image()
    assert (copied.width(), copied.height()) == (result.shape[1], result.shape[0])


def _two_photos(folder: Path) -> tuple[Path, list[Path]]:
    """A batch folder with two small photos of different sizes."""
    folder.mkdir()
    return folder, [make_image(folder / "a.png", seed=1),
                    make_image(folder / "b.png", 40, 56, seed=2)]


def _restore_in_batch(window, qtbot, folder: Path) -> None:
    """Queue the folder, run the batch and require both photos restored without failures."""
    window.open_paths([folder])
    with qtbot.waitSignal(window.batch.finished, timeout=60_000) as finished:
        window.batch_panel.start_button.click()
    summary = finished.args[0]
    assert (summary.done, summary.failed, summary.error) == (2, 0, "")


def test_batch_runs_with_the_engine_in_use(single_pass_models, tmp_path, make_window, qtbot):
    folder, inputs = _two_photos(tmp_path / "shoot")
    outdir = tmp_path / "out"
    window = make_window(engine=SINGLE_PASS, output_dir=str(outdir), output_format="png8")
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.single_pass_ready, timeout=30_000)
    _restore_in_batch(window, qtbot, folder)
    assert "Single-pass" in window.batch_panel.running_text
    for source in inputs:
        written = read_image(outdir / source.name).rgb
        np.testing.assert_allclose(written, _expected(single_pass_models, source), rtol=0,
                                   atol=0.5 / 255 + 1e-6)


def test_split_view_shows_dtpm_beside_single_pass(single_pass_models, image_file, make_window,
                                                   qtbot):
    window = make_window(default_k=2, left_side="input", right_side="result")
    jobs = _record_jobs(window)
    window.start([image_file])
    wait_result(qtbot, window)
    dtpm = window.controller.current_result()
    assert not [j for j in jobs if job_kind(j) == "restore single-pass"]  # nothing asked for it yet

    window.left_side.setCurrentIndex(window.left_side.findData(SINGLE_PASS))  # on demand
    qtbot.waitUntil(lambda: window._display.single_pass is not None, timeout=30_000)
    left, right = window.shown_images()
    assert left is window._display.single_pass and right is dtpm
    assert window.view._labels == ("Single-pass", "Result · K=2")
    np.testing.assert_allclose(left, _expected(single_pass_models, image_file), rtol=0, atol=1e-6)
    assert len([j for j in jobs if job_kind(j) == "restore single-pass"]) == 1

    # with the single-pass engine in use, "DTPM result" keeps the DTPM side; both come from
    # the caches
    submitted = len(jobs)
    window.engine_picker.buttons[SINGLE_PASS].click()
    window.left_side.setCurrentIndex(window.left_side.findData("dtpm"))
    left, right = window.shown_images()
    assert left is dtpm and right is window._display.single_pass
    assert window.view._labels == ("DTPM · K=2", "Result · Single-pass")
    assert not [j for j in jobs[submitted:] if job_kind(j).startswith("restore")]


def test_trade_off_plot_gets_the_single_pass_point(single_pass_models, image_file, make_window,
                                                   qtbot):
    window = make_window(default_k=1)
    window.start([image_file])
    plot = window.plot
    qtbot.waitUntil(lambda: plot._state.single_pass_psnr is not None and window.controller.idle,
                    timeout=120_000)
    state = plot._state
    assert len(state.psnr) == 6  # the point comes after the whole DTPM curve
    # known answer: the preview, restored in one pass, against the DTPM initial prediction
    # of the preview (no reference), measured with dtpm_core.evaluation.metrics
    small = preview(read_image(image_file).rgb)
    # on the backends the app resolves (the process preference)
    fast = SinglePassRestorer(single_pass_models / SINGLE_PASS_FILE, device="cpu",
                              backend=None).restore(small, "motion-deblur", tile=0).result
    target = Restorer(single_pass_models / "base.safetensors",
                      single_pass_models / "motion-deblur.safetensors",
                      device="cpu", backend=None).restore(small, 1, tile=0).initial
    assert state.single_pass_psnr == pytest.approx(psnr(fast, target), abs=1e-4)
    distance = perceptual_metric(device="cpu", allow_download=False)  # as the plot measures
    assert state.single_pass_lpips == pytest.approx(distance(fast, target), abs=1e-4)
    for line, label, value in zip(plot.single_pass_lines, plot.single_pass_labels,
                                  (state.single_pass_psnr, state.single_pass_lpips), strict=True):
        xs, ys = line.getData()
        assert list(ys) == [value, value] and xs[0] < xs[-1]
        # on the plot where it touches no curve (issue 21), named in the caption always
        assert label.toPlainText() == "single-pass"
        assert label.isVisible() or "single&#8209;pass" in plot.caption.text()
    assert "Single-pass" in plot.status.text()
    assert all(marker.isVisible() for marker in plot.markers)
    window.engine_picker.buttons[SINGLE_PASS].click()  # no K in one pass: the marker goes
    assert not any(marker.isVisible() for marker in plot.markers)
    assert plot.status.text().index("Single-pass") < plot.status.text().index("K = 1")


def test_a_task_the_single_pass_model_lacks_is_said_and_dtpm_stays_usable(
        single_pass_models, image_file, make_window, qtbot):
    window = make_window(engine=SINGLE_PASS, task="defocus-deblur", default_k=1)
    window.start([image_file])
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=30_000)
    assert window.banner.level == "warning"
    assert "defocus-deblur" in window.banner.text() and "desnow" in window.banner.text()
    assert window._display.single_pass is None and not window._display.single_pass_pending
    # the label follows the display the controller emits with the loaded model's tasks (on a
    # loaded machine it has come a moment after the banner: seen once in CI)
    qtbot.waitUntil(lambda: window.view._labels[1]
                    == "Input (single-pass model has no defocus-deblur)", timeout=10_000)
    assert window.task_picker.combo.currentText().endswith("DTPM only")
    assert window.plot.canvas.isVisible()  # the DTPM curve is still there
    assert window.engine_picker.buttons["dtpm"].isEnabled()
    assert "defocus-deblur" in window.engine_picker.buttons[SINGLE_PASS].toolTip()
    models, problem = window.controller.planner.batch_models()
    assert models is None and "defocus-deblur" in problem

    window.engine_picker.buttons["dtpm"].click()
    wait_result(qtbot, window)
    assert window.controller.current_result() is not None
    assert not window.task_picker.combo.currentText().endswith("DTPM only")


def test_single_pass_is_disabled_without_a_single_pass_model(models, image_file, make_window,
                                                             qtbot):
    window = make_window(engine=SINGLE_PASS, default_k=1)
    window.start([image_file])
    single_button = window.engine_picker.buttons[SINGLE_PASS]
    assert not single_button.isEnabled()
    assert "no single-pass model is installed" in single_button.toolTip()
    assert "Add Model" in single_button.toolTip()
    assert window.engine_picker.buttons["dtpm"].isChecked()
    assert window.controller.planner.active_engine == "dtpm" and window.controls.slider.isEnabled()
    window.left_side.setCurrentIndex(window.left_side.findData(SINGLE_PASS))
    wait_result(qtbot, window)  # DTPM restores as usual
    assert window.view._labels[0] == "Input (no single-pass model)"
    assert window.controller.session.engine == SINGLE_PASS  # the choice waits for a model


def test_cancel_stops_the_single_pass_restoration(single_pass_models, tmp_path, make_window, qtbot):
    image = make_image(tmp_path / "big.png", 96, 128)
    window = make_window(engine=SINGLE_PASS, tile=64)
    controller = window.controller
    controller.start()
    qtbot.waitUntil(lambda: controller.single_pass_ready and controller.models_ready
                    and controller.idle, timeout=30_000)
    seen, clicked, passes = threading.Event(), threading.Event(), []
    hold_first_pass(window.controller.worker.engines[SINGLE_PASS], seen, clicked, passes)
    controller.open_image(image)
    qtbot.waitUntil(seen.is_set, timeout=30_000)
    # the first pass's progress arrives after the job's start (queued signals)
    qtbot.waitUntil(lambda: window.progress.isVisible() and window.progress.value() == 1,
                    timeout=10_000)
    assert window.progress.maximum() > 1  # one pass per tile
    assert "Restoring (Single-pass)" in window.status_text.text()
    assert window.cancel_action.isEnabled()
    with qtbot.waitSignal(controller.jobCancelled, timeout=10_000):
        window.cancel_action.trigger()
        clicked.set()
    assert passes == [1]
    qtbot.waitUntil(lambda: controller.idle, timeout=5_000)
    assert controller.current_result() is None and not window._display.single_pass_pending

    window.restore_action.trigger()  # resumes
    result = _wait_single_pass_result(qtbot, window)
    np.testing.assert_allclose(result, _expected(single_pass_models, image, tile=64), rtol=0,
                               atol=1e-6)


def test_engine_choice_persists(single_pass_models, make_window, qtbot):
    window = make_window()
    window.controller.start()
    window.engine_picker.buttons[SINGLE_PASS].click()
    window.right_side.setCurrentIndex(window.right_side.findData(SINGLE_PASS))
    window.close()
    assert load_settings().engine == SINGLE_PASS and load_settings().right_side == SINGLE_PASS

    again = make_window()
    assert again.controller.session.engine == SINGLE_PASS
    again.controller.start()
    assert again.engine_picker.buttons[SINGLE_PASS].isChecked()
    assert not again.controls.slider.isEnabled()
    assert again.right_side.currentData() == SINGLE_PASS
    again.engine_picker.buttons["dtpm"].click()
    again.close()
    assert load_settings().engine == "dtpm"


def test_unknown_engine_or_side_in_settings_falls_back(tmp_path):
    settings = load_settings(tmp_path)
    settings.engine, settings.left_side = "turbo", "nowhere"
    save_settings(settings, tmp_path)
    loaded = load_settings(tmp_path)
    assert (loaded.engine, loaded.left_side) == ("dtpm", "input")


def test_add_model_installs_a_single_pass_file(tmp_path):
    source = _make_singlepass(tmp_path / "my-fast.safetensors")
    folder = tmp_path / "models"
    report = install_models([source], folder=folder)
    assert not report.failed and [m.kind for m in report.installed] == ["singlepass"]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert (folder / manifest["singlepass"]).is_file()
    assert manifest["adapters"] == []


def test_installed_single_pass_file_is_in_the_catalog(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    install_models([_make_singlepass(tmp_path / "f.safetensors")], folder=folder)
    monkeypatch.setenv("DTPM_USER_MODELS", str(folder))
    catalog = load_catalog()
    assert catalog.singlepass is not None and catalog.singlepass.parent == folder


@pytest.fixture
def single_pass_only_models(tmp_path, monkeypatch) -> Path:
    """Only a single-pass network installed (no DTPM base or adapter)."""
    folder = tmp_path / "fast-only"
    folder.mkdir()
    _make_singlepass(folder / SINGLE_PASS_FILE)
    (folder / "manifest.json").write_text(json.dumps(
        {"base": None, "adapters": [], "singlepass": SINGLE_PASS_FILE}), encoding="utf-8")
    monkeypatch.setenv("DTPM_USER_MODELS", str(folder))
    return folder


def test_a_single_pass_model_alone_is_enough(single_pass_only_models, image_file, make_window,
                                             qtbot):
    window = make_window(engine="dtpm", task="desnow")
    window.start([image_file])
    result = _wait_single_pass_result(qtbot, window)
    assert window.stack.currentWidget() is window.compare  # not the "no model" page
    assert window.controller.planner.active_engine == SINGLE_PASS
    assert window.engine_picker.buttons[SINGLE_PASS].isChecked()
    dtpm_button = window.engine_picker.buttons["dtpm"]
    assert not dtpm_button.isEnabled() and "no DTPM base model" in dtpm_button.toolTip()
    combo = window.task_picker.combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["Motion deblurring",
                                                                 "Snow removal"]
    assert window.controller.session.task == "desnow"  # the task chosen last, once it is known
    np.testing.assert_allclose(result, _expected(single_pass_only_models, image_file, "desnow"),
                               rtol=0, atol=1e-6)
    qtbot.waitUntil(lambda: window.controller.idle, timeout=10_000)
    assert "No trade-off curve: no DTPM model is installed" in window.plot.status.text()
    assert window.plot.canvas.isHidden()  # no empty axes
    assert window.controller.planner.batch_models()[0].engine == SINGLE_PASS


def test_a_task_only_the_single_pass_model_has(single_pass_models, image_file, make_window, qtbot):
    window = make_window(default_k=1, task="motion-deblur")
    window.start([image_file])
    wait_result(qtbot, window)
    qtbot.waitUntil(lambda: window.controller.single_pass_ready, timeout=30_000)
    combo = window.task_picker.combo
    index = combo.findData("desnow")
    assert combo.itemText(index) == "Snow removal · Single-pass only"
    assert not combo.itemIcon(index).isNull()  # marked even where the name is cut short
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    assert window.banner.level == "warning" and "desnow" in window.banner.text()
    assert window.view._labels[1] == "Input (no DTPM model for desnow)"
    window.engine_picker.buttons[SINGLE_PASS].click()
    result = _wait_single_pass_result(qtbot, window)
    np.testing.assert_allclose(result, _expected(single_pass_models, image_file, "desnow"), rtol=0,
                               atol=1e-6)


# ----------------------------------------------------------------------------- 8-way ensemble


def test_ensemble_checkbox_restores_eight_passes_and_caches_both_results(
        single_pass_only_models, image_file, make_window, qtbot):
    window = make_window(task="motion-deblur")
    jobs = _record_jobs(window)
    progress = []
    window.controller.progressChanged.connect(
        lambda p: p is not None and p.total and progress.append(p))
    window.start([image_file])
    single = _wait_single_pass_result(qtbot, window)
    qtbot.waitUntil(lambda: window.controller.idle, timeout=10_000)
    checkbox = window.controls.ensemble
    assert checkbox.isEnabled() and not checkbox.isChecked()
    assert window.controller.result_tag() == SINGLE_PASS

    progress.clear()
    checkbox.click()
    assert window.controller.session.ensemble and "8 flipped" in window.controls.hint.text()
    ensemble = _wait_single_pass_result(qtbot, window)
    single_jobs = [j for j in jobs if job_kind(j) == "restore single-pass"]
    assert [j.key.ensemble for j in single_jobs] == [False, True]
    reported = {(p.done, p.total) for p in progress}  # at most every 50 ms: first, last
    assert {(1, 8), (8, 8)} <= reported <= {(i, 8) for i in range(1, 9)}  # 8 passes, one tile
    assert all("8-way ensemble" in p.stage for p in progress)
    np.testing.assert_allclose(ensemble, _expected(single_pass_only_models, image_file,
                                                   ensemble=True), rtol=0, atol=1e-6)
    assert np.abs(ensemble - single).max() > 1e-3  # the average of 8 variants, not 1
    assert window.shown_images()[1] is ensemble
    assert window.controller.result_tag() == "single-pass-ensemble"  # Save As names it

    # unticked: the single-pass result from the cache, and no new job; ticked again: the same
    submitted = len(jobs)
    checkbox.click()
    assert not window.controller.session.ensemble
    assert np.array_equal(window.controller.current_result(), single)
    assert np.array_equal(window.shown_images()[1], single)
    checkbox.click()
    assert np.array_equal(window.controller.current_result(), ensemble)
    qtbot.waitUntil(lambda: window.controller.idle, timeout=10_000)
    assert len(jobs) == submitted


def test_ensemble_checkbox_belongs_to_the_single_pass_engine_and_persists(
        single_pass_models, make_window, qtbot):
    window = make_window()
    window.controller.start()
    checkbox = window.controls.ensemble
    assert window.controller.planner.active_engine == "dtpm"
    assert not checkbox.isEnabled() and "8 network passes" in checkbox.toolTip()
    window.engine_picker.buttons[SINGLE_PASS].click()
    assert checkbox.isEnabled()
    checkbox.click()
    window.engine_picker.buttons["dtpm"].click()
    assert not checkbox.isEnabled() and checkbox.isChecked()  # kept for the single-pass engine
    window.close()
    assert load_settings().ensemble is True

    again = make_window()
    assert again.controller.session.ensemble and again.controls.ensemble.isChecked()
    again.controller.start()
    assert not again.controls.ensemble.isEnabled()  # DTPM was in use at the close
    again.engine_picker.buttons[SINGLE_PASS].click()
    assert again.controls.ensemble.isEnabled()
    again.controls.ensemble.click()
    again.close()
    assert load_settings().ensemble is False


def test_batch_uses_the_ensemble_with_the_single_pass_engine(
        single_pass_only_models, tmp_path, make_window, qtbot):
    folder, inputs = _two_photos(tmp_path / "shoot")
    outdir = tmp_path / "out"
    window = make_window(ensemble=True, output_dir=str(outdir), output_format="png16")
    window.controller.start()
    qtbot.waitUntil(lambda: window.controller.single_pass_ready, timeout=30_000)
    models = window.controller.planner.batch_models()[0]
    assert models.engine == SINGLE_PASS and models.ensemble
    _restore_in_batch(window, qtbot, folder)
    assert "8-way ensemble" in window.batch_panel.running_text
    task = models.task  # no stored scores: the first task by name
    for source in inputs:
        written = read_image(outdir / source.name).rgb
        expected = _expected(single_pass_only_models, source, task, ensemble=True)
        np.testing.assert_allclose(written, expected, rtol=0, atol=0.5 / 65535 + 1e-6)
        assert np.abs(written - _expected(single_pass_only_models, source, task)).max() > 1e-3
