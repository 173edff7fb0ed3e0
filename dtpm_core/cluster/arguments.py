"""The `dtpm-restore` options of a batch on a Ray cluster, and their usage checks. Plain
argparse: `dtpm-restore --help` shows them without ray installed."""

from __future__ import annotations

import argparse
import re

LOCAL = "local"
"""`--cluster` without an address: a Ray started by the tool on this machine."""
AUTO = "auto"
"""The Ray cluster this machine belongs to (`ray start` ran here, or $RAY_ADDRESS)."""
CLUSTER_OPTIONS = ("cluster_workers", "cluster_cpus_per_worker")
"""Options that only mean something with --cluster (refused without it, never ignored)."""
_HOST_PORT = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --cluster, --cluster-workers and --cluster-cpus-per-worker to `parser`."""
    group = parser.add_argument_group(
        "batch on a Ray cluster (needs the cluster extra: pip install \"dtpm-studio[cluster]\"; "
        "inputs, outputs and model files on a folder every node mounts at the same path)")
    group.add_argument(
        "--cluster", nargs="?", const=LOCAL, metavar="ADDRESS",
        help="spread the photos over Ray workers, each holding one loaded engine: no ADDRESS "
             "starts a local Ray on this machine; 'auto' joins the cluster this machine "
             "belongs to; 'ray://HOST:PORT' (Ray client) or 'HOST:PORT' reaches another. The "
             "output names, writes and results are those of a single-process run. Give it "
             "after the inputs or as --cluster=ADDRESS, so that an input is not taken for the "
             "address")
    group.add_argument(
        "--cluster-workers", type=int, metavar="N",
        help="number of workers (default: one per GPU with --device cuda, or --device auto on "
             "a cluster with GPUs; otherwise the cluster's CPUs / --cluster-cpus-per-worker; "
             "never more than the photos to restore)")
    group.add_argument(
        "--cluster-cpus-per-worker", type=int, metavar="C",
        help="CPU cores (and threads) each worker takes (default: 1). Outputs are "
             "byte-identical to a single-process run with the same thread count "
             "(DTPM_THREADS=C dtpm-restore ...): the torch backend's CPU kernels can change "
             "the last bit of some pixels with the thread count")


def cluster_usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the cluster options of `args` (a message for the user), or None."""
    if args.cluster is None:
        given = [name for name in CLUSTER_OPTIONS if getattr(args, name) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            return f"{flags}: only with --cluster"
        return None
    address = args.cluster
    if address not in (LOCAL, AUTO) and not address.startswith("ray://") \
            and not _HOST_PORT.fullmatch(address):
        return (f"--cluster {address!r}: not a Ray address (auto, ray://HOST:PORT or "
                "HOST:PORT); if it is an input, write --cluster=ADDRESS or put --cluster after "
                "the inputs")
    for name in CLUSTER_OPTIONS:
        value = getattr(args, name)
        if value is not None and value < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {value}"
    return None
