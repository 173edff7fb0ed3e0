"""Inference without torch (issue 22, item 4): with the OpenVINO backend, `dtpm-restore`
imports neither torch nor torchvision; the graphs ship beside the models (`dtpm-train
export --graphs`, `dtpm-train graphs`), the weight files are verified without torch, and a
model without graphs on a machine without torch gets a clear message. Each run is a fresh
process in which importing torch fails, as in the CPU bundle, with an empty graph cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from model_factory import tiny_model
from no_torch import PRELUDE

pytest.importorskip("openvino")

from dtpm_core.backends.graph_cache import GraphCache  # noqa: E402
from dtpm_core.config import Stage2Options  # noqa: E402
from dtpm_core.engines.dtpm_restorer import Restorer  # noqa: E402
from dtpm_core.engines.graph_export import (  # noqa: E402
    dtpm_graphs,
    singlepass_graphs,
    write_shipped_graphs,
)
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer  # noqa: E402
from dtpm_core.files.imageio import read_image, write_image  # noqa: E402
from dtpm_core.modelfiles.weights import save_adapter, save_base  # noqa: E402
from dtpm_core.singlepass.config import singlepass_preset  # noqa: E402
from dtpm_core.singlepass.network import SinglePassNet  # noqa: E402
from dtpm_core.singlepass.weights import save_singlepass  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WITHOUT_TORCH = PRELUDE + """
from dtpm_core.cli import main
code = main(sys.argv[1:])
assert torch_free()
# nor OpenVINO's model converter, which `import openvino` would load (start-up time)
assert code != 0 or "openvino.tools.ovc" not in sys.modules, "the converter was imported"
# nor tqdm in a quiet run, which draws no bars (start-up time)
assert "-q" not in sys.argv or "tqdm" not in sys.modules, "tqdm was imported in a quiet run"
sys.exit(code)
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A models folder: tiny base (with a semantic encoder), adapter and single-pass files
    with their graphs."""
    folder = tmp_path_factory.mktemp("models")
    model = tiny_model(Stage2Options(), semantic="random", seed=4)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16,
                                          adaptor_tasks=("desnow",)))
    save_singlepass(folder / "singlepass.safetensors", net.eval(), tasks={"desnow": 15})
    specs = dtpm_graphs(folder / "base.safetensors", folder / "motion.safetensors") \
        + singlepass_graphs(folder / "singlepass.safetensors")
    assert [spec.role for spec in specs] == ["denoiser", "predictor", "semantic", "singlepass"]
    assert write_shipped_graphs(specs, folder, say=lambda _: None) == 4
    assert write_shipped_graphs(specs, folder, say=lambda _: None) == 0  # kept: whole
    return folder


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("in") / "photo.png"
    write_image(path, rng.random((40, 56, 3), dtype=np.float32))
    return path


def _restore_without_torch(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DTPM_GRAPH_CACHE": str(tmp_path / "empty-cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT),
                                                       os.environ.get("PYTHONPATH"))))}
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_dtpm_restore_runs_both_engines_without_torch(models, photo_file, tmp_path):
    out = tmp_path / "out"
    run = _restore_without_torch([str(photo_file), "-o", str(out / "dtpm"), "-q",
                                  "--base", str(models / "base.safetensors"),
                                  "--adapter", str(models / "motion.safetensors"),
                                  "--backend", "openvino", "--steps", "3", "--seed", "2",
                                  "--precision", "fp32"],
                                 tmp_path)
    assert run.returncode == 0, run.stderr
    run = _restore_without_torch([str(photo_file), "-o", str(out / "sp"), "-q",
                                  "--engine", "single-pass",
                                  "--model", str(models / "singlepass.safetensors"),
                                  "--backend", "auto", "--precision", "fp32"],
                                 tmp_path)  # auto: OpenVINO, no torch
    assert run.returncode == 0, run.stderr
    assert GraphCache(tmp_path / "empty-cache").entries() == []  # the shipped graphs ran

    # the same pixels as the torch backend at fp32, up to 8-bit rounding
    image = read_image(photo_file).rgb
    expected = Restorer(models / "base.safetensors", models / "motion.safetensors",
                        device="cpu", precision="fp32").restore(image, 3, seed=2).result
    got = read_image(out / "dtpm" / "photo.png").rgb
    assert np.abs(got - expected).max() <= 1 / 255 + 1e-6
    single = SinglePassRestorer(models / "singlepass.safetensors", device="cpu",
                                precision="fp32").restore(image, "desnow").result
    assert np.abs(read_image(out / "sp" / "photo.png").rgb - single).max() <= 1 / 255 + 1e-6


def test_a_model_without_graphs_says_what_to_do_without_torch(models, photo_file, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("base.safetensors", "motion.safetensors"):
        (bare / name).write_bytes((models / name).read_bytes())
    run = _restore_without_torch([str(photo_file), "-o", str(tmp_path / "out"),
                                  "--base", str(bare / "base.safetensors"),
                                  "--adapter", str(bare / "motion.safetensors"),
                                  "--backend", "openvino"], tmp_path)
    assert run.returncode != 0
    assert "no usable converted graph" in run.stderr and "dtpm-train graphs" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_damaged_shipped_graph_is_never_used(models, photo_file, tmp_path):
    """A shipped graph that fails its checksum is reported and converted into the cache
    instead (here, with torch), never run; the shipped folder is left as it is."""
    copy = shutil.copytree(models, tmp_path / "models")
    manifests = [json.loads(p.read_text()) for p in (copy / "graphs").glob("*/manifest.json")]
    denoiser = next(p.parent for p, m in zip((copy / "graphs").glob("*/manifest.json"),
                                             manifests, strict=True)
                    if m["key"]["role"] == "denoiser")
    weights = denoiser / "model.bin"
    damaged = bytearray(weights.read_bytes())
    damaged[100] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    os.environ["DTPM_GRAPH_CACHE"] = str(tmp_path / "cache")
    try:
        restorer = Restorer(copy / "base.safetensors", copy / "motion.safetensors",
                            device="cpu", precision="fp32", backend="openvino")
        result = restorer.restore(read_image(photo_file).rgb, 2)
    finally:
        del os.environ["DTPM_GRAPH_CACHE"]
    assert any("shipped" in note and "damaged" in note for note in result.notes), result.notes
    assert weights.read_bytes() == bytes(damaged)  # left as it is
    assert any((tmp_path / "cache").iterdir())


def test_converting_a_whole_folder_removes_the_graphs_of_replaced_models(models, tmp_path):
    """`dtpm-train graphs --models` knows every graph the folder needs, so a replaced model's
    graph goes (a bundle copies the whole graphs folder); converting one file's graphs
    (`export --graphs`, prune off) leaves the others."""
    copy = shutil.copytree(models, tmp_path / "models")
    stale = copy / "graphs" / "0123456789abcdef0123456789abcdef"
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"an old model's weights")
    specs = dtpm_graphs(copy / "base.safetensors", copy / "motion.safetensors") \
        + singlepass_graphs(copy / "singlepass.safetensors")
    kept = sorted(p.name for p in (copy / "graphs").iterdir() if p != stale)
    said: list[str] = []
    assert write_shipped_graphs(specs[:1], copy, say=said.append) == 0
    assert stale.is_dir()  # not pruning: the other graphs stay
    assert write_shipped_graphs(specs, copy, say=said.append, prune=True) == 0
    assert not stale.exists() and any("no longer has" in line for line in said)
    assert sorted(p.name for p in (copy / "graphs").iterdir()) == kept
