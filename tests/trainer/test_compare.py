"""`dtpm-train compare`: held-out pairs, per-task scores, n/a where a method has no model; the
engines run through dtpm_core.engines.engine."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dtpm_core.config import Stage2Options
from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec, load_engine
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer
from dtpm_core.evaluation.metrics import LPIPSMetric, psnr
from dtpm_core.modelfiles.weights import save_adapter, save_base
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import save_singlepass
from trainer.cli import main as train_main
from trainer.compare import compare, dtpm_methods, held_out_pairs, markdown, single_pass_method
from trainer.degradations import degrade

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from model_factory import tiny_model  # noqa: E402


def test_held_out_pairs_use_the_held_out_distribution(clean_folder):
    pairs = held_out_pairs([clean_folder], "desnow", seed=0)
    assert len(pairs) == 3
    degraded, clean = pairs[0]
    assert degraded.shape == clean.shape and degraded.dtype == np.float32
    again = np.clip(degrade("desnow", clean, np.random.default_rng([0, 0]), held_out=True), 0, 1)
    np.testing.assert_allclose(degraded, again, atol=1e-6)
    seen = np.clip(degrade("desnow", clean, np.random.default_rng([0, 0])), 0, 1)
    assert not np.allclose(degraded, seen)  # not the training distribution


def test_scores_per_task_and_missing_models(clean_folder):
    lpips = LPIPSMetric("alex")

    def only_desnow(image, task):
        if task != "desnow":
            raise KeyError(task)
        return np.clip(image * 0.5 + 0.25, 0, 1)
    scores = compare({"copy": lambda x, _t: x, "half": only_desnow}, ["desnow", "raindrop"],
                     [clean_folder], lpips)
    by = {(s.task, s.method): s for s in scores}
    assert by[("desnow", "copy")].psnr == by[("desnow", "input")].psnr
    assert ("raindrop", "half") not in by and ("desnow", "half") in by
    pairs = held_out_pairs([clean_folder], "desnow")
    expected = np.mean([psnr(np.clip(d * 0.5 + 0.25, 0, 1), c) for d, c in pairs])
    assert abs(by[("desnow", "half")].psnr - expected) < 1e-6
    table = markdown(scores, ["input", "copy", "half"], "note")
    assert "| raindrop |" in table and "n/a" in table


def test_compare_command_writes_reports(tmp_path, clean_folder):
    torch.manual_seed(0)
    model = tmp_path / "sp.safetensors"
    save_singlepass(model, SinglePassNet(singlepass_preset("tiny", width=8)),
                    tasks={"desnow": 15})
    out = tmp_path / "cmp"
    assert train_main(["compare", "--clean", str(clean_folder), "--singlepass", str(model),
                       "--tasks", "desnow,raindrop", "-o", str(out)]) == 0
    text = (out / "compare.md").read_text()
    assert "single-pass diffusion-trained" in text and "LPIPS backbone" in text
    assert (out / "compare.csv").read_text().count("\n") == 1 + 2 + 1  # header, 2 + 1 rows
    assert train_main(["compare", "--clean", str(clean_folder), "-o", str(out)]) == 2


def test_engine_methods_give_the_restorers_results(tmp_path, clean_folder):
    model = tiny_model(Stage2Options(), semantic="none", seed=3)
    sha = save_base(tmp_path / "base.safetensors", model)
    save_adapter(tmp_path / "snow.safetensors", model, "desnow", sha)
    torch.manual_seed(0)
    save_singlepass(tmp_path / "sp.safetensors", SinglePassNet(singlepass_preset("tiny", width=8)),
                    tasks={"desnow": 15})
    degraded, _ = held_out_pairs([clean_folder], "desnow")[0]

    # the same backend and precision on both sides (`auto` would pick OpenVINO for the
    # engines on an x86-64 CPU, where the restorers' default backend is torch)
    dtpm = dtpm_methods(load_engine(DTPMSpec(tmp_path / "base.safetensors", steps=(1, 4),
                                             seed=2, tile=0, device="cpu", precision="fp32",
                                             backend="torch")),
                        {"desnow": tmp_path / "snow.safetensors"})
    assert list(dtpm) == ["DTPM K=1", "DTPM K=4"]
    expected = Restorer(tmp_path / "base.safetensors", tmp_path / "snow.safetensors",
                        device="cpu", precision="fp32", backend="torch").restore(
        degraded, [1, 4], seed=2, tile=0)
    for k in (1, 4):
        assert np.array_equal(dtpm[f"DTPM K={k}"](degraded, "desnow"), expected.results[k])
    with pytest.raises(KeyError):
        dtpm["DTPM K=1"](degraded, "raindrop")

    fast = single_pass_method(load_engine(SinglePassSpec(tmp_path / "sp.safetensors", tile=0,
                                                         device="cpu", precision="fp32",
                                                         backend="torch")))
    expected = SinglePassRestorer(tmp_path / "sp.safetensors", "cpu", precision="fp32",
                                  backend="torch").restore(degraded, "desnow", tile=0).result
    assert np.array_equal(fast(degraded, "desnow"), expected)
    with pytest.raises(KeyError):
        fast(degraded, "raindrop")
