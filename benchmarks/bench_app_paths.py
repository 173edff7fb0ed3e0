"""The same speed everywhere: one image through the CLI, the app's interactive worker and the
app's batch worker, for both engines, side by side in one run.

    python benchmarks/bench_app_paths.py [--preset tiny] [--size 512] [--repeats 3]

Each path loads its engine the way it does in use (`dtpm_core.cli._load_engine`,
`InferenceWorker` jobs `LoadEngine` / `SwitchAdapter` / `Restore` of dtpm_app.jobs,
`batch_worker.load_batch_engine`) with random-weight models, and restores the
same photo at the default tile (512); times are medians of interleaved rounds. All of them
build their restorers without a precision or thread count of their own, so they share the
process's (`dtpm_core.backends.device`): the bar is every path within 20% of the CLI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cpu_path import make_models, photo  # noqa: E402

BAR = 1.20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()
    import torch

    from dtpm_app.batch_worker import BatchModels, BatchSettings, load_batch_engine
    from dtpm_app.jobs import Job, LoadEngine, Restore, ResultKey, SwitchAdapter
    from dtpm_app.workers import InferenceWorker
    from dtpm_core.cli import _load_engine, build_parser
    from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec

    image = photo(args.size)
    task = "desnow"
    with tempfile.TemporaryDirectory() as tmp:
        base, adapter, fast = make_models(Path(tmp), args.preset)
        worker = InferenceWorker()
        base_spec = DTPMSpec(base, device="cpu", precision=None)  # as the app loads them
        fast_spec = SinglePassSpec(fast, device="cpu", precision=None)
        dtpm_spec = replace(base_spec, adapter=adapter, steps=(args.k,))
        for n, request in enumerate((LoadEngine(base_spec), SwitchAdapter(dtpm_spec),
                                     LoadEngine(fast_spec))):
            worker._dispatch(Job(n, request))

        def cli(engine: str):
            extra = ["--engine", "single-pass", "--model", str(fast), "--task", task] \
                if engine == "fast" else ["--base", str(base), "--adapter", str(adapter),
                                          "--steps", str(args.k)]
            engine = _load_engine(build_parser().parse_args(["x", "-o", tmp, *extra]))
            return lambda: engine.restore(image)

        def batch(engine: str):
            models = BatchModels("single-pass", task, singlepass=fast) if engine == "fast" \
                else BatchModels("dtpm", "motion-deblur", base=base, adapter=adapter)
            loaded = load_batch_engine(BatchSettings(models, "cpu", args.k, 0, 512, "png8", 92))
            return lambda: loaded.restore(image, should_stop=lambda: False)

        runs = {
            ("DTPM", "CLI"): cli("dtpm"),
            ("DTPM", "app interactive"): lambda: worker._dispatch(
                Job(9, Restore(ResultKey(0, "dtpm", "b", "", 512, args.k), image, dtpm_spec))),
            ("DTPM", "app batch"): batch("dtpm"),
            ("Single-pass", "CLI"): cli("fast"),
            ("Single-pass", "app interactive"): lambda: worker._dispatch(
                Job(9, Restore(ResultKey(0, "single-pass", "f", task, 512), image,
                               replace(fast_spec, task=task)))),
            ("Single-pass", "app batch"): batch("fast"),
        }
        times = {key: [] for key in runs}
        for round_ in range(args.repeats + 1):  # round 0 warms up
            for key, run in runs.items():
                start = time.perf_counter()
                run()
                if round_:
                    times[key].append(time.perf_counter() - start)
    mp = args.size ** 2 / 1e6
    print(f"# {args.preset}, {args.size}x{args.size}, tile 512, DTPM K={args.k}; "
          f"{torch.get_num_threads()} thread(s); precision of the app worker's restorers: "
          f"{worker.engines['dtpm'].precision} / {worker.engines['single-pass'].precision}")
    print("| engine | path | s/MP | vs CLI |")
    print("|---|---|---|---|")
    worst = 1.0
    for (engine, path), values in times.items():
        seconds = statistics.median(values)
        cli_s = statistics.median(times[(engine, "CLI")])
        worst = max(worst, seconds / cli_s, cli_s / seconds)
        print(f"| {engine} | {path} | {seconds / mp:.2f} | {seconds / cli_s:.2f}x |")
    print(f"largest spread between paths: {worst:.2f}x "
          f"({'within' if worst <= BAR else 'OUTSIDE'} the {BAR:.2f}x bar)")


if __name__ == "__main__":
    main()
