"""The DTPM engine's networks on the torch backend: the base and a task's parts as torch
modules (`prepare_for_inference`: channels-last on the CPU, bf16 weights on the fast path),
called on numpy arrays (`DTPMCalls`); on the CPU the arrays are shared, not copied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..backends.torch_backend import torch_denoiser, torch_network
from ..modelfiles.verified import AdapterInfo
from ..modelfiles.weights import TaskParts, load_adapter, load_base
from ..networks.semantic import downscale_for_semantics
from .inference import DTPMCalls, ProgressCallback
from .runner import Runner


class TorchDTPMNetworks:
    """One base model and, switchable without reloading the base, one task's parts."""

    def __init__(self, base: str | Path, runner: Runner) -> None:
        self.runner = runner
        model, self.base_info = load_base(base)
        self.model = model.to(runner.device)
        # the ending convolution stays fp32: eps_hat leaves the denoiser in fp32
        runner.prepare(model.denoiser, keep_fp32=[model.denoiser.ending])
        self.task: TaskParts | None = None

    @property
    def task_info(self) -> AdapterInfo | None:
        return self.task.info if self.task is not None else None

    def load_adapter(self, path: str | Path) -> AdapterInfo:
        parts = load_adapter(path, self.model, self.base_info)
        self.runner.prepare(parts)
        # ablation files replace denoiser weights: give them the loaded denoiser's dtype and
        # layout, so that the pass runs as with the base's own weights
        device = self.runner.device
        params = dict(self.model.denoiser.named_parameters())
        parts.denoiser_overrides = {
            k: v.to(device, params[k].dtype).contiguous(
                memory_format=torch.channels_last if v.dim() == 4 and device.type == "cpu"
                else torch.contiguous_format)
            for k, v in parts.denoiser_overrides.items()}
        self.task = parts
        return parts.info

    def unload_adapter(self) -> None:
        self.task = None

    def calls(self, progress: ProgressCallback | None = None) -> DTPMCalls:
        model, task = self.model, self.task
        device, precision = self.runner.device, self.runner.precision
        predictor = None
        if task is not None and task.predictor is not None:
            predictor = torch_network(task.predictor, device, precision)
        denoiser = torch_denoiser(model.denoiser, task.adapters if task is not None else None,
                                  task.denoiser_overrides if task is not None else {}, device,
                                  precision)

        def tensor(x: np.ndarray | None) -> torch.Tensor | None:
            return None if x is None else torch.from_numpy(x).to(device)

        @torch.no_grad()
        def predict(y_d: np.ndarray) -> np.ndarray:
            return _array(predictor(tensor(y_d)))

        @torch.no_grad()
        def semantic(y_eps: np.ndarray) -> np.ndarray:
            return _array(model.semantic_code(downscale_for_semantics(tensor(y_eps))
                                              .add_(1.0).mul_(0.5)))

        @torch.no_grad()
        def denoise(x_t: np.ndarray, y_d: np.ndarray, sqrt_gamma: float,
                    code: np.ndarray | None, guidance: np.ndarray | None) -> np.ndarray:
            level = torch.full((1,), sqrt_gamma, device=device)
            return _array(denoiser(tensor(x_t), tensor(y_d), level, tensor(code),
                                   tensor(guidance)))

        return DTPMCalls(predict if predictor is not None else None,
                         semantic if model.semantic is not None else None, denoise,
                         guided=task is not None and task.adapters is not None)


def _array(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()
