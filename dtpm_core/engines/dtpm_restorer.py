"""`Restorer`: the one inference path of the app, the CLI and the benchmarks (DESIGN 1.5).

    y_eps  = P(y_d)                                       the initial prediction (structure)
    x0_hat = s * DDIM_K(eps_theta(. | y_d, y_eps, code))  the texture residual, K steps from t_s
    result = y_eps + strength * x0_hat

s (residual scale), t_s (start level) and the x0 clamp come from the model file's calibration
(`dtpm_core.diffusion.calibration`): the adapter's when one is loaded, else the base's.

Large images run in overlapping tiles fused at every denoising step; an out-of-memory error
retries with smaller tiles. The semantic code comes from the whole (downscaled) image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..backends import TORCH
from ..backends.torch_backend import torch_denoiser, torch_network
from ..diffusion.calibration import Calibration
from ..diffusion.ddim import sample_ddim
from ..diffusion.schedule import alpha_bars, sampling_timesteps
from ..errors import ConfigError
from ..modelfiles.weights import AdapterInfo, BaseInfo, TaskParts, load_adapter, load_base
from ..options import DEFAULT_TILE, MAX_SAMPLING_STEPS, MAX_STRENGTH
from .inference import (
    PassCounter,
    ProgressCallback,
    StopCheck,
    check_image,
    require_finite,
    to_image,
)
from .runner import Runner, RunsOnRunner
from .tiling import TileBlender, Window


@dataclass
class RestoreResult:
    """Images are (H, W, 3) float32 arrays in [0, 1]."""

    initial: np.ndarray
    results: dict[int, np.ndarray]
    seed: int
    tile: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def result(self) -> np.ndarray:
        """The result for the last K asked for."""
        return self.results[next(reversed(self.results))]


class Restorer(RunsOnRunner):
    """Holds one base model and, switchable without reloading the base, one task adapter.

    `precision` None or "auto" takes the fast path where the device has one (bf16 weights,
    converted once, on a CPU with native bf16; see `dtpm_core.backends.device`); `self.precision` is
    what runs ("fp32", "bf16" or "fp16"). The epsilon output, the DDIM update and the image
    conversion stay fp32 at every precision.

    `backend` runs the networks: "torch" (the default here), "openvino" (CPU; the networks
    converted once and cached, `dtpm_core.backends`), "auto" (OpenVINO where it was measured
    faster) or None (the process preference; the engine specs' default). Both run through
    `self.runner` (`dtpm_core.engines.runner`), as the single-pass engine's restorer does."""

    def __init__(self, base: str | Path, adapter: str | Path | None = None, *,
                 device: str = "auto", precision: str | None = None,
                 backend: str | None = TORCH) -> None:
        self.runner = Runner(device, precision, backend)
        model, self.base_info = load_base(base)
        self.model = model.to(self.device)
        # the ending convolution stays fp32: eps_hat leaves the denoiser in fp32
        self.runner.prepare(model.denoiser, keep_fp32=[model.denoiser.ending])
        self.task: TaskParts | None = None
        self._alpha_bar = alpha_bars(self.base_info.config.diffusion)
        if adapter is not None:
            self.load_adapter(adapter)

    @property
    def adapter_info(self) -> AdapterInfo | None:
        return self.task.info if self.task is not None else None

    @property
    def info(self) -> BaseInfo:
        return self.base_info

    def load_adapter(self, path: str | Path) -> AdapterInfo:
        """Switch task: load and verify an adapter file for the loaded base."""
        parts = load_adapter(path, self.model, self.base_info)
        if self.runner.openvino is not None:  # converted as loaded (fp32)
            self.task = parts
            return parts.info
        self.runner.prepare(parts)
        # ablation files replace denoiser weights: give them the loaded denoiser's dtype and
        # layout, so that the pass runs as with the base's own weights
        params = dict(self.model.denoiser.named_parameters())
        parts.denoiser_overrides = {
            k: v.to(self.device, params[k].dtype).contiguous(
                memory_format=torch.channels_last if v.dim() == 4 and self.device.type == "cpu"
                else torch.contiguous_format)
            for k, v in parts.denoiser_overrides.items()}
        self.task = parts
        return parts.info

    @property
    def calibration(self) -> Calibration:
        """The sampling calibration in use: the adapter's when one is loaded, else the base's."""
        return self.task.info.calibration if self.task is not None else \
            self.base_info.calibration

    def unload_adapter(self) -> None:
        """Back to the plain base (its output is then only meaningful for Stage I inputs)."""
        self.task = None

    def restore(self, image: np.ndarray, steps: int | Sequence[int] = 4, *, seed: int = 0,
                eta: float = 0.0, tile: int = DEFAULT_TILE, strength: float = 1.0,
                progress: ProgressCallback | None = None,
                should_stop: StopCheck | None = None) -> RestoreResult:
        """Restore one image.

        Args:
            image: (H, W, 3) float array in [0, 1] (the degraded photo).
            steps: K, or several K for the trade-off curve (one DDIM run each, same noise).
            seed: seeds the starting noise (and eta > 0 noise): same inputs, same bytes.
            eta: DDIM stochasticity, 0 = deterministic.
            tile: tile size in pixels (0 = whole image); halved on out-of-memory.
            strength: scale of the generated texture layer (0 = the initial prediction,
                1 = as trained, up to MAX_STRENGTH).
            progress: called after every network pass.
            should_stop: polled between passes; True raises `Cancelled`.
        """
        ks = [steps] if isinstance(steps, int) else list(steps)
        if not ks:
            raise ConfigError("restore needs at least one step count")
        for k in ks:
            if not 1 <= k <= MAX_SAMPLING_STEPS:
                raise ConfigError(f"steps must be between 1 and {MAX_SAMPLING_STEPS}, got {k}")
        start = self.calibration.start_step
        if max(ks) > start:
            raise ConfigError(f"this model starts sampling at t = {start}, so it takes at most "
                              f"{start} steps; got K = {max(ks)}")
        if not 0.0 <= strength <= MAX_STRENGTH:
            raise ConfigError(f"texture strength must be between 0 and {MAX_STRENGTH}, "
                              f"got {strength}")
        image = check_image(image)
        run = self.runner.run_tiled(
            lambda t: self._run(image, ks, seed, eta, t, strength, progress, should_stop),
            tile, image.shape[:2])
        initial, results = run.value
        return RestoreResult(initial, results, seed, run.tile, run.seconds, run.notes)

    def _require_finite(self, tensor: torch.Tensor, what: str) -> None:
        files = [self.base_info.path] + ([self.task.info.path] if self.task is not None else [])
        require_finite(tensor, what, files)

    def _networks(self, progress: ProgressCallback | None
                  ) -> tuple[Callable[..., torch.Tensor] | None, Callable[..., torch.Tensor]]:
        """(predict(y_d) -> y_eps, or None without a predictor; denoise(x_t, y_d, sqrt_gamma,
        semantic_code, guidance) -> eps_hat) on the chosen backend. A first use of the
        OpenVINO backend converts the networks (reported as the stage "converting")."""
        task = self.task
        if self.runner.openvino is None:
            predictor = None
            if task is not None and task.predictor is not None:
                predictor = torch_network(task.predictor, self.device, self.precision)
            return predictor, torch_denoiser(
                self.model.denoiser, task.adapters if task is not None else None,
                task.denoiser_overrides if task is not None else {}, self.device,
                self.precision)
        from ..backends.graphs import denoiser_graph, predictor_graph

        specs = [denoiser_graph(self.model, self.base_info, task)]
        if task is not None and task.predictor is not None:
            specs.append(predictor_graph(task))
        nets = self.runner.compile_graphs(specs, progress)
        denoise_net = nets[0]

        def denoise(x_t, y_d, sqrt_gamma, semantic_code, guidance) -> torch.Tensor:
            return denoise_net(x_t=x_t, y_d=y_d, sqrt_gamma=sqrt_gamma,
                               semantic_code=semantic_code, guidance=guidance)
        predict = (lambda y_d, net=nets[1]: net(y_d=y_d)) if len(nets) > 1 else None
        return predict, denoise

    @torch.no_grad()
    def _run(self, image: np.ndarray, ks: list[int], seed: int, eta: float, tile: int,
             strength: float, progress: ProgressCallback | None, should_stop: StopCheck | None
             ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        model, task, device = self.model, self.task, self.device
        height, width = image.shape[:2]
        predictor, denoiser = self._networks(progress)
        blender = TileBlender(height, width, tile, device)
        passes = PassCounter(len(blender) * (1 + sum(ks) * (strength != 0.0)),
                             "initial prediction", progress, should_stop)
        tick = passes.tick

        # the degraded image y_d stays in its (H, W, 3) [0, 1] array (no copy on the CPU);
        # each window converts its own crop to (1, 3, h, w) in [-1, 1]
        source = torch.from_numpy(image).to(device)

        def y_d(w: Window) -> torch.Tensor:
            return source[w.slices].permute(2, 0, 1)[None].mul(2.0).sub_(1.0)

        if predictor is not None:
            y_eps = blender.blend(lambda w: predictor(y_d(w)), channels=3, on_window=tick)
            self._require_finite(y_eps, "initial prediction")
        else:
            y_eps = y_d(Window(0, height, 0, width))  # no predictor: y_eps = y_d
            passes.done += len(blender)
        if strength == 0.0:  # result = y_eps + 0 * x0_hat: no DDIM pass can change it
            return to_image(y_eps), {k: to_image(y_eps) for k in ks}
        semantic = None
        if model.semantic is not None:  # the encoder sees the whole image, downscaled
            semantic = model.semantic_code(_downscale_for_semantics(y_eps).add_(1.0).mul_(0.5))
        guided = task is not None and task.adapters is not None

        def denoise(x_t: torch.Tensor, sqrt_gamma: float) -> torch.Tensor:
            level = torch.full((1,), sqrt_gamma, device=device)

            def one_window(w: Window) -> torch.Tensor:
                index = (..., *w.slices)
                return denoiser(x_t[index], y_d(w), level, semantic,
                                y_eps[index] if guided else None)
            eps_hat = blender.blend(one_window, channels=3, on_window=tick)
            self._require_finite(eps_hat, "noise prediction")
            return eps_hat

        calibration = self.calibration
        start = min(calibration.start_step, model.config.diffusion.num_steps)
        start_sigma = (1.0 - float(self._alpha_bar[start])) ** 0.5  # sqrt(1 - alpha_bar_ts)
        texture_gain = strength * calibration.residual_scale  # x0 = s * (scaled sample)
        results: dict[int, np.ndarray] = {}
        for k in ks:
            passes.stage = f"K={k}: step 1/{k}"

            def on_step(p, k=k) -> None:
                passes.stage = f"K={k}: step {min(p.step + 1, k)}/{k}"

            generator = torch.Generator().manual_seed(seed)
            # x_ts = sqrt(1 - alpha_bar_ts) z; handed over without a reference kept here, so
            # that the sampler can free it after the first step
            x0 = sample_ddim(denoise,
                             torch.randn((1, 3, height, width), generator=generator)
                             .mul_(start_sigma).to(device),
                             sampling_timesteps(k, model.config.diffusion, start),
                             self._alpha_bar, eta=eta, generator=generator, callback=on_step,
                             should_stop=should_stop, clip_x0=calibration.x0_clip)
            results[k] = to_image(x0.mul_(texture_gain).add_(y_eps))
            del x0
        return to_image(y_eps), results


def _downscale_for_semantics(y_eps: torch.Tensor) -> torch.Tensor:
    """A small copy of the whole image for the semantic encoder (which resizes to 224 px
    anyway); avoids image-sized temporaries for large photos."""
    from torch.nn import functional as F

    from ..networks.semantic import SEMANTIC_INPUT_SIZE
    return F.interpolate(y_eps.float(), size=(SEMANTIC_INPUT_SIZE,) * 2, mode="bilinear",
                         antialias=True, align_corners=False)
