"""`dtpm-restore` batches as a user runs them (issue 16): no input overwritten, no two inputs
sharing an output, earlier results never read back, --skip-existing finishing a killed run
exactly, special files and unreadable image types skipped, the output folder checked before
any work, Ctrl-C ending with the summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from model_factory import tiny_model
from photo_files import noise_photo, sha256_of
from PIL import Image

import dtpm_core.files.imageio as imageio
from dtpm_core.cli import main
from dtpm_core.config import Stage2Options
from dtpm_core.errors import ImageReadError
from dtpm_core.files.batch_report import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from dtpm_core.files.output_plan import plan_outputs
from dtpm_core.modelfiles.weights import save_adapter, save_base


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plan_models")
    model = tiny_model(Stage2Options(), seed=5)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    return folder


def _args(weights: Path, *rest: str) -> list[str]:
    return ["--base", str(weights / "base.safetensors"),
            "--adapter", str(weights / "motion.safetensors"), "--steps", "1", "-q", *rest]


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _alone(weights: Path, source: Path, tmp: Path, *options: str) -> str:
    """The digest of `source` restored on its own (what its output must hold)."""
    out = tmp / f"alone_{sha256_of(source)[:8]}"
    assert main([str(source), "-o", str(out), *_args(weights, *options)]) == EXIT_OK
    (result,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    return sha256_of(result)


# 1 -------------------------------------------------------------------------------------------
def test_output_folder_equal_to_the_input_folder_never_replaces_an_input(weights, tmp_path,
                                                                         capsys):
    folder = tmp_path / "photos"
    photo = noise_photo(folder / "photo.png", seed=1)
    own = noise_photo(folder / "photo_restored.png", seed=2)  # the user's own file, an input too
    before = {p: sha256_of(p) for p in (photo, own)}
    assert main([str(folder), "-o", str(folder), *_args(weights)]) == EXIT_OK
    assert {p: sha256_of(p) for p in before} == before
    out = capsys.readouterr()
    assert "restored 2 of 2" in out.out and "photo_restored.png" in out.err  # the rename noted
    results = sorted(set(_files(folder)) - {"photo.png", "photo_restored.png"})
    assert results == [".dtpm-restore-outputs.json", "photo_restored-2.png",
                       "photo_restored_restored.png"]
    assert sha256_of(folder / "photo_restored-2.png") == _alone(weights, photo, tmp_path)
    assert sha256_of(folder / "photo_restored_restored.png") == _alone(weights, own, tmp_path)
    # the results are not inputs of the next run over the same folder
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main([str(folder), "-o", str(folder), "--skip-existing", *_args(weights)]) == EXIT_OK
    assert "restored 0 of 2 image(s)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


# 2 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("names, options", [
    (("a/x.png", "b/x.png"), ()),           # same name from two folders, as file arguments
    (("x.png", "x.jpg"), ("--format", "png")),
    (("x.PNG", "x.png"), ()),
])
def test_colliding_targets_each_keep_their_own_result(weights, tmp_path, capsys, names,
                                                      options):
    inputs = tmp_path / "in"
    sources = [noise_photo(inputs / name, seed=i) for i, name in enumerate(names)]
    args = [str(s) for s in sources] if "/" in names[0] else [str(inputs)]
    out = tmp_path / "out"
    assert main([*args, "-o", str(out), *_args(weights, *options)]) == EXIT_OK
    assert "restored 2 of 2" in capsys.readouterr().out
    results = _files(out)
    assert len(results) == 2 and len({r.casefold() for r in results}) == 2
    expected = {_alone(weights, s, tmp_path, *options) for s in sources}
    assert {sha256_of(out / r) for r in results} == expected


def test_plan_claims_by_type_then_path(tmp_path):
    for name in ("x.jpg", "x.png"):
        noise_photo(tmp_path / "in" / name)
    plan = plan_outputs([tmp_path / "in"], tmp_path / "out", "png")
    assert {i.source.name: i.target.name for i in plan.items} == \
        {"x.png": "x.png", "x.jpg": "x_restored.png"}
    assert [s.name for s, _ in plan.renamed] == ["x.jpg"]


# 3 + 9 (stale temporary files) ---------------------------------------------------------------
def test_output_inside_the_input_and_skip_existing_finish_a_killed_run(weights, tmp_path,
                                                                       capsys):
    folder = tmp_path / "shoot"
    for i in range(3):
        noise_photo(folder / f"{i}.png", seed=i)
    out = folder / "restored"
    for _ in range(3):  # reruns restore the same 3 photos, never their own results
        assert main([str(folder), "-o", str(out), *_args(weights)]) == EXIT_OK
        assert "restored 3 of 3" in capsys.readouterr().out
        assert _files(out) == ["0.png", "1.png", "2.png"]
    # a kill while 1.png was being written: no result, a hidden temporary file
    (out / "1.png").unlink()
    stale = out / ".1.png.abcd1234.partial"
    stale.write_bytes(b"half a png")
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != stale.name}
    assert main([str(folder), "-o", str(out), "--skip-existing", *_args(weights)]) == EXIT_OK
    assert "restored 1 of 3 image(s)" in capsys.readouterr().out
    assert _files(out) == ["0.png", "1.png", "2.png"]  # stale temporary file swept
    assert {n: (out / n).stat().st_mtime_ns for n in stamps} == stamps


# 6 + 9 (unsupported types listed) ------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_and_device_link_named_png_are_skipped_not_read(weights, tmp_path):
    folder = tmp_path / "mixed"
    noise_photo(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    os.symlink("/dev/zero", folder / "zero.png")
    Image.new("RGB", (8, 8)).save(folder / "anim.gif")
    (folder / "notes.txt").write_text("a sidecar, passed over silently")
    # a hang or an endless read would run into the timeout
    run = subprocess.run([sys.executable, "-m", "dtpm_core.cli", str(folder), "-o",
                          str(tmp_path / "out"), *_args(weights)],
                         capture_output=True, text=True, timeout=240,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == EXIT_SOME_FAILED, run.stderr  # skipped inputs: exit 1 (issue 21)
    assert "restored 1 of 1" in run.stdout
    assert "pipe.png: it is a named pipe (FIFO), not a regular file" in run.stderr
    assert "zero.png: it is a character device, not a regular file" in run.stderr
    assert "anim.gif: unsupported image type .gif" in run.stderr
    assert "notes.txt" not in run.stderr
    assert _files(tmp_path / "out") == ["good.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_image_refuses_special_and_oversized_files(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageReadError, match="named pipe"):
        imageio.read_image(tmp_path / "pipe.png")  # returns at once, no writer needed
    os.symlink("/dev/zero", tmp_path / "zero.png")
    with pytest.raises(ImageReadError, match="character device"):
        imageio.read_image(tmp_path / "zero.png")
    big = noise_photo(tmp_path / "big.png", size=(64, 64))
    monkeypatch.setattr(imageio, "MAX_IMAGE_FILE_BYTES", big.stat().st_size - 1)
    with pytest.raises(ImageReadError, match="more than the"):
        imageio.read_image(big)


# 8 -------------------------------------------------------------------------------------------
def _no_image_may_be_read(monkeypatch):
    def refuse(path):
        raise AssertionError(f"{path} was read before the output folder was checked")
    monkeypatch.setattr(imageio, "read_image", refuse)


def test_output_folder_that_is_a_file_fails_before_any_work(weights, tmp_path, capsys,
                                                            monkeypatch):
    photo = noise_photo(tmp_path / "a.png")
    blocker = tmp_path / "results"
    blocker.write_text("a file where the output folder should go")
    _no_image_may_be_read(monkeypatch)
    assert main([str(photo), "-o", str(blocker / "sub"), *_args(weights)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot write results to" in err and "is not a folder" in err


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a read-only /sys")
def test_read_only_output_folder_fails_before_any_work(weights, tmp_path, capsys, monkeypatch):
    photo = noise_photo(tmp_path / "a.png")
    _no_image_may_be_read(monkeypatch)
    # /sys refuses new files even to root (a chmod would not stop a root test run)
    assert main([str(photo), "-o", "/sys/kernel", *_args(weights)]) == EXIT_USAGE
    assert "cannot write results to /sys/kernel" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_folder_fails_before_any_work(weights, tmp_path, capsys,
                                                        monkeypatch):
    photo = noise_photo(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    _no_image_may_be_read(monkeypatch)
    try:
        assert main([str(photo), "-o", str(locked), *_args(weights)]) == EXIT_USAGE
    finally:
        locked.chmod(0o700)
    assert "cannot write results to" in capsys.readouterr().err


# 9: Ctrl-C -----------------------------------------------------------------------------------
def test_ctrl_c_prints_the_summary_and_skip_existing_finishes(weights, tmp_path, capsys,
                                                              monkeypatch):
    folder = tmp_path / "in"
    for i in range(3):
        noise_photo(folder / f"{i}.png", seed=i)
    out = tmp_path / "out"
    real_write, calls = imageio.write_image, []

    def write_then_ctrl_c(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user presses Ctrl-C while the 2nd is written
        return real_write(*args, **kwargs)
    monkeypatch.setattr(imageio, "write_image", write_then_ctrl_c)
    assert main([str(folder), "-o", str(out), *_args(weights)]) == EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert "restored 1 of 3" in captured.out
    assert "interrupted: 2 image(s) not processed" in captured.err
    assert "Traceback" not in captured.err
    monkeypatch.setattr(imageio, "write_image", real_write)
    assert main([str(folder), "-o", str(out), "--skip-existing", *_args(weights)]) == EXIT_OK
    assert "restored 2 of 3 image(s)" in capsys.readouterr().out
    assert _files(out) == ["0.png", "1.png", "2.png"]


# the planner's invariants, over many random folders ------------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_random_batches_never_share_or_overwrite_and_plan_the_same_twice(tmp_path, seed):
    rng = np.random.default_rng(seed)
    stems = ["x", "X", "photo", "photo_restored", "photo_restored-2", "a_restored_restored"]
    suffixes = [".png", ".PNG", ".jpg", ".jpeg", ".tif", ".webp", ".bmp"]
    roots = [tmp_path / "one", tmp_path / "two"]
    for root in roots:
        root.mkdir()
    for _ in range(int(rng.integers(3, 12))):
        folder = roots[int(rng.integers(2))] / ("sub" if rng.random() < 0.3 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{rng.choice(stems)}{rng.choice(suffixes)}").write_bytes(b"")
    outdir = [tmp_path / "out", roots[0], roots[0] / "sub", roots[1] / "restored"][seed % 4]
    fmt = ["same", "png", "jpg", "tiff"][int(rng.integers(4))]
    inputs = [*roots, *[p for p in roots[1].glob("*.*")][:1]]  # a file also named directly
    plan = plan_outputs(inputs, outdir, fmt)
    sources = {p.resolve() for root in roots for p in root.rglob("*") if p.is_file()}
    if outdir not in roots:  # a folder inside an input folder holds results, not inputs
        sources = {p for p in sources if outdir.resolve() not in p.parents}
    folded_sources = {str(p).casefold() for p in sources}
    targets = [str(item.target.resolve()).casefold() for item in plan.items]
    assert len(targets) == len(set(targets))  # no two items share an output
    assert not set(targets) & folded_sources  # no output is an input
    assert {i.source.resolve() for i in plan.items} == sources  # every input planned once
    assert plan == plan_outputs(inputs, outdir, fmt)  # the same disk gives the same plan
