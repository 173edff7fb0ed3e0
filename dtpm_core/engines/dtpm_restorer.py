"""`Restorer`: the one inference path of the app, the CLI and the benchmarks (DESIGN 1.5).

    y_eps  = P(y_d)                                       the initial prediction (structure)
    x0_hat = s * DDIM_K(eps_theta(. | y_d, y_eps, code))  the texture residual, K steps from t_s
    result = y_eps + strength * x0_hat                    (texture colour "rgb", the paper's)
    result = y_eps + strength * grey(x0_hat)              ("luminance", the default: every
                                                           channel gets the residual's luma)

s (residual scale), t_s (start level) and the x0 clamp come from the model file's calibration
(`dtpm_core.diffusion.calibration`): the adapter's when one is loaded, else the base's.

Large images run in overlapping tiles fused at every denoising step; an out-of-memory error
retries with smaller tiles. The semantic code comes from the whole (downscaled) image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..backends import TORCH
from ..diffusion.calibration import Calibration
from ..diffusion.ddim import sample_ddim
from ..diffusion.noise import TorchCompatibleNormal
from ..diffusion.schedule import alpha_bars, sampling_timesteps
from ..errors import ConfigError
from ..modelfiles.verified import AdapterInfo, BaseInfo
from ..options import (
    DEFAULT_TEXTURE_COLOUR,
    DEFAULT_TILE,
    MAX_SAMPLING_STEPS,
    MAX_STRENGTH,
    TEXTURE_COLOURS,
)
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
    `self.runner` (`dtpm_core.engines.runner`), as the single-pass engine's restorer does;
    `self.networks` holds the networks (`dtpm_torch` as torch modules, `dtpm_graphs` as
    graphs, without torch). The sampling loop, tiles and noise are numpy, shared by both."""

    def __init__(self, base: str | Path, adapter: str | Path | None = None, *,
                 device: str = "auto", precision: str | None = None,
                 backend: str | None = TORCH) -> None:
        self.runner = Runner(device, precision, backend)
        if self.runner.openvino is None:
            from .dtpm_torch import TorchDTPMNetworks

            self.networks: TorchDTPMNetworks | GraphDTPMNetworks = \
                TorchDTPMNetworks(base, self.runner)
        else:
            from .dtpm_graphs import GraphDTPMNetworks

            self.networks = GraphDTPMNetworks(base, self.runner)
        self._alpha_bar = alpha_bars(self.base_info.config.diffusion)
        self._start_step: int | None = None  # set_start_step: an experiment's t_s
        if adapter is not None:
            self.load_adapter(adapter)

    @property
    def base_info(self) -> BaseInfo:
        return self.networks.base_info

    @property
    def adapter_info(self) -> AdapterInfo | None:
        return self.networks.task_info

    @property
    def info(self) -> BaseInfo:
        return self.base_info

    def load_adapter(self, path: str | Path) -> AdapterInfo:
        """Switch task: load and verify an adapter file for the loaded base."""
        return self.networks.load_adapter(path)

    @property
    def calibration(self) -> Calibration:
        """The sampling calibration in use: the adapter's when one is loaded, else the base's,
        with the start level of `set_start_step` when one is set."""
        task = self.adapter_info
        calibration = task.calibration if task is not None else self.base_info.calibration
        if self._start_step is None:
            return calibration
        return replace(calibration, start_step=self._start_step,
                       note=f"start level t_s = {self._start_step} set for this run (the "
                            f"file's: {calibration.start_step}); {calibration.note}")

    def set_start_step(self, start_step: int | None) -> None:
        """Sample from `start_step` instead of the file's measured t_s (an experiment, e.g.
        `dtpm-train eval --start-step`); None goes back to the file's.

        Raises:
            ConfigError: a start level outside 1..T.
        """
        steps = self.base_info.config.diffusion.num_steps
        if start_step is not None and not 1 <= start_step <= steps:
            raise ConfigError(f"the start level t_s must be in 1..{steps}, got {start_step}")
        self._start_step = start_step

    def unload_adapter(self) -> None:
        """Back to the plain base (its output is then only meaningful for Stage I inputs)."""
        self.networks.unload_adapter()

    def restore(self, image: np.ndarray, steps: int | Sequence[int] = 4, *, seed: int = 0,
                eta: float = 0.0, tile: int = DEFAULT_TILE, strength: float = 1.0,
                texture_colour: str = DEFAULT_TEXTURE_COLOUR,
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
            texture_colour: "luminance" adds the texture's brightness only (the initial
                prediction's colours kept: no coloured specks), "rgb" every channel's own
                (`dtpm_core.options.TEXTURE_COLOURS`).
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
        if texture_colour not in TEXTURE_COLOURS:
            raise ConfigError(f"texture colour must be one of {', '.join(TEXTURE_COLOURS)}, "
                              f"got {texture_colour!r}")
        image = check_image(image)
        grey = texture_colour == "luminance"
        run = self.runner.run_tiled(
            lambda t: self._run(image, ks, seed, eta, t, strength, grey, progress, should_stop),
            tile, image.shape[:2])
        initial, results = run.value
        return RestoreResult(initial, results, seed, run.tile, run.seconds, run.notes)

    def compile_ahead(self, sizes: Sequence[tuple[int, int]], *, tile: int = DEFAULT_TILE,
                      strength: float = 1.0) -> int:
        """Start compiling the networks for photos of these (height, width) sizes in the
        background (OpenVINO, `Runner.compile_ahead`; the denoiser only where `strength` lets
        it run): call it before reading the photo. Returns how many compiles started."""
        if self.runner.openvino is None:
            return 0
        return self.networks.compile_ahead(window_sizes(sizes, tile), strength != 0.0)

    def _require_finite(self, array: np.ndarray, what: str) -> None:
        task = self.adapter_info
        files = [self.base_info.path] + ([task.path] if task is not None else [])
        require_finite(array, what, files)

    def _run(self, image: np.ndarray, ks: list[int], seed: int, eta: float, tile: int,
             strength: float, grey: bool, progress: ProgressCallback | None,
             should_stop: StopCheck | None) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        height, width = image.shape[:2]
        calls = self.networks.calls(progress)
        blender = TileBlender(height, width, tile)
        passes = PassCounter(len(blender) * (1 + sum(ks) * (strength != 0.0)),
                             "initial prediction", progress, should_stop)
        tick = passes.tick

        # the degraded image y_d stays in its (H, W, 3) [0, 1] array; each window converts
        # its own crop to (1, 3, h, w) in [-1, 1]
        def y_d(w: Window) -> np.ndarray:
            return to_network_input(image[w.slices])

        if calls.predict is not None:
            y_eps = blender.blend(lambda w: calls.predict(y_d(w)), channels=3, on_window=tick)
            self._require_finite(y_eps, "initial prediction")
        else:
            y_eps = y_d(Window(0, height, 0, width))  # no predictor: y_eps = y_d
            passes.done += len(blender)
        if strength == 0.0:  # result = y_eps + 0 * x0_hat: no DDIM pass can change it
            return to_image(y_eps), {k: to_image(y_eps) for k in ks}
        code = calls.semantic(y_eps) if calls.semantic is not None else None

        def denoise(x_t: np.ndarray, sqrt_gamma: float) -> np.ndarray:
            def one_window(w: Window) -> np.ndarray:
                index = (..., *w.slices)
                return calls.denoise(x_t[index], y_d(w), sqrt_gamma, code,
                                     y_eps[index] if calls.guided else None)
            eps_hat = blender.blend(one_window, channels=3, on_window=tick)
            self._require_finite(eps_hat, "noise prediction")
            return eps_hat

        calibration = self.calibration
        diffusion = self.base_info.config.diffusion
        start = min(calibration.start_step, diffusion.num_steps)
        start_sigma = (1.0 - float(self._alpha_bar[start])) ** 0.5  # sqrt(1 - alpha_bar_ts)
        texture_gain = np.float32(strength * calibration.residual_scale)  # x0 = s * sample
        results: dict[int, np.ndarray] = {}
        for k in ks:
            passes.stage = f"K={k}: step 1/{k}"

            def on_step(p, k=k) -> None:
                passes.stage = f"K={k}: step {min(p.step + 1, k)}/{k}"

            # the noise torch.randn draws from torch.Generator().manual_seed(seed), so that a
            # seed gives the same result on every backend (and as before the numpy sampler)
            noise = TorchCompatibleNormal(seed)
            # x_ts = sqrt(1 - alpha_bar_ts) z, handed over without a reference kept here, so
            # that the sampler can free it after the first step
            x0 = sample_ddim(denoise, _scaled(noise.normal((1, 3, height, width)), start_sigma),
                             sampling_timesteps(k, diffusion, start), self._alpha_bar, eta=eta,
                             noise=noise, callback=on_step, should_stop=should_stop,
                             clip_x0=calibration.x0_clip)
            x0 *= texture_gain
            if grey:
                _keep_luminance(x0)
            x0 += y_eps
            results[k] = to_image(x0)
            del x0
        return to_image(y_eps), results


LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
"""ITU-R BT.601 luma of (R, G, B), the standard the coloured-speck measure's Cb and Cr come from
(`dtpm_core.evaluation.texture_metrics`); adding one value to all three channels leaves them
unchanged."""


def _keep_luminance(texture: np.ndarray) -> None:
    """Replace every channel of a (1, 3, H, W) texture layer by its luma, in place: added to an
    image, it changes each pixel's brightness and leaves its chroma (Cb, Cr) as it was."""
    luma = np.tensordot(LUMA_WEIGHTS, texture[0], axes=1)  # (H, W)
    texture[0] = luma[None]


def _scaled(x: np.ndarray, factor: float) -> np.ndarray:
    x *= np.float32(factor)
    return x
