"""`dtpm-restore --cluster`: the batch on a local Ray, with the guarantees of one machine
(identical bytes, nothing doubled or partial after a lost worker or a lost driver, failures
reported), plus its option checks. The Ray tests are slow (workers import torch) and share
one local Ray of 2 CPUs; they use a tiny single-pass network made here, on the torch
backend in fp32. The reference is a single-process run with one thread, as each worker has:
the torch backend's CPU kernels can change the last bit of a pixel with the thread count."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dtpm_core.cli import build_parser, main
from dtpm_core.cluster.connect import ClusterError, size_workers
from dtpm_core.cluster.driver import finished_already
from dtpm_core.cluster.faults import KILL_DRIVER_ENV, KILL_WORKER_ENV
from dtpm_core.cluster.results import RESULTS_TABLE_NAME, read_results_table
from dtpm_core.files.batch_report import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from dtpm_core.files.output_plan import BatchItem

ROOT = Path(__file__).resolve().parents[2]
# the torch backend where the CLI has a backend choice (no network conversion in a test)
BACKEND = ["--backend", "torch"] if "--backend" in build_parser().format_help() else []
PHOTOS = 12


# ------------------------------------------------------------------ without Ray


def test_cluster_options_are_checked_before_any_work(tmp_path, capsys):
    photo = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(photo)
    out = str(tmp_path / "o")
    assert main([str(photo), "-o", out, "--cluster-workers", "2"]) == EXIT_USAGE
    assert "--cluster-workers: only with --cluster" in capsys.readouterr().err
    # an input right after --cluster would be taken for the address: said, not run
    assert main(["-o", out, "--cluster", str(photo), str(photo)]) == EXIT_USAGE
    assert "not a Ray address" in capsys.readouterr().err
    assert main([str(photo), "-o", out, "--cluster", "--cluster-cpus-per-worker", "0"]) \
        == EXIT_USAGE
    assert "--cluster-cpus-per-worker must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_unreachable_cluster_is_a_usage_error_at_once(model, photos, tmp_path, capsys):
    pytest.importorskip("ray")
    code = main([str(photos / "p00.png"), "-o", str(tmp_path / "o"), *_options(model),
                 "--cluster", "127.0.0.1:1"])
    assert code == EXIT_USAGE
    assert "cannot start or reach the Ray cluster at '127.0.0.1:1'" in capsys.readouterr().err


def test_workers_are_sized_from_the_cluster():
    cpus = {"CPU": 16.0}
    assert size_workers("auto", None, 4, cpus, 100).describe() == \
        "4 workers (4 CPUs each, cpu)"
    assert size_workers("auto", None, None, cpus, 3).count == 3  # never more than photos
    gpus = size_workers("auto", None, None, {"CPU": 16.0, "GPU": 2.0}, 100)
    assert (gpus.count, gpus.gpus, gpus.device) == (2, 1, "cuda")
    assert size_workers("cpu", None, None, {"CPU": 4.0, "GPU": 2.0}, 100).gpus == 0
    with pytest.raises(ClusterError, match="offers no GPU"):
        size_workers("cuda", None, None, cpus, 10)
    with pytest.raises(ClusterError, match="lower --cluster-cpus-per-worker"):
        size_workers("cpu", None, 32, cpus, 10)


def test_without_ray_the_error_says_how_to_get_it(monkeypatch):
    """A pip install without the cluster extra, and the desktop bundle (which leaves Ray out)."""
    from dtpm_core.cluster.connect import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ClusterError, match=r'pip install "dtpm-studio\[cluster\]"') as plain:
        import_ray()
    assert "not installed" in str(plain.value)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(ClusterError, match="desktop bundle does not carry") as bundled:
        import_ray()
    assert "pip install" in str(bundled.value)


def test_help_and_the_single_process_path_never_import_ray():
    code = ("import sys\n"
            "import dtpm_core.cli as cli\n"
            "import dtpm_core.cluster.arguments, dtpm_core.cluster.driver\n"
            "cli.build_parser().format_help()\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ on a local Ray


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray of 2 CPUs for the module (the tool uses a Ray its process already
    joined); stopped at the end."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 << 20, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """12 small photos: PNG, JPEG and RGBA PNG, some in a sub-folder."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    for i in range(PHOTOS):
        rng = np.random.default_rng(i)
        pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if i < 8:
            image.save(folder / f"p{i:02d}.png")
        elif i < 10:
            image.save(folder / "sub" / f"j{i:02d}.jpg", quality=90)
        else:
            image.convert("RGBA").save(folder / "sub" / f"a{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from dtpm_core.singlepass.config import singlepass_preset
    from dtpm_core.singlepass.network import SinglePassNet
    from dtpm_core.singlepass.weights import save_singlepass

    path = tmp_path_factory.mktemp("cluster_model") / "one.safetensors"
    torch.manual_seed(0)
    save_singlepass(path, SinglePassNet(singlepass_preset("tiny", width=8)),
                    tasks={"desnow": 15})
    return path


def _options(model, *rest):
    return ["--engine", "single-pass", "--model", str(model), "--tile", "0",
            "--precision", "fp32", *BACKEND, "-q", *rest]


def _cluster(*rest):
    return ["--cluster", "--cluster-workers", "2", "--cluster-cpus-per-worker", "1", *rest]


def _cli_command(args):
    """`dtpm-restore ARGS` as a command (in a process of its own)."""
    return [sys.executable, "-c",
            f"import sys; from dtpm_core.cli import main; sys.exit(main({args!r}))"]


def _files(folder):
    """Relative path -> sha256 of every file under `folder` except the results table."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != RESULTS_TABLE_NAME}


@pytest.fixture(scope="module")
def reference(photos, model, tmp_path_factory):
    """The outputs of `DTPM_THREADS=1 dtpm-restore ...` (one process, one thread)."""
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(_cli_command([str(photos), "-o", str(out), *_options(model)]), check=True,
                   cwd=ROOT, env={**os.environ, "DTPM_THREADS": "1"}, capture_output=True)
    files = _files(out)
    assert len(files) == PHOTOS
    return files


@pytest.mark.slow
def test_cluster_outputs_are_the_single_process_bytes_and_a_rerun_restores_nothing(
        ray_local, photos, model, reference, tmp_path, capsys):
    inputs_before = _files(photos)
    out = tmp_path / "out"
    assert main([str(photos), "-o", str(out), *_options(model), *_cluster()]) == EXIT_OK
    assert _files(out) == reference  # same names, same bytes, nothing else (no .partial)
    assert _files(photos) == inputs_before
    assert f"restored {PHOTOS} of {PHOTOS} image(s)" in capsys.readouterr().out
    rows = read_results_table(out / RESULTS_TABLE_NAME)
    assert [r["status"] for r in rows] == ["restored"] * PHOTOS
    assert {r["attempts"] for r in rows} == {"1"}

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.*")}
    assert main([str(photos), "-o", str(out), *_options(model), *_cluster(),
                 "--skip-existing"]) == EXIT_OK
    assert f"restored 0 of {PHOTOS} image(s)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.*") if p.name != RESULTS_TABLE_NAME} \
        == {p: s for p, s in stamps.items() if p.name != RESULTS_TABLE_NAME}
    rows = read_results_table(out / RESULTS_TABLE_NAME)
    assert [r["status"] for r in rows] == ["skipped"] * PHOTOS


@pytest.mark.slow
def test_a_worker_killed_mid_run_has_its_photo_restored_elsewhere_once(
        ray_local, photos, model, reference, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(KILL_WORKER_ENV, "2")  # SIGKILL a busy worker after 2 photos
    out = tmp_path / "out"
    assert main([str(photos), "-o", str(out), *_options(model), *_cluster()]) == EXIT_OK
    err = capsys.readouterr().err
    assert "goes back in the queue" in err
    assert "for good" not in err and "did not come back" not in err  # Ray restarted it
    assert _files(out) == reference  # every photo once, same bytes, no partial file
    rows = read_results_table(out / RESULTS_TABLE_NAME)
    assert [r["status"] for r in rows] == ["restored"] * PHOTOS
    assert sorted(r["attempts"] for r in rows) == ["1"] * (PHOTOS - 1) + ["2"]


@pytest.mark.slow
def test_a_rerun_after_a_killed_driver_restores_only_the_missing_photos(
        photos, model, reference, tmp_path, ray_local, capsys):
    out = tmp_path / "out"
    args = [str(photos), "-o", str(out), *_options(model), *_cluster()]
    env = {**os.environ, KILL_DRIVER_ENV: "4", "OMP_NUM_THREADS": "1"}
    driver_process = subprocess.Popen(_cli_command(args), env=env, cwd=ROOT,
                                      start_new_session=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
    try:
        log, _ = driver_process.communicate(timeout=240)
    finally:  # the driver's local Ray leaves agents behind: end its session's processes
        with _suppress_lookup():
            os.killpg(driver_process.pid, signal.SIGKILL)
    assert driver_process.returncode == -signal.SIGKILL, log.decode(errors="replace")
    # a worker of the killed run may still finish the photo it held (its local Ray outlives
    # the driver for a moment): count the results once the folder has stopped changing
    finished = _settled_results(out)
    assert 4 <= len(finished) < PHOTOS

    assert main([*args, "--skip-existing"]) == EXIT_OK
    text = capsys.readouterr().out
    assert f"restored {PHOTOS - len(finished)} of {PHOTOS} image(s)" in text
    assert f"({len(finished)} already there, skipped)" in text
    assert _files(out) == reference  # the killed run's temporary files are gone too


def _settled_results(out, quiet_s=2.0, timeout_s=60.0):
    """The finished results in `out` once no file has appeared for `quiet_s` seconds."""
    import time

    def listing():
        return {name for name in _files(out) if not name.split("/")[-1].startswith(".")}
    seen, since, deadline = listing(), time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.2)
        now = listing()
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def _summary(text):
    """The summary line without the folder and the seconds."""
    line = next(line for line in text.splitlines() if line.startswith("restored "))
    return re.sub(r" into \S+ in [0-9.]+ s", "", line)


def _failure_lines(text):
    return sorted(line for line in text.splitlines() if line.startswith("  ")
                  or line.endswith(" failed:") or line.endswith("not restored:"))


@pytest.mark.slow
def test_bad_inputs_are_reported_as_a_single_process_run_reports_them(
        ray_local, photos, model, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("p00.png", "p01.png"):
        (inputs / name).write_bytes((photos / name).read_bytes())
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (inputs / "moving.gif").write_bytes(b"GIF89a")  # a type that cannot be read: skipped
    given = [str(inputs), str(tmp_path / "ghost.png")]
    assert main([*given, "-o", str(tmp_path / "one"), *_options(model)]) == EXIT_SOME_FAILED
    single = capsys.readouterr()
    out = tmp_path / "out"
    assert main([*given, "-o", str(out), *_options(model), *_cluster()]) == EXIT_SOME_FAILED
    cluster = capsys.readouterr()
    assert "restored 2 of 4 image(s)" in cluster.out
    assert "broken.png" in cluster.err and "ghost.png: no such file" in cluster.err
    # the same summary and the same list of failures as the single-process run
    assert _summary(cluster.out) == _summary(single.out)
    assert _failure_lines(cluster.err) == _failure_lines(single.err)
    statuses = {Path(r["source"]).name: r["status"]
                for r in read_results_table(out / RESULTS_TABLE_NAME)}
    assert statuses == {"p00.png": "restored", "p01.png": "restored", "broken.png": "failed",
                        "ghost.png": "missing", "moving.gif": "skipped"}


@pytest.mark.slow
def test_an_engine_that_cannot_load_is_a_usage_error_before_any_photo(
        ray_local, photos, model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(photos / "p00.png"), str(photos / "p01.png"), "-o", str(out),
                 *_options(model), *_cluster(), "--task", "raindrop"])
    assert code == EXIT_USAGE
    assert "desnow" in capsys.readouterr().err  # the message lists the tasks the file has
    assert not list(out.glob("*.png"))


def test_a_result_written_by_a_lost_worker_is_recognised(model, photos, tmp_path):
    """A worker lost between its atomic write and its report: the result is there, marked
    as this photo's, and is taken as finished (restoring again would be refused)."""
    out = tmp_path / "out"
    assert main([str(photos / "p00.png"), "-o", str(out), *_options(model)]) == EXIT_OK
    target = out / "p00.png"
    assert finished_already(BatchItem(photos / "p00.png", target))
    assert not finished_already(BatchItem(photos / "p01.png", target))  # another photo's
    assert not finished_already(BatchItem(photos / "p01.png", out / "p01.png"))  # none yet
    # an earlier result planned to be replaced: old and new cannot be told apart
    assert not finished_already(BatchItem(photos / "p00.png", target, "result"))


class _suppress_lookup:
    """Ignore ProcessLookupError: the session may have no process left."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, ProcessLookupError)
