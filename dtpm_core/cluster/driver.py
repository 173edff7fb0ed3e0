"""`dtpm-restore --cluster`: one batch spread over a pool of Ray workers, with the guarantees
of a single-process run.

The CLI has already planned every output name (`dtpm_core.files.output_plan`, once, here on the
driver), checked that the output folder can be written, printed the plan's notes and built
the engine's spec; this module connects to Ray, starts the workers (each loads the engine
once), hands them the planned files, shows one progress line for the whole job and ends with
the CLI's summary and exit status plus a results table beside the outputs (`tally`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..files.atomic import TEMP_SUFFIX, remove_stale_temp_files
from ..files.batch_report import EXIT_INTERRUPTED, EXIT_USAGE
from ..files.output_plan import sweep_stale_temp_files
from .arguments import LOCAL
from .connect import ClusterError, WorkerShape, connect, disconnect, import_ray, size_workers
from .faults import KILL_DRIVER_ENV, KILL_WORKER_ENV, Faults
from .pool import MAX_WORKER_RESTARTS, Outcome, Pool
from .tally import Tally
from .worker import RestoreOne, RestoreWorker

if TYPE_CHECKING:
    from ..engines.engine import EngineSpec
    from ..files.output_plan import BatchItem, OutputPlan

SETTINGS_PREFIX = "DTPM_"
"""Environment variables with this prefix travel from the driver to the workers."""
PROBE_NAME = "dtpm-cluster-probe"
"""The driver's test file in the output folder is a hidden temporary file of this name
(`.dtpm-cluster-probe.XXXXXXXX.partial`): a worker that does not see it is on a node that
does not share the folder. A killed driver's probe is swept like any stale temporary file."""


def run_on_cluster(args: argparse.Namespace, plan: OutputPlan, spec: EngineSpec,
                   missing: list[str], restore_one: RestoreOne) -> int:
    """Restore `plan` on Ray and return dtpm-restore's exit status.

    Args:
        args: the parsed dtpm-restore options (--cluster set).
        plan: the batch's output plan, made by the CLI.
        spec: the engine spec of the options given (model files resolved).
        missing: inputs that do not exist (failures in the summary, as in a single process).
        restore_one: the CLI's per-file function, run by the workers.
    """
    tally = Tally(args, plan, missing)
    todo = tally.todo()
    if not todo:
        return tally.finish(interrupted=False)
    try:
        faults = Faults()
        import_ray()
    except (ClusterError, ConfigError) as exc:
        print(f"dtpm-restore: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started_here = False
    outdir = Path(args.output)
    probe: Path | None = None
    try:
        started_here = connect(args.cluster, _local_cpus(args))
        shape = _shape(args, spec, len(todo))
        remove_stale_temp_files(outdir / PROBE_NAME)
        probe = _write_probe(outdir)
        return _run(tally, todo, shape, replace(spec, device=shape.device), restore_one,
                    probe, faults)
    except ClusterError as exc:
        print(f"dtpm-restore: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dtpm-restore: interrupted before any image was restored", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.unlink()
        sweep_stale_temp_files(plan, outdir)  # what lost workers were writing
        disconnect(started_here)


def _run(tally: Tally, todo: list[BatchItem], shape: WorkerShape, spec: EngineSpec,
         restore_one: RestoreOne, probe: Path, faults: Faults) -> int:
    """Start the workers, restore `todo`, stop the workers; the exit status."""
    import ray
    from tqdm import tqdm

    def log(message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    remote = ray.remote(RestoreWorker).options(
        num_cpus=shape.cpus, num_gpus=shape.gpus, max_restarts=MAX_WORKER_RESTARTS,
        max_task_retries=0, scheduling_strategy="SPREAD",
        runtime_env={"env_vars": _settings_for_workers()})
    actors = [remote.remote(tally.args, tally.plan, _absolute_paths(spec), restore_one,
                            shape.cpus, os.getcwd()) for _ in range(shape.count)]
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    workers = f"{shape.describe()}, {nodes} node{'s' if nodes > 1 else ''}"
    print(f"cluster: {len(todo)} image(s) for {workers}", file=sys.stderr)
    pool = Pool(actors, str(probe), log, finished_already=finished_already)
    bar = tqdm(total=len(todo), unit="photo", desc="photos", disable=tally.args.quiet,
               dynamic_ncols=True)
    finished = 0

    def on_outcome(outcome: Outcome) -> None:
        nonlocal finished
        finished += 1
        tally.outcome(outcome, log)
        bar.update(1)
        bar.set_postfix(workers=pool.working, failed=len(tally.failures), refresh=False)

    def on_tick() -> None:
        bar.refresh()
        faults.after(finished, pool.busy)  # here every worker with work has its file

    interrupted = False
    try:
        undone = pool.run(todo, on_outcome, on_tick)
    except KeyboardInterrupt:
        interrupted, undone = True, []
    finally:
        bar.close()
        for actor in actors:
            with contextlib.suppress(Exception):  # one already gone is as good as killed
                ray.kill(actor, no_restart=True)
    if not finished and not interrupted and pool.start_errors and not pool.working:
        # no worker could start (the engine does not load, the folder is not shared): a
        # usage error found before any image, as a single-process run reports it
        print(f"dtpm-restore: {pool.start_errors[0]}", file=sys.stderr)
        return EXIT_USAGE
    tally.undone(undone)
    return tally.finish(interrupted, workers)


def finished_already(item: BatchItem) -> bool:
    """Whether a lost worker finished `item` before it was lost: the name was free when
    planned (or held another file) and now holds a result marked as this very photo's. The
    write was atomic, so that file is whole; restoring again would be refused (a result
    never replaces a file that appeared after planning) and is not needed."""
    from ..files.output_marker import file_sha256, read_output_marker

    if item.existing == "result":
        return False  # the earlier result was there before: cannot tell old from new
    try:
        marker = read_output_marker(item.target)
        return marker is not None and marker.input_sha256 == file_sha256(item.source)
    except OSError:
        return False


def _local_cpus(args: argparse.Namespace) -> int | None:
    """CPUs a local Ray offers: what the workers asked for need, else the whole machine."""
    if args.cluster != LOCAL or args.cluster_workers is None:
        return None
    return args.cluster_workers * (args.cluster_cpus_per_worker or 1)


def _shape(args: argparse.Namespace, spec: EngineSpec, todo: int) -> WorkerShape:
    import ray

    return size_workers(spec.device, args.cluster_workers, args.cluster_cpus_per_worker,
                        ray.cluster_resources(), todo)


def _settings_for_workers() -> dict[str, str]:
    """The driver's DTPM_* environment (--allow-unverified-models, offline mode, caches),
    which workers on other machines would not have otherwise."""
    return {name: value for name, value in os.environ.items()
            if name.startswith(SETTINGS_PREFIX) and name not in (KILL_WORKER_ENV,
                                                                 KILL_DRIVER_ENV)}


def _write_probe(outdir: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{PROBE_NAME}.", suffix=TEMP_SUFFIX, dir=outdir)
    os.close(fd)
    return Path(name).absolute()


def _absolute_paths(spec: EngineSpec) -> EngineSpec:
    """`spec` with its model files as absolute paths: a worker does not run in the
    driver's folder."""
    return replace(spec, **{f.name: Path(value).absolute() for f in fields(spec)
                            if isinstance(value := getattr(spec, f.name), Path)})
