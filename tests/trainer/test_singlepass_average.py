"""`dtpm-train singlepass average`: the weight average of files of one training line."""

import numpy as np
import pytest
import torch

from dtpm_core.engines.singlepass_restorer import SinglePassRestorer
from dtpm_core.errors import ConfigError
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.info import read_singlepass_info
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass
from trainer.cli import main as train_main
from trainer.singlepass.average import average_singlepass

TASKS = {"motion-deblur": 50, "desnow": 15}


def _file(path, seed: int, tasks=TASKS, width: int = 8):
    torch.manual_seed(seed)
    net = SinglePassNet(singlepass_preset("tiny", width=width, cond_dim=16,
                                          adaptor_tasks=tuple(tasks)))
    with torch.no_grad():  # the zero-initialised parts set nonzero, as training makes them
        for name, p in net.named_parameters():
            if name.endswith((".beta", ".gamma", ".scale")):
                p.normal_(0, 0.3)
    save_singlepass(path, net, tasks=tasks, training={"iterations": seed})
    return path


def test_the_average_is_the_mean_of_every_weight_and_restores(tmp_path, capsys):
    files = [_file(tmp_path / f"s{i}.safetensors", seed=i) for i in range(3)]
    out = tmp_path / "mean.safetensors"
    metrics = tmp_path / "eval.csv"
    metrics.write_text("task,image,method,psnr\ndesnow,a.png,single-pass,25.0\n")
    code = train_main(["singlepass", "average", *map(str, files), "-o", str(out),
                       "--metrics", str(metrics)])
    assert code == 0 and "the average of 3 files" in capsys.readouterr().out
    states = [load_singlepass(f)[0].state_dict() for f in files]
    mean, info = load_singlepass(out)
    for name, value in mean.state_dict().items():
        expected = sum(s[name] for s in states) / 3
        assert torch.allclose(value, expected, atol=1e-6), name
        assert not torch.equal(value, states[0][name]) or torch.equal(states[0][name],
                                                                       states[1][name])
    assert info.tasks == TASKS
    assert [s["file"] for s in info.training["weight_average"]] == [f.name for f in files]
    assert info.training["iterations"] == 0  # the first source's notes are kept
    assert info.metrics["eval"][0]["psnr"] == "25.0"
    photo = np.random.default_rng(0).random((24, 40, 3), dtype=np.float32)
    result = SinglePassRestorer(out, "cpu", precision="fp32").restore(photo, "desnow").result
    assert result.shape == photo.shape and np.isfinite(result).all()


def test_files_of_other_lines_or_the_output_among_the_sources_are_refused(tmp_path):
    a = _file(tmp_path / "a.safetensors", seed=0)
    b = _file(tmp_path / "b.safetensors", seed=1)
    other_tasks = _file(tmp_path / "c.safetensors", seed=2, tasks={"motion-deblur": 50,
                                                                   "desnow": 20})
    wider = _file(tmp_path / "d.safetensors", seed=3, width=16)
    with pytest.raises(ConfigError, match="t_mat must agree"):
        average_singlepass([a, other_tasks], tmp_path / "x.safetensors")
    with pytest.raises(ConfigError, match="config differs"):
        average_singlepass([a, wider], tmp_path / "x.safetensors")
    with pytest.raises(ConfigError, match="at least 2"):
        average_singlepass([a], tmp_path / "x.safetensors")
    before = b.read_bytes()
    with pytest.raises(ConfigError, match="one of the files to average"):
        average_singlepass([a, b], b)
    assert b.read_bytes() == before and not (tmp_path / "x.safetensors").exists()


def test_a_damaged_source_or_metrics_file_is_a_clear_error(tmp_path, capsys):
    a = _file(tmp_path / "a.safetensors", seed=0)
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(_file(tmp_path / "b.safetensors", seed=1).read_bytes()[:-200])
    out = tmp_path / "mean.safetensors"
    assert train_main(["singlepass", "average", str(a), str(damaged), "-o", str(out)]) == 2
    assert "damaged.safetensors" in capsys.readouterr().err and not out.exists()
    assert train_main(["singlepass", "average", str(a), str(a), "-o", str(out), "--metrics",
                       str(tmp_path / "missing.csv")]) == 2
    assert "cannot read the metrics file" in capsys.readouterr().err and not out.exists()
    # the same file twice is allowed (and is that file's weights)
    assert train_main(["singlepass", "average", str(a), str(a), "-o", str(out)]) == 0
    assert read_singlepass_info(out).sha256 == read_singlepass_info(a).sha256
