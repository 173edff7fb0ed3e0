"""`dtpm-restore` end to end with weights made in the test."""

import hashlib

import numpy as np
import pytest
from model_factory import tiny_model
from PIL import Image

from dtpm_core.cli import main
from dtpm_core.config import Stage2Options
from dtpm_core.files.batch_report import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from dtpm_core.files.imageio import read_image
from dtpm_core.modelfiles.weights import save_adapter, save_base


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_models")
    model = tiny_model(Stage2Options(), seed=5)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    return folder


def _photo(path, size=(48, 40), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _args(weights, *rest):
    return ["--base", str(weights / "base.safetensors"),
            "--adapter", str(weights / "motion.safetensors"), "--steps", "2", "-q", *rest]


def test_folder_recursive_with_a_broken_file(weights, tmp_path, capsys):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    _photo(inputs / "a.png")
    _photo(inputs / "sub" / "b.jpg", seed=1)
    _photo(inputs / "sub" / "c.png", seed=2, mode="RGBA")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    before = {p: _digest(p) for p in inputs.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    code = main([str(inputs), "-o", str(out), *_args(weights)])
    captured = capsys.readouterr()
    assert code == EXIT_SOME_FAILED
    assert "broken.png" in captured.err and "1 failed" in captured.err
    assert "restored 3 of 4" in captured.out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["a.png", "sub/b.jpg", "sub/c.png"]
    assert read_image(out / "sub" / "c.png").alpha is not None  # alpha carried through
    assert {p: _digest(p) for p in before} == before  # inputs untouched


def test_outputs_never_go_over_inputs(weights, tmp_path):
    source = _photo(tmp_path / "photo.png")
    digest = _digest(source)
    assert main([str(source), "-o", str(tmp_path), *_args(weights)]) == EXIT_OK
    assert _digest(source) == digest
    assert (tmp_path / "photo_restored.png").is_file()


def test_same_seed_same_bytes_and_format_option(weights, tmp_path):
    source = _photo(tmp_path / "x.png")
    for name in ("one", "two"):
        assert main([str(source), "-o", str(tmp_path / name), *_args(weights, "--seed", "4")]) == 0
    assert _digest(tmp_path / "one" / "x.png") == _digest(tmp_path / "two" / "x.png")
    assert main([str(source), "-o", str(tmp_path / "t"), "--format", "tiff",
                 *_args(weights)]) == 0
    assert (tmp_path / "t" / "x.tif").is_file()


def test_missing_model_and_bad_options_exit_with_usage_errors(weights, tmp_path, capsys):
    source = _photo(tmp_path / "x.png")
    assert main([str(source), "-o", str(tmp_path / "o"), "--base",
                 str(tmp_path / "none.safetensors"), "--adapter",
                 str(weights / "motion.safetensors")]) == EXIT_USAGE
    assert "not found" in capsys.readouterr().err
    assert main([str(source), "-o", str(tmp_path / "o"), *_args(weights, "--steps", "0")]) \
        == EXIT_USAGE
    assert main([str(source), "-o", str(tmp_path / "o")]) == EXIT_USAGE  # nothing installed
    assert "no base model is installed" in capsys.readouterr().err


def test_missing_input_is_reported_in_the_summary(weights, tmp_path, capsys):
    source = _photo(tmp_path / "x.png")
    code = main([str(source), str(tmp_path / "ghost.png"), "-o", str(tmp_path / "o"),
                 *_args(weights)])
    assert code == EXIT_SOME_FAILED
    assert "ghost.png: no such file" in capsys.readouterr().err
    assert (tmp_path / "o" / "x.png").is_file()


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in ("--adapter", "--base", "--steps", "--seed", "--tile", "--device", "-o",
                   "--engine", "--model", "--task", "--ensemble", "--precision",
                   "--on-conflict", "--overwrite"):
        assert option in text
    assert "a file with several needs --task" in " ".join(text.split())


@pytest.fixture(scope="module")
def singlepass(tmp_path_factory):
    """Two single-pass files: one restoring two tasks, one restoring one."""
    import torch

    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import save_singlepass
    folder = tmp_path_factory.mktemp("cli_singlepass")
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8))
    save_singlepass(folder / "fast.safetensors", net, tasks={"desnow": 15, "raindrop": 22})
    save_singlepass(folder / "one.safetensors", net, tasks={"desnow": 15})
    return folder


def test_single_pass_engine(singlepass, tmp_path, capsys):
    model = singlepass / "fast.safetensors"
    source = _photo(tmp_path / "x.png", size=(96, 80))  # tiled: 4 windows of 64
    digest = _digest(source)
    args = ["--engine", "single-pass", "--model", str(model), "-q", "--tile", "64"]
    assert main([str(source), "-o", str(tmp_path / "o"), *args, "--task", "raindrop"]) == 0
    assert (tmp_path / "o" / "x.png").is_file() and _digest(source) == digest
    assert main([str(source), "-o", str(tmp_path / "o2"), *args, "--task", "raindrop"]) == 0
    assert _digest(tmp_path / "o" / "x.png") == _digest(tmp_path / "o2" / "x.png")
    assert main([str(source), "-o", str(tmp_path / "o3"), *args, "--task", "motion"]) == \
        EXIT_USAGE
    assert "raindrop" in capsys.readouterr().err  # the error lists the tasks it has
    assert main([str(source), "-o", str(tmp_path / "o4"), "--engine", "single-pass"]) == \
        EXIT_USAGE


def test_single_pass_without_task_restores_the_file_s_only_task(singlepass, tmp_path, capsys):
    source = _photo(tmp_path / "x.png", size=(96, 80))
    common = [str(source), "-q", "--engine", "single-pass", "--tile", "64"]
    assert main([*common, "-o", str(tmp_path / "one"), "--model",
                 str(singlepass / "one.safetensors")]) == EXIT_OK
    assert main([*common, "-o", str(tmp_path / "named"), "--model",
                 str(singlepass / "one.safetensors"), "--task", "desnow"]) == EXIT_OK
    assert _digest(tmp_path / "one" / "x.png") == _digest(tmp_path / "named" / "x.png")
    capsys.readouterr()
    # several tasks and no --task: a usage error listing them, before any image
    assert main([*common, "-o", str(tmp_path / "several"), "--model",
                 str(singlepass / "fast.safetensors")]) == EXIT_USAGE
    assert "restores 2 tasks (desnow, raindrop)" in capsys.readouterr().err
    assert not (tmp_path / "several" / "x.png").exists()


@pytest.mark.parametrize("engine, option, refused", [
    ("single-pass", ["--steps", "10"], "steps"),
    ("single-pass", ["--adapter", "motion-deblur"], "adapter"),
    ("single-pass", ["--seed", "3"], "seed"),
    ("single-pass", ["--strength", "0.5"], "strength"),
    ("single-pass", ["--texture-colour", "rgb"], "texture-colour"),
    ("single-pass", ["--eta", "0.5"], "eta"),
    ("single-pass", ["--base", "base.safetensors"], "base"),
    ("dtpm", ["--task", "desnow"], "task"),
    ("dtpm", ["--ensemble"], "ensemble"),
    ("dtpm", ["--model", "fast.safetensors"], "model"),
])
def test_an_option_of_the_other_engine_is_a_usage_error(weights, singlepass, tmp_path, capsys,
                                                        engine, option, refused):
    source = _photo(tmp_path / "x.png")
    models = ["--model", str(singlepass / "one.safetensors")] if engine == "single-pass" else \
        ["--base", str(weights / "base.safetensors"),
         "--adapter", str(weights / "motion.safetensors")]
    code = main([str(source), "-o", str(tmp_path / "o"), "-q", "--engine", engine, *models,
                 *option])
    assert code == EXIT_USAGE
    assert f"--{refused}: not an option of the {engine} engine" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything is planned or written


def test_a_precision_the_cpu_cannot_run_is_a_usage_error(weights, tmp_path, capsys,
                                                         monkeypatch):
    from dtpm_core.backends import device
    source = _photo(tmp_path / "x.png")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda flags=None: False)
    for precision, message in (("bf16", "no native bf16"), ("fp16", "fp16 is not supported")):
        code = main([str(source), "-o", str(tmp_path / "o"),
                     *_args(weights, "--device", "cpu", "--precision", precision)])
        assert code == EXIT_USAGE
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "x.png").exists()
    # auto runs what the CPU has (fp32 here), for both engines' option alike
    assert main([str(source), "-o", str(tmp_path / "o"), *_args(weights)]) == EXIT_OK


@pytest.mark.parametrize("engine", ["dtpm", "single-pass"])
def test_fp16_on_the_cpu_is_a_usage_error_for_both_engines(weights, singlepass, tmp_path,
                                                           capsys, engine):
    source = _photo(tmp_path / "x.png")
    models = ["--model", str(singlepass / "one.safetensors")] if engine == "single-pass" \
        else ["--base", str(weights / "base.safetensors"),
              "--adapter", str(weights / "motion.safetensors")]
    code = main([str(source), "-o", str(tmp_path / "o"), "-q", "--engine", engine, *models,
                 "--device", "cpu", "--precision", "fp16"])
    assert code == EXIT_USAGE
    assert "fp16 is not supported on the CPU" in capsys.readouterr().err
    assert not (tmp_path / "o" / "x.png").exists()


# ------------------------------------------------------------------ recommended K and strength

@pytest.fixture
def installed(weights, tmp_path, monkeypatch):
    """The test base and adapter installed as motion-deblur, whose manifest recommends K = 2 at
    texture strength 0.5 (the bundled models are out of sight)."""
    import json
    import shutil

    folder = tmp_path / "user_models"
    folder.mkdir()
    for name in ("base.safetensors", "motion.safetensors"):
        shutil.copy(weights / name, folder / name)
    (folder / "manifest.json").write_text(json.dumps({
        "base": "base.safetensors",
        "adapters": [{"task": "motion-deblur", "file": "motion.safetensors",
                      "recommended": {"steps": 2, "strength": 0.5}}]}), encoding="utf-8")
    monkeypatch.setenv("DTPM_USER_MODELS", str(folder))
    monkeypatch.setenv("DTPM_RESOURCES", str(tmp_path / "no_resources"))
    return folder


def _restore(tmp_path, name, *options):
    source = tmp_path / "x.png"
    if not source.exists():
        _photo(source)
    assert main([str(source), "-o", str(tmp_path / name), "-q", "--device", "cpu",
                 *options]) == EXIT_OK
    return _digest(tmp_path / name / "x.png")


def test_steps_and_strength_default_to_the_adapter_s_recommendation(installed, tmp_path,
                                                                    capsys):
    recommended = _restore(tmp_path, "recommended")  # the installed motion-deblur
    note = capsys.readouterr().err
    assert "note: K=2 and texture strength 0.5: recommended for motion-deblur" in note
    assert _restore(tmp_path, "explicit", "--steps", "2", "--strength", "0.5") == recommended
    assert "recommended" not in capsys.readouterr().err  # nothing came from there
    assert _restore(tmp_path, "by_path", "--adapter",
                    str(installed / "motion.safetensors")) == recommended  # the same file
    old_defaults = _restore(tmp_path, "old", "--steps", "4", "--strength", "1")
    assert old_defaults != recommended


def test_an_explicit_value_wins_and_the_other_stays_recommended(installed, tmp_path, capsys):
    k3 = _restore(tmp_path, "k3", "--steps", "3")
    assert "note: texture strength 0.5: recommended for motion-deblur" in capsys.readouterr().err
    assert _restore(tmp_path, "k3_explicit", "--steps", "3", "--strength", "0.5") == k3
    s1 = _restore(tmp_path, "s1", "--strength", "1")
    assert "note: K=2: recommended for motion-deblur" in capsys.readouterr().err
    assert _restore(tmp_path, "s1_explicit", "--steps", "2", "--strength", "1") == s1


def test_texture_colour_luminance_is_the_default_and_rgb_the_papers(installed, tmp_path,
                                                                     capsys):
    default = _restore(tmp_path, "default", "--strength", "1")
    assert _restore(tmp_path, "luminance", "--strength", "1", "--texture-colour",
                    "luminance") == default
    assert _restore(tmp_path, "rgb", "--strength", "1", "--texture-colour", "rgb") != default
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.png"), "-o", str(tmp_path / "bad"), "--texture-colour", "sepia"])
    assert "invalid choice: 'sepia'" in capsys.readouterr().err


def test_an_adapter_without_a_recommendation_keeps_the_global_defaults(installed, tmp_path,
                                                                      capsys):
    import shutil

    own = shutil.copy(installed / "motion.safetensors", tmp_path / "own.safetensors")
    result = _restore(tmp_path, "own", "--adapter", str(own))
    assert "recommended" not in capsys.readouterr().err
    assert _restore(tmp_path, "defaults", "--adapter", str(own), "--steps", "4",
                    "--strength", "1") == result


def test_steps_at_strength_zero_are_said_to_change_nothing(installed, tmp_path, capsys):
    import json

    manifest = installed / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["adapters"][0]["recommended"] = {"steps": 1, "strength": 0.0}
    manifest.write_text(json.dumps(data), encoding="utf-8")
    zero = _restore(tmp_path, "zero", "--steps", "7")
    err = capsys.readouterr().err
    assert "texture strength 0: recommended" in err
    assert "the result is the initial prediction: --steps 7 changes nothing" in err
    assert _restore(tmp_path, "zero_k1") == zero


def test_the_cluster_path_gets_the_same_resolved_values(installed, tmp_path, monkeypatch,
                                                        capsys):
    from dtpm_core.cluster import driver

    specs = []
    monkeypatch.setattr(driver, "run_on_cluster",
                        lambda args, plan, spec, missing, restore_one: specs.append(spec) or 0)
    source = _photo(tmp_path / "x.png")
    assert main([str(source), "-o", str(tmp_path / "o"), "-q", "--cluster"]) == EXIT_OK
    assert "note: K=2 and texture strength 0.5" in capsys.readouterr().err
    assert main([str(source), "-o", str(tmp_path / "o"), "-q", "--cluster",
                 "--strength", "1.5"]) == EXIT_OK
    assert [(s.steps, s.strength) for s in specs] == [((2,), 0.5), ((2,), 1.5)]


def test_help_says_where_the_defaults_come_from(capsys, monkeypatch, tmp_path):
    from dtpm_core.modelfiles.catalog import load_catalog

    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside a name
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the K recommended for the adapter in its model manifest" in text
    assert "4 for an adapter without one" in text
    assert "default: the strength recommended for the adapter in its model manifest" in text
    assert "1 for an adapter without one" in text
    # its examples are the bundled manifest's values
    monkeypatch.delenv("DTPM_RESOURCES", raising=False)
    monkeypatch.setenv("DTPM_USER_MODELS", str(tmp_path))
    adapters = load_catalog().adapters
    motion, rain = adapters["motion-deblur"].recommended, adapters["derain-dehaze"].recommended
    assert f"e.g. {motion.steps} for the bundled motion-deblur" in text
    assert f"e.g. {motion.strength:g} for the bundled motion-deblur and " \
           f"{rain.strength:g} for derain-dehaze" in text
