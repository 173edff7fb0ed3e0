"""The names and defaults that the app, `dtpm-restore` and the trainer share: task ids and
their display names, the two engines, devices, precisions and the ranges of the user's
controls. Plain constants, no torch, so the app reads them on its start-up path."""

from __future__ import annotations

TASKS: tuple[str, ...] = ("motion-deblur", "defocus-deblur", "derain-dehaze", "desnow", "raindrop")
"""The degradations DTPM and the single-pass engine are trained for (DESIGN 4)."""
TASK_DISPLAY_NAMES: dict[str, str] = {
    "motion-deblur": "Motion deblurring",
    "defocus-deblur": "Defocus deblurring",
    "derain-dehaze": "Rain + haze removal",
    "desnow": "Snow removal",
    "raindrop": "Raindrop removal",
}

DTPM, SINGLE_PASS = "dtpm", "single-pass"
ENGINES: tuple[str, ...] = (DTPM, SINGLE_PASS)
"""Engine ids, as `dtpm-restore --engine`, the app's settings and `dtpm-train compare` spell them."""
ENGINE_LABELS: dict[str, str] = {DTPM: "DTPM", SINGLE_PASS: "Single-pass"}
"""How the app names the engines."""

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
"""auto: bf16 on a CPU with AMX / AVX512-BF16 (2-3x faster), fp32 elsewhere."""

DEFAULT_STEPS = 4
MAX_SAMPLING_STEPS = 50
"""Largest K the product offers (DESIGN 1.1); the sampler itself accepts any K <= T."""
MAX_STRENGTH = 2.0
"""Largest DTPM texture strength (0 = the initial prediction alone, 1 = as trained)."""
DEFAULT_TILE = 512
"""Tile size in pixels; 0 processes the whole image at once."""


def task_display_name(task: str) -> str:
    """The name a task goes by in lists and reports (its id when it is not a usual task)."""
    return TASK_DISPLAY_NAMES.get(task, task)
