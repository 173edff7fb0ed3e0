"""Start-up: from launch to the first restored photo, for the CLI and the app, with each
backend (issue 22, item 5), side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_startup.py [--photo FILE] [--rounds 3]

Every row is a fresh process, timed from just before it is started (wall clock), rounds
interleaved, medians reported:

- runtime imports alone (`import torch`, `import openvino`, and the OpenVINO backend module,
  which imports openvino without its model converter) and the torch-free entry points
  (`dtpm-restore --help`, the app's modules);
- `dtpm-restore PHOTO` until the restored file is written: DTPM K = 4 at strength 1 and the
  single-pass engine (task motion-deblur, `TASK`), `--backend torch` and `--backend
  openvino` (converted graphs cached by a first run that is reported on its own: the
  conversion a user pays once), and `--backend openvino` with OpenVINO's compiled graphs
  emptied before the run (`compiled_cache`: what a photo of a new size pays);
- the app (offscreen) opening PHOTO: until the window is shown, and until the first restored
  result reaches the split view (the DTPM preview at the default K, or the single-pass
  result), for both backends, and with OpenVINO's compiled graphs emptied before the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dtpm_core.backends.compiled_cache import COMPILED_FOLDER  # noqa: E402

BIN = Path(sys.executable).parent
BACKENDS = ("torch", "openvino")
ENGINES = ("dtpm", "single-pass")
TASK = "motion-deblur"
"""The app's default task; the app starts it at its recommended K = 1 and strength 0.25 (one
denoiser pass after the initial prediction; a task recommended at strength 0 would run none),
the CLI rows at K = 4 and strength 1 (four passes, as issue 22's bar)."""


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.time() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def cli_command(photo: Path, out: Path, engine: str, backend: str) -> list[str]:
    cmd = [str(BIN / "dtpm-restore"), str(photo), "-o", str(out), "--backend", backend,
           "--on-conflict", "overwrite"]
    if engine == "dtpm":
        return cmd + ["--adapter", TASK, "--steps", "4", "--strength", "1"]
    return cmd + ["--engine", "single-pass", "--task", TASK]


def app_child(args: argparse.Namespace) -> int:
    """In the measured process: open the window on `args.photo` and print, as seconds since
    `args.launched`, when it is shown and when the first restored result is displayed."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from dtpm_app.__main__ import open_window, parse_args

    app, window = open_window(parse_args([str(args.photo), "--backend", args.backend]))
    app.processEvents()
    marks = {"window": time.time() - args.launched}

    def on_display(display) -> None:
        ready = display.single_pass if args.engine == "single-pass" else display.result
        if ready is not None and "first_result" not in marks:
            marks["first_result"] = time.time() - args.launched
            app.quit()

    window.controller.displayChanged.connect(on_display)
    from PySide6.QtCore import QTimer
    QTimer.singleShot(int(args.timeout * 1000), app.quit)
    app.exec()
    window.shutdown()
    print(json.dumps(marks))
    return 0 if "first_result" in marks else 1


def app_command(photo: Path, engine: str, backend: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--app-child", "--photo", str(photo),
            "--engine", engine, "--backend", backend, "--launched", "LAUNCHED"]


def _app_timed(photo: Path, engine: str, backend: str, env: dict[str, str]
               ) -> dict[str, float]:
    cmd = app_command(photo, engine, backend)
    cmd[cmd.index("LAUNCHED")] = repr(time.time())
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the app did not show a result ({engine}, {backend}):\n"
                         f"{done.stdout[-1000:]}{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=ROOT / "resources" / "samples" / "chelsea.png")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--app-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.app_child:
        return app_child(args)
    if not args.photo.is_file():
        parser.error(f"no photo at {args.photo}")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "DTPM_GRAPH_CACHE": str(tmp / "graphs"),
               "DTPM_SETTINGS_DIR": str(tmp / "settings"), "QT_QPA_PLATFORM": "offscreen",
               "DTPM_OFFLINE": "1"}
        (tmp / "settings").mkdir()
        times: dict[str, list[float]] = {}
        compiled = tmp / "graphs" / COMPILED_FOLDER  # OpenVINO's, in the runs' graph cache
        print(f"photo {args.photo.name}; threads OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', '(all)')}; first uses of OpenVINO:")
        for engine in ENGINES:  # converts and caches the graphs: what a first use pays
            seconds, _ = _timed(cli_command(args.photo, tmp / "first", engine, "openvino"), env)
            print(f"  dtpm-restore {engine} --backend openvino, graphs converted: {seconds:.2f} s")
        for _ in range(args.rounds):
            for name, cmd in (
                    ("import torch", [sys.executable, "-c", "import torch"]),
                    ("import openvino", [sys.executable, "-c", "import openvino"]),
                    ("the OpenVINO backend module (no converter)",
                     [sys.executable, "-c", "import dtpm_core.backends.openvino_backend"]),
                    ("dtpm-restore --help", [str(BIN / "dtpm-restore"), "--help"]),
                    ("the app's modules", [sys.executable, "-c", "import dtpm_app.main_window"])):
                times.setdefault(name, []).append(_timed(cmd, env)[0])
            for engine in ENGINES:
                for backend, cold in (*((b, False) for b in BACKENDS), ("openvino", True)):
                    label = f"{backend}, nothing compiled yet" if cold else backend
                    out = tmp / f"{engine}-{backend}"
                    if cold:  # OpenVINO's compiled graphs emptied: compiled in the run
                        shutil.rmtree(compiled, ignore_errors=True)
                    seconds, _ = _timed(cli_command(args.photo, out, engine, backend), env)
                    times.setdefault(f"dtpm-restore {engine}, {label}", []).append(seconds)
                    settings = {"engine": engine, "task": TASK, "backend": backend}
                    (tmp / "settings" / "settings.json").write_text(json.dumps(settings))
                    if cold:
                        shutil.rmtree(compiled, ignore_errors=True)
                    marks = _app_timed(args.photo, engine, backend, env)
                    times.setdefault(f"app {engine}, {label}: window",
                                     []).append(marks["window"])
                    times.setdefault(f"app {engine}, {label}: first result",
                                     []).append(marks["first_result"])
        width = max(len(name) for name in times)
        print(f"\n{'from launch to':<{width}}  median s  (rounds)")
        for name, values in times.items():
            print(f"{name:<{width}}  {statistics.median(values):8.2f}  "
                  f"({', '.join(f'{v:.2f}' for v in values)})")
        for engine in ENGINES:
            torch_s = statistics.median(times[f"dtpm-restore {engine}, torch"])
            ov_s = statistics.median(times[f"dtpm-restore {engine}, openvino"])
            print(f"dtpm-restore {engine}: openvino / torch = {ov_s / torch_s:.2f}x the time")
        for name in ("dtpm-restore {}", "app {}: first result"):
            for engine in ENGINES:
                kept = statistics.median(times[name.format(f"{engine}, openvino")])
                cold = statistics.median(
                    times[name.format(f"{engine}, openvino, nothing compiled yet")])
                print(f"{name.format(engine)}, openvino: compiled graphs read back / compiled "
                      f"in the run = {kept / cold:.2f}x the time ({cold - kept:+.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
