"""The app without torch (issue 22, item 4): in a process where importing torch fails, as in
the CPU bundle, the window opens, restores a photo with both engines (DTPM preview and
result, single-pass), draws the trade-off curve with the EffNet-Lite0 feature distance on
OpenVINO, saves, runs a batch, and `--self-test` passes its checks and says why there is no
LPIPS. Tiny models with their graphs (and the feature network's graph) are written into a
tmp folder with torch, here; the processes that use them have none and an empty graph cache,
so everything they run comes from the shipped graphs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from app_helpers import make_image
from no_torch import PRELUDE

pytest.importorskip("openvino")

from dtpm_core.backends.graph_cache import GraphCache  # noqa: E402
from dtpm_core.config import Stage2Options, preset  # noqa: E402
from dtpm_core.engines.graph_export import (  # noqa: E402
    dtpm_graphs,
    feature_graphs,
    singlepass_graphs,
    write_shipped_graphs,
)
from dtpm_core.modelfiles.weights import save_adapter, save_base  # noqa: E402
from dtpm_core.networks.model import DTPM  # noqa: E402
from dtpm_core.singlepass.config import singlepass_preset  # noqa: E402
from dtpm_core.singlepass.network import SinglePassNet  # noqa: E402
from dtpm_core.singlepass.weights import save_singlepass  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NO_TORCH = PRELUDE

WINDOW = NO_TORCH + '''
import json, time
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication([])
from dtpm_app.job_planner import CURVE_SIDES
from dtpm_app.main_window import MainWindow
from dtpm_app.settings import load_settings
from dtpm_core.options import SINGLE_PASS

image, out = Path(sys.argv[1]), Path(sys.argv[2])
settings = load_settings()
settings.default_k = 2
window = MainWindow(settings)
window.show()
c = window.controller
report = {"torch_free_at_window": torch_free()}

def wait(condition, what, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}; banner: {window.banner.text()}")

window.start([image])
wait(lambda: c.idle and c.current_result() is not None
     and all(c.planner.curve_complete(side) for side in CURVE_SIDES), "the DTPM result and curve")
state = window.plot._state
report["dtpm_shape"] = list(c.current_result().shape)
report["curve"] = {"psnr": len(state.psnr), "distance": len(state.lpips),
                   "backbone": state.backbone, "error": state.error}

window.engine_picker.buttons[SINGLE_PASS].click()
wait(lambda: c.idle and window._display.single_pass is not None, "the single-pass result")
report["single_pass_shape"] = list(c.current_result().shape)
wait(lambda: window.plot._state.single_pass_lpips is not None and c.idle, "the single-pass point")

saved = []
c.saved.connect(lambda *args: saved.append(args))
c.save_result(out / "saved.png", "png16", 92)
wait(lambda: saved, "the save")
report["saved"] = (out / "saved.png").is_file()

window.engine_picker.buttons["dtpm"].click()
wait(lambda: c.idle, "DTPM again")
finished = []
window.batch.finished.connect(lambda summary: finished.append(summary))
window.open_paths([image.parent / "batch"])
window.batch.set_output(str(out / "batch"), "png8", 92)
window.start_batch()
wait(lambda: finished, "the batch")
summary = finished[0]
report["batch"] = [summary.done, summary.skipped, summary.failed]
report["batch_files"] = sorted(p.name for p in (out / "batch").glob("*.png"))
report["banner"] = window.banner.text() if window.banner.level == "error" else ""
report["torch_free"] = torch_free()
window.shutdown()
print("REPORT " + json.dumps(report))
'''

SELF_TEST = NO_TORCH + '''
from dtpm_app.__main__ import main
code = main(["--self-test", "--device", "cpu"])
print("TORCH FREE", torch_free())
sys.exit(code)
'''


@pytest.fixture(scope="module")
def graph_models(tmp_path_factory) -> Path:
    """Tiny base, adapter and single-pass files, their manifest, and every graph they and
    the trade-off curve need in graphs/: the bundle's model folder, small."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = DTPM(preset("tiny", denoiser__semantic="none"), Stage2Options()).eval()
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion-deblur.safetensors", model, "motion-deblur", sha)
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16,
                                          adaptor_tasks=("motion-deblur",)))
    save_singlepass(folder / "singlepass.safetensors", net.eval(),
                    tasks={"motion-deblur": 15})
    (folder / "manifest.json").write_text(json.dumps({
        "base": "base.safetensors", "singlepass": "singlepass.safetensors",
        "adapters": [{"task": "motion-deblur", "display_name": "Motion",
                      "file": "motion-deblur.safetensors"}]}), encoding="utf-8")
    specs = dtpm_graphs(folder / "base.safetensors", folder / "motion-deblur.safetensors") \
        + singlepass_graphs(folder / "singlepass.safetensors") + feature_graphs()
    write_shipped_graphs(specs, folder, say=lambda _: None)
    return folder


def _run(code: str, args: list[str], models: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    resources = tmp_path / "resources"  # the sample and icons, with these models as bundled
    if not resources.exists():
        resources.mkdir()
        for name in ("icons", "samples"):
            (resources / name).symlink_to(ROOT / "resources" / name)
        (resources / "models").symlink_to(models)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1",
           "DTPM_THREADS": "1", "DTPM_OFFLINE": "1", "DTPM_RESOURCES": str(resources),
           "DTPM_USER_MODELS": str(tmp_path / "no-user-models"),
           "DTPM_SETTINGS_DIR": str(tmp_path / "settings"),
           "DTPM_GRAPH_CACHE": str(tmp_path / "empty-cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT),
                                                       os.environ.get("PYTHONPATH"))))}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)


def test_the_window_restores_plots_saves_and_runs_a_batch_without_torch(graph_models, tmp_path):
    image = make_image(tmp_path / "in" / "photo.png", 40, 56)
    for seed in (1, 2):
        make_image(tmp_path / "in" / "batch" / f"b{seed}.png", 36, 44, seed=seed)
    out = tmp_path / "out"
    out.mkdir()
    run = _run(WINDOW, [str(image), str(out)], graph_models, tmp_path)
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-5000:]
    report = json.loads(lines[-1][len("REPORT "):])
    assert report["torch_free_at_window"] and report["torch_free"], report
    assert report["dtpm_shape"] == report["single_pass_shape"] == [40, 56, 3]
    curve = report["curve"]
    assert curve["psnr"] == curve["distance"] == 6 and not curve["error"], curve
    assert curve["backbone"] == "EffNet-Lite0 feature distance: EfficientNet-Lite0 (ImageNet)"
    assert report["saved"] and report["batch"] == [2, 0, 0]
    assert report["batch_files"] == ["b1.png", "b2.png"] and not report["banner"], report
    assert GraphCache(tmp_path / "empty-cache").entries() == []  # all from the shipped graphs


def test_self_test_runs_without_torch_and_says_why_there_is_no_lpips(graph_models, tmp_path):
    run = _run(SELF_TEST, [], graph_models, tmp_path)
    out = run.stdout
    assert "Traceback" not in run.stderr, run.stderr[-5000:]
    assert "TORCH FREE True" in out, out
    # the untrained tiny models fail the plausibility checks by design (exit status 1); the
    # point here is that both engines ran on OpenVINO and every check was measured
    assert "engine DTPM" in out and "engine Single-pass" in out
    assert out.count("backend openvino") == 2, out
    assert out.count("LPIPS:    not measured: LPIPS needs PyTorch") == 2, out
    assert out.count("distance: ") == 2 and "EfficientNet-Lite0 on openvino" in out, out
    assert out.count("PASS  shape") == 2 and "colour order" in out, out
    assert GraphCache(tmp_path / "empty-cache").entries() == []
