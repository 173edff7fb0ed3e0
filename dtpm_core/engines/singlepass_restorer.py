"""`SinglePassRestorer`: inference of the single-pass engine (DESIGN 6).

    result = clip(x - f(x, t_mat(task)), 0, 1)      one forward pass, no sampling

Large images run in the same overlapping, edge-tapered blended tiles as DTPM (DESIGN 1.5), here
with one pass per tile; an out-of-memory error retries with smaller tiles. The optional
ensemble averages the 8 flip/rotate variants of every tile, each mapped back first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backends import TORCH
from ..errors import ConfigError
from ..options import DEFAULT_TILE
from ..singlepass.config import INFERENCE_TOP_K
from ..singlepass.info import SinglePassInfo
from .inference import (
    PassCounter,
    ProgressCallback,
    StopCheck,
    check_image,
    require_finite,
    to_image,
    to_network_input,
)
from .runner import Runner, RunsOnRunner
from .tiling import TileBlender, Window, window_sizes

ENSEMBLE_SIZE = 8
"""Flip/rotate variants of the self-ensemble: 4 rotations x (no flip, flip)."""


@dataclass
class SinglePassResult:
    """`result` is an (H, W, 3) float32 array in [0, 1]."""

    result: np.ndarray
    task: str
    t_mat: int
    tile: int
    seconds: float
    notes: list[str] = field(default_factory=list)


Transform = Callable[[np.ndarray], np.ndarray]


def dihedral_transforms(count: int = ENSEMBLE_SIZE) -> list[tuple[Transform, Transform]]:
    """(forward, inverse) pairs on (B, C, H, W) arrays: rot90^k after an optional
    left-right flip, and its inverse flip(rot90^-k). The first pair is the identity."""
    pairs: list[tuple[Transform, Transform]] = []
    for flip in (False, True):
        for k in range(4):
            def forward(x: np.ndarray, k: int = k, flip: bool = flip) -> np.ndarray:
                x = x[..., ::-1] if flip else x
                return np.ascontiguousarray(np.rot90(x, k, axes=(-2, -1)))

            def inverse(y: np.ndarray, k: int = k, flip: bool = flip) -> np.ndarray:
                y = np.rot90(y, -k, axes=(-2, -1))
                return y[..., ::-1] if flip else y
            pairs.append((forward, inverse))
    return pairs[:count]


class SinglePassRestorer(RunsOnRunner):
    """Holds one single-pass network and restores any of the tasks its file lists.

    `precision` None or "auto" takes the fast path where the device has one, as `Restorer`
    does (bf16 weights converted once, channels-last, autocast; see `dtpm_core.backends.device`);
    the result leaves the network in fp32. `max_experts` (default `INFERENCE_TOP_K`) runs only
    that many MoE experts per adaptor, those the router weights most; 0 runs all of them.
    `backend` as for `Restorer`: "torch" (the default here), "openvino" or "auto". Both run
    through `self.runner` (`dtpm_core.engines.runner`)."""

    def __init__(self, path: str | Path, device: str = "auto", *, precision: str | None = None,
                 max_experts: int = INFERENCE_TOP_K, backend: str | None = TORCH) -> None:
        self.runner = Runner(device, precision, backend)
        self.max_experts = max_experts
        self.net = None  # the torch module, on the torch backend
        if self.runner.openvino is None:
            from ..singlepass.weights import load_singlepass

            net, info = load_singlepass(path)
            net.set_inference_top_k(max_experts)
            self.net = self.runner.prepare(net)
        else:
            from ..singlepass.info import read_singlepass_info

            info = read_singlepass_info(path)
        self.info: SinglePassInfo = info

    @property
    def tasks(self) -> dict[str, int]:
        """Task -> matched time step t_mat, as stored in the file."""
        return dict(self.info.tasks)

    def t_mat(self, task: str) -> int:
        if task not in self.info.tasks:
            raise ConfigError(f"task {task!r} is not in {self.info.path}; it restores "
                              f"{sorted(self.info.tasks)}")
        return self.info.tasks[task]

    def restore(self, image: np.ndarray, task: str, *, tile: int = DEFAULT_TILE,
                ensemble: bool = False, progress: ProgressCallback | None = None,
                should_stop: StopCheck | None = None) -> SinglePassResult:
        """Restore one image in one network pass per tile (8 with the ensemble).

        Args:
            image: (H, W, 3) float array in [0, 1] (the degraded photo).
            task: one of `self.tasks`; selects t_mat.
            tile: tile size in pixels (0 = whole image); halved on out-of-memory.
            ensemble: average the 8 flip/rotate variants (8x the passes).
            progress: called after every network pass.
            should_stop: polled after every pass; True raises `Cancelled`.
        """
        t_mat = self.t_mat(task)
        image = check_image(image)
        run = self.runner.run_tiled(
            lambda t: self._run(image, t_mat, t, ensemble, progress, should_stop),
            tile, image.shape[:2])
        return SinglePassResult(run.value, task, t_mat, run.tile, run.seconds, run.notes)

    def compile_ahead(self, sizes: Sequence[tuple[int, int]], *, tile: int = DEFAULT_TILE,
                      ensemble: bool = False) -> int:
        """Start compiling the network for photos of these (height, width) sizes in the
        background (OpenVINO; `Runner.compile_ahead`): call it before reading the photo."""
        if self.runner.openvino is None:
            return 0
        from ..singlepass.graph import singlepass_graph

        windows = window_sizes(sizes, tile)
        if ensemble:  # the rotated variants run transposed windows
            windows += [(w, h) for h, w in windows]
        return self.runner.compile_ahead([singlepass_graph(self.info, self.max_experts)],
                                         windows)

    def _network(self, progress: ProgressCallback | None
                 ) -> Callable[[np.ndarray, int], np.ndarray]:
        """net(x, t_mat) -> y on the chosen backend, on (1, 3, h, w) float32 arrays; a first
        use of the OpenVINO backend converts the network where no graph was shipped or cached
        (reported as the stage "converting")."""
        if self.runner.openvino is None:
            from .singlepass_torch import torch_singlepass

            return torch_singlepass(self.net, self.runner)
        from ..singlepass.graph import singlepass_graph

        (net,) = self.runner.compile_graphs([singlepass_graph(self.info, self.max_experts)],
                                            progress)
        return lambda x, t_mat: net(x=x, t=np.full((1,), t_mat, dtype=np.int64))

    def _run(self, image: np.ndarray, t_mat: int, tile: int, ensemble: bool,
             progress: ProgressCallback | None, should_stop: StopCheck | None) -> np.ndarray:
        net = self._network(progress)
        height, width = image.shape[:2]
        blender = TileBlender(height, width, tile)
        transforms = dihedral_transforms(ENSEMBLE_SIZE if ensemble else 1)
        stage = f"single pass, t={t_mat}" + (" (8-way ensemble)" if ensemble else "")
        tick = PassCounter(len(blender) * len(transforms), stage, progress, should_stop).tick

        def one_window(w: Window) -> np.ndarray:
            x = to_network_input(image[w.slices])  # (1, 3, h, w) in [-1, 1]
            acc = None
            for forward, inverse in transforms:
                y = inverse(net(forward(x), t_mat))  # y = x - f(x, t_mat), [-1, 1]
                acc = np.ascontiguousarray(y, dtype=np.float32) if acc is None \
                    else np.add(acc, y, out=acc)
                tick()
            if len(transforms) > 1:
                acc /= np.float32(len(transforms))
            return acc

        out = blender.blend(one_window, channels=3)  # (1, 3, H, W) in [-1, 1]
        require_finite(out, "single-pass result", [self.info.path])  # before the clip
        return to_image(out)  # clipped to [0, 1]
