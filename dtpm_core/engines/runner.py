"""What both restorers share around their networks (DESIGN 1.5 and 6): where and how the
networks run, and how one restore is run, retried and reported.

A `Runner` holds the device, precision and backend (resolved once), the OpenVINO session when
the networks run there, and the notes waiting for the next result (a converted graph that was
found unusable). `Restorer` and `SinglePassRestorer` keep only what is their own: their files,
their networks' calls and the maths of their results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..backends import OPENVINO, TORCH, CPUDevice, GraphSpec, resolve_backend
from ..backends.device import (
    apply_threads_to_torch,
    autocast_context,
    prepare_for_inference,
    resolve_device,
    resolve_precision,
    thread_count,
)
from .inference import ProgressCallback, RestoreProgress, run_with_tile_backoff

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..backends.graph_cache import CacheEntry
    from ..backends.openvino_backend import OpenVINOSession

T = TypeVar("T")
Module = TypeVar("Module", bound="nn.Module")


@dataclass
class TiledRun(Generic[T]):
    """One restore as `Runner.run_tiled` ran it: the job's value, the tile size that
    succeeded, the notes (graph conversions, then each out-of-memory retry) and its time."""

    value: T
    tile: int
    notes: list[str]
    seconds: float


class Runner:
    """Device, precision and backend of one restorer, and the session its graphs run in.

    `precision` None or "auto" takes the fast path where the device has one (see
    `dtpm_core.backends.device`); `backend` "torch", "openvino", "auto" or None (the process
    preference; `resolve_backend`). A
    combination the device cannot run is a `ConfigError` here, before any file is read.
    With the OpenVINO backend nothing here imports torch; `device` is then `CPUDevice()`."""

    def __init__(self, device: str = "auto", precision: str | None = None,
                 backend: str | None = TORCH) -> None:
        self.backend = resolve_backend(backend, device)
        self.openvino: OpenVINOSession | None = None
        if self.backend == OPENVINO:
            from ..backends.openvino_backend import OpenVINOSession

            self.device: torch.device | CPUDevice = CPUDevice()
            self.precision = resolve_precision(self.device, precision)
            self.openvino = OpenVINOSession(self.precision, thread_count())
        else:
            apply_threads_to_torch()
            self.device = resolve_device(device)
            self.precision = resolve_precision(self.device, precision)
            autocast_context(self.device, self.precision)  # validates the combination early
        self.notes: list[str] = []  # for the next result

    def prepare(self, module: Module, keep_fp32: Iterable[nn.Module] = ()) -> Module:
        """`module` ready for the torch backend (`prepare_for_inference`: moved, channels-last
        on the CPU, bf16 weights on the fast path, `keep_fp32` left fp32). The OpenVINO backend
        converts the fp32 modules as loaded, so there they are returned untouched."""
        if self.openvino is not None:
            return module
        return prepare_for_inference(module, self.device, self.precision, keep_fp32)

    def compile_graphs(self, specs: Sequence[GraphSpec], progress: ProgressCallback | None
                       ) -> list[Callable[..., Any]]:
        """The networks of `specs` compiled in the OpenVINO session, converted first where the
        cache has no usable graph: each conversion is reported as the stage "converting"
        (seconds, once per network), and one that replaced an unusable cache entry becomes a
        note of the next result."""
        if self.openvino is None:
            raise RuntimeError(f"compile_graphs needs the OpenVINO backend; this runner runs "
                               f"{self.backend}")
        networks = []
        for i, spec in enumerate(specs):
            def on_convert(spec: GraphSpec, i: int = i) -> None:
                if progress is not None:
                    progress(RestoreProgress(i, len(specs), "converting"))
            network, entry = self.openvino.network(spec, on_convert)
            self._note_problem(spec, entry)
            networks.append(network)
        return networks

    def _note_problem(self, spec: GraphSpec, entry: CacheEntry | None) -> None:
        """An unusable graph found on looking `spec` up, as a note of the next result."""
        if entry is not None and entry.problem:
            done = "converted again" if entry.converted else "used the cached one"
            self.notes.append(f"{spec.role} network: {entry.problem}; {done}")

    def compile_ahead(self, specs: Sequence[GraphSpec], sizes: Iterable[tuple[int, int]]
                      ) -> int:
        """Start compiling the networks of `specs` for images of these (height, width) sizes
        (a restore's windows) in the background, so that the restore finds them compiled:
        OpenVINO compiles while Python goes on (reading the photo). Nothing on the torch
        backend, nor where a network has no converted graph at hand (the restore converts
        it, with progress). Returns how many compiles started."""
        if self.openvino is None:
            return 0
        networks = []
        for spec in specs:
            found = self.openvino.network_at_hand(spec)
            if found is None:
                return 0
            self._note_problem(spec, found[1])
            networks.append(found[0])
        sizes = list(sizes)
        return sum(network.compile_ahead(sizes) for network in networks)

    def run_tiled(self, job: Callable[[int], T], tile: int, shape: tuple[int, int]
                  ) -> TiledRun[T]:
        """Run `job(tile)`, halving the tile on out-of-memory (`run_with_tile_backoff`); the
        notes gathered since the last result come first in the returned notes."""
        started = time.perf_counter()
        value, tile, notes = run_with_tile_backoff(job, tile, shape, self.device)
        notes[:0], self.notes = self.notes, []
        return TiledRun(value, tile, notes, time.perf_counter() - started)



class RunsOnRunner:
    """What a restorer says about where it runs: its runner's device, precision ("fp32",
    "bf16" or "fp16", what runs) and backend, read-only."""

    runner: Runner

    @property
    def device(self) -> torch.device | CPUDevice:
        return self.runner.device

    @property
    def precision(self) -> str:
        return self.runner.precision

    @property
    def backend(self) -> str:
        return self.runner.backend
