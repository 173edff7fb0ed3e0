"""Training configuration: frozen dataclasses with the paper's defaults, TOML files, and
command-line overrides (`--set optim.lr=3e-4`). Unknown keys are errors.

The resolved config is stored in every checkpoint and exported weight file.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dtpm_core.config import ModelConfig, dataclass_from_dict, preset
from dtpm_core.errors import ConfigError
from dtpm_core.options import TASKS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class ModelChoice:
    """Which network to build: a named preset plus dotted overrides of its ModelConfig."""

    preset: str = "paper"
    semantic: str = "imagenet"  # falls back to seeded "random" when the weights are missing
    overrides: dict[str, Any] = field(default_factory=dict)
    init: str = ""  # Stage I: a base file whose denoiser the run starts from; "" = random

    def build(self) -> ModelConfig:
        config = preset(self.preset).with_overrides({"denoiser.semantic": self.semantic})
        return config.with_overrides(self.overrides) if self.overrides else config


@dataclass(frozen=True)
class OptimConfig:
    """Adam (0.9, 0.999), lr 1.5e-4 with cosine annealing (the paper's settings)."""

    lr: float = 1.5e-4
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    lr_min: float = 1e-7  # the cosine ends here
    warmup: int = 0  # linear warm-up iterations
    grad_clip: float = 1.0  # max global gradient norm, 0 = off


@dataclass(frozen=True)
class DataConfig:
    """Where the training pairs come from.

    Stage I reads `prepared` (made by `dtpm-train prepare`). Stage II reads a paired dataset
    (`layout` one of gopro, dpdd, snow100k, outdoor-rain, raindrop, folders, with `root` or
    `degraded_dir`/`clean_dir`) or, with layout "synthetic", degrades the clean images in
    `clean` on the fly.
    """

    prepared: str = ""
    layout: str = "synthetic"
    root: str = ""
    split: str = "train"
    degraded_dir: str = ""
    clean_dir: str = ""
    clean: tuple[str, ...] = ()
    crop: int = 256
    batch_size: int = 8
    workers: int = 2
    held_out_fraction: float = 0.1  # of the images, never trained on, used for validation
    synthetic_length: int = 100_000  # virtual epoch size for synthetic data


@dataclass(frozen=True)
class LoopConfig:
    iterations: int = 800_000
    ema_decay: float = 0.999
    amp: bool = True  # mixed precision (bf16 autocast) on CUDA; see cpu_bf16 for the CPU
    channels_last: bool = True  # on CUDA
    # bf16 autocast + channels-last on the CPU (AMX / AVX512-BF16); an error on a CPU without
    # native bf16. Off by default: measured per set-up in benchmarks/bench_train.py
    cpu_bf16: bool = False
    # torch.compile the training step's loss (forward; the backward follows): one compile at
    # the start of a run (a minute or two, cached on disk for the next run of the same
    # network). Measured on a Sapphire Rapids core (benchmarks/bench_train_setups.py
    # --compile --stage1): with cpu_bf16 2.1x (Stage I) to 2.9x (Stage II, P16) the
    # images/s of the eager fp32 step, fp32 compiled 1.35-1.8x. Refused by the single-pass
    # fine-tuning (GEF: gradients inside its loss)
    compile: bool = False
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1000
    validate_every: int = 5000
    val_steps: int = 4  # DDIM K used for validation
    val_images: int = 4
    val_size: int = 128  # validation crops (square)
    max_bad_steps: int = 20  # consecutive NaN/Inf losses before giving up


@dataclass(frozen=True)
class Stage2Config:
    """Stage II: task name and the paper's ablations."""

    task: str = "motion-deblur"
    display_name: str = ""
    mode: str = "adapters"  # or finetune-encoder / finetune-decoder / finetune-both
    use_predictor: bool = True
    from_scratch: bool = False  # "w/o Stage I": the base is trained too, from random weights
    predictor_l1_weight: float = 0.0  # auxiliary L1 on the initial predictor
    predictor_mse_weight: float = 0.0  # auxiliary mean squared error on it (PSNR's loss)
    predictor_fft_weight: float = 0.0  # auxiliary L1 of its error's spectrum (MIMO-UNet)
    init: str = ""  # an adapter file (same base, task, mode) the run continues from
    # on a warm start, measure the residual scale s again (the predictor has improved since
    # the file's s was measured, so its residual is smaller) instead of keeping the file's;
    # the adapters' diffusion part then learns the rescaled residual
    rescale: bool = False
    # let stage2.init be an adapter trained on another base (same network config): its
    # adapters and predictor are the starting point on this base (moving every adapter onto a
    # longer-trained base; the predictor does not depend on the base at all)
    rebase: bool = False

    def __post_init__(self) -> None:
        for name in ("predictor_l1_weight", "predictor_mse_weight", "predictor_fft_weight"):
            if getattr(self, name) < 0.0:
                raise ConfigError(f"stage2.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("rescale", "rebase"):
            if getattr(self, name) and not self.init:
                raise ConfigError(f"stage2.{name} applies to a warm start; it needs stage2.init "
                                  "(an adapter file to start from)")


@dataclass(frozen=True)
class CalibrationConfig:
    """The residual scale s and how the sampling calibration is measured (DESIGN 1.1)."""

    residual_scale: float = 0.0  # s; 0 = the residual's RMS measured on the first batches
    crops: int = 12  # held-out crops (of loop.val_size) the start level t_s is measured on

    def __post_init__(self) -> None:
        if self.residual_scale < 0.0:
            raise ConfigError("calibration.residual_scale must be >= 0 (0 = measure it)")
        if self.crops < 1:
            raise ConfigError("calibration.crops must be >= 1")


ORTHOGONALITY_MODES = ("loss", "projection", "detached", "off")
"""How GEF uses the two gradients: a back-propagated 1 - cos loss (the paper), a PCGrad-style
projection of the restoration gradient, the reference code's constant (no gradient), or off."""


@dataclass(frozen=True)
class SinglePassTrainConfig:
    """The single-pass engine (DESIGN 6): network preset, task(s) and the GEF/MTUL switches.

    Turning generative, regulariser and orthogonality off gives plain L1 (+FFT) training
    with the same command."""

    preset: str = "paper"  # tiny / small / paper / reference (dtpm_core.singlepass presets)
    overrides: dict[str, Any] = field(default_factory=dict)  # SinglePassConfig fields
    task: str = "motion-deblur"  # finetune / calibrate
    t_mat: int = -1  # matched time step; -1 = the paper's table for the task
    tasks: tuple[str, ...] = TASKS  # multitask (trained in ascending t_mat)
    # multitask / continue: relative share of each task in the training draws (tasks not
    # named weigh 1; empty = every task's data once per epoch)
    task_weights: dict[str, float] = field(default_factory=dict)
    init: str = ""  # weights file theta_0 starts from (pretrain's export); "" = random
    generative: bool = True  # add the TMDDP loss on the task's clean images
    regulariser: bool = True  # Omega-weighted pull towards theta_0
    orthogonality: str = "loss"  # one of ORTHOGONALITY_MODES
    gen_probability: float = 0.1  # chance per iteration of the three diffusion terms
    gen_weight: float = 1.0  # lambda_gen
    orth_weight: float = 1.0  # weight of 1 - cos(g_gen, g_res)
    omega_batches: int = 50  # clean batches averaged into Omega
    step_iterations: int = 0  # multitask: iterations per incremental step (0 = loop.iterations)

    def __post_init__(self) -> None:
        if self.orthogonality not in ORTHOGONALITY_MODES:
            raise ConfigError(f"singlepass.orthogonality must be one of {ORTHOGONALITY_MODES},"
                              f" got {self.orthogonality!r}")
        if not 0.0 <= self.gen_probability <= 1.0:
            raise ConfigError("singlepass.gen_probability must be in [0, 1]")
        if self.omega_batches < 1:
            raise ConfigError("singlepass.omega_batches must be >= 1")
        for task, weight in self.task_weights.items():
            if task not in TASKS:
                raise ConfigError(f"singlepass.task_weights: unknown task {task!r} (tasks: "
                                  f"{', '.join(TASKS)})")
            number = isinstance(weight, (int, float)) and not isinstance(weight, bool)
            if not number or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"singlepass.task_weights: the weight of {task} must be a "
                                  f"number >= 0, got {weight!r}")

    @property
    def diffusion_terms(self) -> bool:
        """False for plain L1 training (every diffusion part switched off)."""
        return self.generative or self.regulariser or self.orthogonality != "off"


@dataclass(frozen=True)
class TrainConfig:
    model: ModelChoice = field(default_factory=ModelChoice)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    singlepass: SinglePassTrainConfig = field(default_factory=SinglePassTrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return dataclass_from_dict(cls, data, "config")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "overrides":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


# tables whose keys are not fixed: `--set singlepass.task_weights.desnow=2` adds a key
OPEN_TABLES = {("model", "overrides"), ("singlepass", "overrides"),
               ("singlepass", "task_weights")}


def parse_override(text: str) -> tuple[list[str], Any]:
    """"optim.lr=3e-4" -> (["optim", "lr"], 3e-4); values are TOML literals, bare words are
    strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def bundled_config(name: str) -> Path:
    """Path of a config shipped in trainer/configs (name with or without .toml)."""
    filename = name if name.endswith(".toml") else f"{name}.toml"
    return Path(str(resources.files("trainer") / "configs" / filename))


def load_config(path_or_name: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Defaults <- TOML file (a path, or the name of a bundled config) <- overrides."""
    data = TrainConfig().to_dict()
    if path_or_name:
        path = Path(path_or_name)
        if not path.is_file():
            path = bundled_config(str(path_or_name))
        if not path.is_file():
            known = sorted(p.stem for p in bundled_config("x").parent.glob("*.toml"))
            raise ConfigError(f"config {path_or_name!r} is neither a file nor a bundled "
                              f"config ({', '.join(known)})")
        try:
            data = _merge(data, tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    for text in overrides:
        keys, value = parse_override(text)
        if tuple(keys[:2]) in OPEN_TABLES and len(keys) > 2:
            section = data[keys[0]]
            section[keys[1]] = {**section[keys[1]], ".".join(keys[2:]): value}
            continue
        node = data
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"unknown config key {'.'.join(keys)!r}")
            node = node[key]
        if keys[-1] not in node:
            raise ConfigError(f"unknown config key {'.'.join(keys)!r}")
        node[keys[-1]] = value
    config = TrainConfig.from_dict(data)
    config.model.build()  # validates preset and model overrides now, not hours later
    singlepass_net_config(config)
    return config


def singlepass_net_config(config: TrainConfig, adaptor_tasks: tuple[str, ...] = ()):
    """The SinglePassConfig of `config.singlepass` (preset + overrides), with adaptors for
    `adaptor_tasks` (none by default)."""
    from dtpm_core.singlepass.config import singlepass_preset
    section = config.singlepass
    overrides = dict(section.overrides)
    for key in ("enc_blocks", "dec_blocks"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    return singlepass_preset(section.preset, **overrides, adaptor_tasks=tuple(adaptor_tasks))
