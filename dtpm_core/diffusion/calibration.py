"""Per-model sampling calibration (DESIGN 1.1): the residual scale s, the start level t_s and
the x0 clamp, measured by the trainer and stored in every weight file.

Symbols:
    s        residual_scale   the diffusion runs on x0 / s, so that x0 has about unit RMS
    t_s      start_step       DDIM starts here with noise sqrt(1 - alpha_bar_ts) z
    c        x0_clip          |x0_hat / s| <= c at every DDIM step

Why: the texture residual has an RMS of 0.06-0.15 in [-1, 1] units while the schedule assumes
unit variance (so most training draws of t carried no signal), and at t = T the x0 estimate
multiplies the noise-prediction error by 1 / sqrt(alpha_bar_T) ~ 157 (so K = 1 from T is
noise). `choose_start_step` picks the largest t at which the trained denoiser's x0 estimate
beats predicting zero, on validation data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ..errors import ConfigError

LEGACY_START_STEP = 250
"""t_s for files written before calibration existed: measured on the first shipped models
(the x0 error of their denoisers is below the residual's RMS from t = 250 down)."""
LEGACY_X0_CLIP = 2.0
"""|x0| <= 2 for a residual of two images in [-1, 1]: the old files' bound."""
CLIP_RMS_MULTIPLE = 4.0
"""The clamp of a calibrated model: this many times the residual's RMS (its 99.9th
percentile when that is larger)."""
START_ERROR_RATIO = 0.9
"""t_s is the largest t whose x0 error is at most this fraction of the error of predicting
zero, i.e. where the denoiser clearly adds information."""


@dataclass(frozen=True)
class Calibration:
    """How a model samples; stored as JSON under the `calibration` metadata key."""

    residual_scale: float = 1.0  # s
    start_step: int = LEGACY_START_STEP  # t_s
    x0_clip: float = LEGACY_X0_CLIP  # c, in units of the scaled residual
    note: str = "default for files without calibration"

    def __post_init__(self) -> None:
        if not self.residual_scale > 0.0:
            raise ConfigError(f"calibration.residual_scale must be > 0, got {self.residual_scale}")
        if self.start_step < 1:
            raise ConfigError(f"calibration.start_step must be >= 1, got {self.start_step}")
        if not self.x0_clip > 0.0:
            raise ConfigError(f"calibration.x0_clip must be > 0, got {self.x0_clip}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], where: str) -> Calibration:
        """Read the `calibration` key of a weight file's metadata; absent -> the default."""
        text = metadata.get("calibration")
        if text is None:
            return cls()
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in ("residual_scale", "start_step", "x0_clip",
                                                 "note") if k in data})
        except (json.JSONDecodeError, TypeError, ConfigError) as exc:
            raise ConfigError(f"{where}: unreadable calibration metadata {text!r}: {exc}") \
                from exc


def residual_clip(rms: float, p999: float) -> float:
    """The x0 clamp in scaled units from the scaled residual's RMS and 99.9th percentile."""
    return max(CLIP_RMS_MULTIPLE * rms, p999)


def choose_start_step(steps: Sequence[int], x0_error: Sequence[float], zero_error: float,
                      num_steps: int, min_step: int = 50) -> int:
    """The largest t in `steps` whose x0 error is <= START_ERROR_RATIO * zero_error, counting
    only t below the first one that fails (so a noisy blip at high t cannot pick it).

    Args:
        steps: increasing training steps at which the error was measured.
        x0_error: RMS error of the denoiser's x0 estimate at each of them.
        zero_error: RMS of the residual itself (the error of predicting zero).
        num_steps: T, the answer's upper bound.
        min_step: the answer's lower bound (the largest K the product offers, so that
            every K has distinct steps).
    """
    if len(steps) != len(x0_error) or not steps:
        raise ConfigError("choose_start_step needs one error per step")
    chosen = steps[0]
    for t, err in zip(steps, x0_error, strict=True):
        if err > START_ERROR_RATIO * zero_error:
            break
        chosen = t
    return int(min(max(chosen, min_step, 1), num_steps))

