"""The assembled DTPM model: base denoiser (Stage I), semantic encoder, and the Stage II
parts (adapters, initial predictor) with the paper's ablation modes (DESIGN 1.2-1.4)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig, PredictorConfig, Stage2Options
from ..errors import ConfigError
from .adapters import AdapterSet
from .denoiser import Denoiser
from .encoder_predictor import EncoderPredictor
from .predictor import InitialPredictor
from .semantic import SemanticEncoder


class DTPM(nn.Module):
    """Base denoiser + frozen semantic encoder, optionally with Stage II parts.

    `denoiser` holds the Stage I weights (the base file); `adapters` and `predictor` the task
    weights (an adapter file). `semantic` is never saved: it is rebuilt from its mode.
    """

    def __init__(self, config: ModelConfig, stage2: Stage2Options | None = None) -> None:
        super().__init__()
        self.config = config
        self.stage2 = stage2
        self.denoiser = Denoiser(config.denoiser)
        mode = config.denoiser.semantic
        self.semantic = SemanticEncoder(mode) if mode != "none" else None
        self.adapters, self.predictor = build_task_modules(config, stage2,
                                                           self.denoiser.block_widths)

    def semantic_code(self, image01: torch.Tensor) -> torch.Tensor | None:
        """(B, 3, H, W) image in [0, 1] -> (B, 512) frozen features, or None without them."""
        if self.semantic is None:
            return None
        return self.semantic(image01.detach())

    def initial_prediction(self, degraded: torch.Tensor) -> torch.Tensor:
        """y_eps = P(y_d) in [-1, 1]; the identity without a predictor."""
        if self.predictor is None:
            return degraded
        return self.predictor(degraded)

    def predict_noise(self, x_noisy: torch.Tensor, cond_image: torch.Tensor,
                      sqrt_gamma: torch.Tensor, semantic_code: torch.Tensor | None,
                      guidance: torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser with this model's adapters (if any) applied."""
        adapters = self.adapters
        return self.denoiser(x_noisy, cond_image, sqrt_gamma, semantic_code,
                             adapters=adapters, guidance=guidance if adapters is not None else None)

    def base_state_dict(self) -> dict[str, torch.Tensor]:
        """The Stage I weights (what a base file holds)."""
        return {k: v.detach().clone() for k, v in self.denoiser.state_dict().items()}

    def task_state_dict(self) -> dict[str, torch.Tensor]:
        """What an adapter file holds: adapters, predictor, and for the fine-tuning ablations
        (or training from scratch) the denoiser weights they changed."""
        if self.stage2 is None:
            raise ConfigError("this model has no Stage II parts")
        state: dict[str, torch.Tensor] = {}
        for prefix, module in (("adapters.", self.adapters), ("predictor.", self.predictor)):
            if module is not None:
                state.update({prefix + k: v for k, v in module.state_dict().items()})
        names = denoiser_parameter_names_trained(self.denoiser, self.stage2)
        params = dict(self.denoiser.named_parameters())
        state.update({"denoiser." + n: params[n] for n in names})
        return {k: v.detach().clone() for k, v in state.items()}


def build_task_modules(config: ModelConfig, stage2: Stage2Options | None,
                       block_widths: tuple[int, ...]
                       ) -> tuple[AdapterSet | None, Predictor | None]:
    """The freshly initialised Stage II modules that `stage2` asks for."""
    if stage2 is None:
        return None, None
    adapters = AdapterSet(block_widths, config.adapter.ratio) if stage2.uses_adapters else None
    predictor = build_predictor(config.predictor) if stage2.use_predictor else None
    return adapters, predictor


Predictor = InitialPredictor | EncoderPredictor


def build_predictor(config: PredictorConfig) -> Predictor:
    """The initial predictor `config` describes: the NAF U-Net, or one on EfficientNet-Lite0
    (fresh: its encoder random until `load_imagenet_encoder`, its output the identity)."""
    if config.encoder == "efficientnet-lite0":
        return EncoderPredictor(config)
    return InitialPredictor(config)


def denoiser_parameter_names_trained(denoiser: Denoiser, stage2: Stage2Options) -> list[str]:
    """Denoiser parameters that Stage II changes under the given options."""
    if stage2.from_scratch or stage2.mode == "finetune-both":
        return [n for n, _ in denoiser.named_parameters()]
    if stage2.mode == "finetune-encoder":
        return denoiser.encoder_parameter_names()
    if stage2.mode == "finetune-decoder":
        return denoiser.decoder_parameter_names()
    return []


def configure_stage2_trainable(model: DTPM) -> list[nn.Parameter]:
    """Set requires_grad for Stage II and return the parameters to optimise: adapters and
    predictor, plus the denoiser parts an ablation trains. Everything else stays frozen."""
    if model.stage2 is None:
        raise ConfigError("configure_stage2_trainable needs a model built with Stage2Options")
    model.requires_grad_(False)
    trainable: list[nn.Parameter] = []
    for module in (model.adapters, model.predictor):
        if module is not None:
            module.requires_grad_(True)
            trainable += list(module.parameters())
    names = set(denoiser_parameter_names_trained(model.denoiser, model.stage2))
    for name, param in model.denoiser.named_parameters():
        if name in names:
            param.requires_grad_(True)
            trainable.append(param)
    return trainable
