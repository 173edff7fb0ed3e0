"""`dtpm-restore` and the files already on disk (issue 21): a file the tool did not write as the
result of that very photo is never replaced; the tool's own results are recognised from their
own metadata (not taken as inputs, found again by --skip-existing after a crash); long names,
tiny tiles, images too large for memory and unreadable inputs end with a clear message and the
right exit status; a task id wins over a folder of that name."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
from pathlib import Path

import pytest
from model_factory import tiny_model
from photo_files import noise_photo, sha256_of
from PIL import Image

import dtpm_core.files.imageio as imageio
from dtpm_core.cli import main
from dtpm_core.config import Stage2Options
from dtpm_core.engines import memory_budget
from dtpm_core.errors import ImageReadError
from dtpm_core.files.batch_report import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from dtpm_core.files.output_marker import read_output_marker
from dtpm_core.files.output_plan import plan_outputs
from dtpm_core.modelfiles.weights import save_adapter, save_base
from dtpm_core.options import MIN_TILE


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs_models")
    model = tiny_model(Stage2Options(), seed=5)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    return folder


@pytest.fixture(scope="module")
def singlepass(tmp_path_factory):
    import torch

    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import save_singlepass
    folder = tmp_path_factory.mktemp("outputs_singlepass")
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8))
    save_singlepass(folder / "sp.safetensors", net, tasks={"desnow": 15, "raindrop": 22})
    return folder / "sp.safetensors"


def _dtpm(weights: Path, *rest: str) -> list[str]:
    return ["--base", str(weights / "base.safetensors"),
            "--adapter", str(weights / "motion.safetensors"), "--steps", "1", "-q", *rest]


def _sp(model: Path, *rest: str) -> list[str]:
    return ["--engine", "single-pass", "--model", str(model), "--task", "desnow", "-q", *rest]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith("."))


# item 1: files the tool did not write are never replaced -----------------------------------
def test_an_older_file_with_the_result_name_is_kept_and_the_new_name_said(singlepass, tmp_path,
                                                                          capsys):
    folder = tmp_path / "folder"
    photo = noise_photo(folder / "photo.png", seed=1)
    older = noise_photo(folder / "photo_restored.png", seed=2)  # e.g. from another program
    before = {p: sha256_of(p) for p in (photo, older)}
    assert main([str(photo), "-o", str(folder), *_sp(singlepass)]) == EXIT_OK
    assert {p: sha256_of(p) for p in before} == before
    out = capsys.readouterr()
    new = folder / "photo_restored-2.png"
    assert new.is_file() and read_output_marker(new) is not None
    assert str(new) in out.err and "already exists" in out.err and "kept" in out.err
    assert "1 result(s) written under another name" in out.out


@pytest.mark.parametrize("case", ["plain", "read-only", "symlinked-subfolder"])
def test_an_unrelated_file_of_the_output_name_is_kept(singlepass, tmp_path, capsys, case):
    dl, pics = tmp_path / "dl", tmp_path / "pics"
    if case == "symlinked-subfolder":
        source = noise_photo(dl / "trip" / "IMG_0001.jpg", seed=1)
        elsewhere = tmp_path / "elsewhere"
        theirs = noise_photo(elsewhere / "IMG_0001.jpg", seed=2)
        pics.mkdir()
        os.symlink(elsewhere, pics / "trip")
        inputs = [str(dl)]
        expected = pics / "trip" / "IMG_0001_restored.jpg"
    else:
        source = noise_photo(dl / "IMG_0001.jpg", seed=1)
        theirs = noise_photo(pics / "IMG_0001.jpg", seed=2)
        inputs = [str(source)]
        expected = pics / "IMG_0001_restored.jpg"
    if case == "read-only":
        theirs.chmod(0o444)
    before = sha256_of(theirs)
    assert main([*inputs, "-o", str(pics), *_sp(singlepass)]) == EXIT_OK
    assert sha256_of(theirs) == before and sha256_of(source) != before
    assert expected.is_file()
    assert str(expected) in capsys.readouterr().err


def test_on_conflict_error_refuses_before_any_work(singlepass, tmp_path, capsys, monkeypatch):
    source = noise_photo(tmp_path / "dl" / "a.png")
    theirs = noise_photo(tmp_path / "pics" / "a.png", seed=3)
    before = sha256_of(theirs)
    monkeypatch.setattr(imageio, "read_image", lambda p: pytest.fail(f"{p} was read"))
    assert main([str(source), "-o", str(tmp_path / "pics"), "--on-conflict", "error",
                 *_sp(singlepass)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(theirs) in err and "--overwrite" in err
    assert sha256_of(theirs) == before and _files(tmp_path / "pics") == ["a.png"]


def test_on_conflict_skip_restores_the_rest(singlepass, tmp_path, capsys):
    inputs = tmp_path / "dl"
    for i, name in enumerate(("a.png", "b.png")):
        noise_photo(inputs / name, seed=i)
    theirs = noise_photo(tmp_path / "pics" / "a.png", seed=3)
    before = sha256_of(theirs)
    assert main([str(inputs), "-o", str(tmp_path / "pics"), "--on-conflict", "skip",
                 *_sp(singlepass)]) == EXIT_OK
    out = capsys.readouterr()
    assert "restored 1 of 2" in out.out and "a.png" in out.err
    assert sha256_of(theirs) == before and _files(tmp_path / "pics") == ["a.png", "b.png"]


def test_overwrite_replaces_other_files_but_never_inputs_or_read_only_ones(singlepass, tmp_path,
                                                                           capsys):
    folder = tmp_path / "f"
    photo = noise_photo(folder / "a.png", seed=1)
    theirs = noise_photo(folder / "a_restored.png", seed=2)
    locked = noise_photo(tmp_path / "out" / "a.png", seed=3)
    locked.chmod(0o444)
    inputs = {photo: sha256_of(photo), locked: sha256_of(locked)}
    assert main([str(photo), "-o", str(folder), "--overwrite", *_sp(singlepass)]) == EXIT_OK
    assert read_output_marker(theirs) is not None  # replaced, as asked
    assert main([str(photo), "-o", str(tmp_path / "out"), "--overwrite",
                 *_sp(singlepass)]) == EXIT_OK
    assert {p: sha256_of(p) for p in inputs} == inputs  # the input and the read-only file
    assert (tmp_path / "out" / "a_restored.png").is_file()
    assert "read-only" in capsys.readouterr().err


def test_a_rerun_replaces_its_own_result_of_the_same_photo_only(singlepass, tmp_path):
    source = noise_photo(tmp_path / "a" / "x.png", seed=1)
    out = tmp_path / "out"
    for _ in range(2):
        assert main([str(source), "-o", str(out), *_sp(singlepass)]) == EXIT_OK
        assert _files(out) == ["x.png"]
    # another photo of the same name (the app's second batch, issue 21 item 8): kept
    other = noise_photo(tmp_path / "b" / "x.png", seed=2)
    first = sha256_of(out / "x.png")
    assert main([str(other), "-o", str(out), *_sp(singlepass)]) == EXIT_OK
    assert _files(out) == ["x.png", "x_restored.png"] and sha256_of(out / "x.png") == first


# item 3: the tool's own results are recognised from their own metadata ---------------------
@pytest.mark.parametrize("skip_existing", [False, True])
def test_glob_reruns_over_the_output_folder_restore_once(singlepass, tmp_path, capsys,
                                                         skip_existing):
    g = tmp_path / "g"
    noise_photo(g / "x.png")
    extra = ["--skip-existing"] if skip_existing else []
    restored = []
    for _ in range(3):
        glob = sorted(str(p) for p in g.glob("*.png"))  # what the shell gives
        assert main([*glob, "-o", str(g), *_sp(singlepass), *extra]) == EXIT_OK
        out = capsys.readouterr()
        restored.append(int(out.out.split("restored ")[1].split()[0]))
        assert _files(g) == ["x.png", "x_restored.png"]
    assert restored == ([1, 0, 0] if skip_existing else [1, 1, 1])
    assert "x_restored.png: a result of dtpm-restore" in out.err


def test_skip_existing_after_a_crash_before_the_list_of_results_was_updated(weights, tmp_path,
                                                                            capsys):
    g = tmp_path / "g"
    noise_photo(g / "x.png")
    assert main([str(g), "-o", str(g), *_dtpm(weights)]) == EXIT_OK
    (g / ".dtpm-restore-outputs.json").unlink()  # what a kill -9 before the update leaves
    stamp = (g / "x_restored.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main([str(g), "-o", str(g), "--skip-existing", *_dtpm(weights)]) == EXIT_OK
    assert "restored 0 of 1" in capsys.readouterr().out
    assert _files(g) == ["x.png", "x_restored.png"]
    assert (g / "x_restored.png").stat().st_mtime_ns == stamp


def test_an_edited_photo_gets_a_new_result_and_the_old_one_is_kept(singlepass, tmp_path):
    source = noise_photo(tmp_path / "x.png", seed=1)
    out = tmp_path / "out"
    assert main([str(source), "-o", str(out), *_sp(singlepass)]) == EXIT_OK
    old = sha256_of(out / "x.png")
    noise_photo(source, seed=2)  # retouched after the first run
    assert main([str(source), "-o", str(out), "--skip-existing", *_sp(singlepass)]) == EXIT_OK
    assert _files(out) == ["x.png", "x_restored.png"] and sha256_of(out / "x.png") == old


# item 4: long names, tile bound ------------------------------------------------------------
@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging (POSIX alarm; elsewhere no limit)."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_result_name_longer_than_the_file_system_allows_is_shortened(singlepass, tmp_path,
                                                                       capsys):
    folder = tmp_path / "g"
    stem = "雪" * 82  # 246 bytes: <stem>_restored.png would be 259
    source = noise_photo(folder / f"{stem}.png")
    with _deadline(20):
        plan = plan_outputs([source], folder)
    (item,) = plan.items
    assert len(item.target.name.encode()) <= 255 and item.target.suffix == ".png"
    with _deadline(60):
        assert main([str(source), "-o", str(folder), *_sp(singlepass)]) == EXIT_OK
        assert str(item.target) in capsys.readouterr().err  # says where it went
        assert main([str(source), "-o", str(folder), "--skip-existing",
                     *_sp(singlepass)]) == EXIT_OK
    assert "restored 0 of 1" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == sorted([source.name, item.target.name])


def test_the_search_for_a_free_name_is_bounded(tmp_path, monkeypatch):
    import dtpm_core.files.output_plan as output_plan
    monkeypatch.setattr(output_plan, "MAX_NAME_CANDIDATES", 5)
    source = noise_photo(tmp_path / "in" / "x.png")
    out = tmp_path / "out"
    for name in ("x.png", "x_restored.png", *(f"x_restored-{n}.png" for n in range(2, 9))):
        noise_photo(out / name, seed=9)
    with _deadline(20):
        plan = plan_outputs([source], out)
    assert plan.items == [] and "no free name" in plan.conflicts[0][1]


@pytest.mark.parametrize("tile, ok", [(1, False), (7, False), (MIN_TILE - 1, False),
                                      (MIN_TILE, True), (0, True)])
def test_tile_has_a_lower_bound(singlepass, tmp_path, capsys, tile, ok):
    source = noise_photo(tmp_path / "x.png")
    code = main([str(source), "-o", str(tmp_path / "o"), *_sp(singlepass, "--tile", str(tile))])
    assert code == (EXIT_OK if ok else EXIT_USAGE)
    if not ok:
        assert f"at least {MIN_TILE}" in capsys.readouterr().err


# item 5: memory ----------------------------------------------------------------------------
def test_an_image_too_large_for_memory_is_skipped_and_the_batch_goes_on(weights, tmp_path,
                                                                        capsys, monkeypatch):
    folder = tmp_path / "in"
    noise_photo(folder / "big.png", size=(400, 300))
    noise_photo(folder / "small.png", size=(40, 32), seed=1)
    small_need = memory_budget.estimate_bytes("dtpm", 32, 40, 512, "cpu")
    big_need = memory_budget.estimate_bytes("dtpm", 300, 400, MIN_TILE, "cpu")
    assert small_need < big_need
    monkeypatch.setattr(memory_budget, "available_memory_bytes",
                        lambda: (small_need + big_need) // 2)
    code = main([str(folder), "-o", str(tmp_path / "out"), *_dtpm(weights, "--device", "cpu")])
    out = capsys.readouterr()
    assert code == EXIT_SOME_FAILED
    assert "restored 1 of 2" in out.out
    assert "big.png: needs about" in out.err and "available" in out.err
    assert _files(tmp_path / "out") == ["small.png"]


def test_a_smaller_tile_is_used_when_it_fits(weights, tmp_path, capsys, monkeypatch):
    source = noise_photo(tmp_path / "big.png", size=(400, 300))
    at_tile = {t: memory_budget.estimate_bytes("dtpm", 300, 400, t, "cpu") for t in (256, 128)}
    assert at_tile[128] < at_tile[256]
    monkeypatch.setattr(memory_budget, "available_memory_bytes", lambda: at_tile[128] + 1)
    assert main([str(source), "-o", str(tmp_path / "out"),
                 *_dtpm(weights, "--device", "cpu", "--tile", "256")]) == EXIT_OK
    assert "tile 128" in capsys.readouterr().err
    assert _files(tmp_path / "out") == ["big.png"]


def test_a_memory_error_fails_that_file_not_the_batch(weights, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    for i in range(3):
        noise_photo(folder / f"{i}.png", seed=i)
    real_read = imageio.read_image

    def read(path):
        if Path(path).name == "1.png":
            raise MemoryError
        return real_read(path)
    monkeypatch.setattr(imageio, "read_image", read)
    code = main([str(folder), "-o", str(tmp_path / "out"), *_dtpm(weights)])
    out = capsys.readouterr()
    assert code == EXIT_SOME_FAILED and "Traceback" not in out.err
    assert "restored 2 of 3" in out.out and "1.png: out of memory" in out.err
    assert _files(tmp_path / "out") == ["0.png", "2.png"]


# item 6: skipped inputs and animations -----------------------------------------------------
def _animated(path: Path, frames: int = 3) -> Path:
    images = [Image.new("RGB", (16, 12), (40 * i, 80, 120)) for i in range(frames)]
    if path.suffix in (".tif", ".tiff"):
        images[0].save(path, save_all=True, append_images=images[1:])
    else:
        images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


@pytest.mark.parametrize("name", ["anim.webp", "anim.png", "pages.tif"])
def test_animations_and_multi_page_files_are_refused_by_name(tmp_path, name):
    path = _animated(tmp_path / name)
    with pytest.raises(ImageReadError, match=rf"{name}.*3 (frames|pages)"):
        imageio.read_image(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_skipped_inputs_make_the_exit_status_1_and_are_named(weights, tmp_path, capsys):
    folder = tmp_path / "in"
    noise_photo(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    Image.new("RGB", (8, 8)).save(folder / "anim.gif")
    _animated(folder / "anim.webp")
    odd = tmp_path / "x.png"
    odd.mkdir()  # a folder named like a photo, given on the command line
    code = main([str(folder), str(odd), "-o", str(tmp_path / "out"), *_dtpm(weights)])
    out = capsys.readouterr()
    assert code == EXIT_SOME_FAILED
    assert "restored 1 of 2" in out.out
    summary = out.err[out.err.index("not restored"):]
    for name in ("pipe.png", "anim.gif", "anim.webp", "x.png"):
        assert name in summary
    assert _files(tmp_path / "out") == ["good.png"]


# item 13: a task id wins over a folder of that name ----------------------------------------
def test_a_task_id_wins_over_a_folder_of_that_name(weights, tmp_path, monkeypatch, capsys):
    installed = Path(os.environ["DTPM_USER_MODELS"])
    for name in ("base.safetensors", "motion.safetensors"):
        (installed / name).write_bytes((weights / name).read_bytes())
    (installed / "manifest.json").write_text(json.dumps({
        "base": "base.safetensors",
        "adapters": [{"task": "motion-deblur", "file": "motion.safetensors"}]}))
    work = tmp_path / "work"
    (work / "motion-deblur").mkdir(parents=True)
    source = noise_photo(work / "x.png")
    monkeypatch.chdir(work)
    assert main([str(source), "-o", "out", "--adapter", "motion-deblur", "--steps", "1",
                 "-q"]) == EXIT_OK
    assert main([str(source), "-o", "out2", "--adapter", "./motion-deblur", "--steps", "1",
                 "-q"]) == EXIT_USAGE
    assert "is a folder" in capsys.readouterr().err


def test_read_only_check_uses_the_mode_bits(tmp_path):
    from dtpm_core.files.output_plan import is_read_only
    path = noise_photo(tmp_path / "a.png")
    assert not is_read_only(path)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    assert is_read_only(path)
