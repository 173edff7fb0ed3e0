"""The DTPM engine's networks on a graph runtime (OpenVINO): read from what the weight files
say of themselves (`dtpm_core.modelfiles.verified`) and run as converted graphs, shipped
beside the models or cached; nothing here imports torch. Only a conversion (a graph neither
shipped nor cached) and a base with a semantic encoder (its ImageNet trunk runs on torch;
the bundled base has none) load the torch networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backends.graphs import denoiser_graph, predictor_graph
from ..modelfiles.verified import (
    AdapterInfo,
    check_base_match,
    read_adapter_info,
    read_base_info,
)
from .inference import DTPMCalls, ProgressCallback
from .runner import Runner


class GraphDTPMNetworks:
    """One base model and, switchable without reloading the base, one task's parts."""

    def __init__(self, base: str | Path, runner: Runner) -> None:
        self.runner = runner
        self.base_info = read_base_info(base)
        self.task_info: AdapterInfo | None = None
        self._semantic = None  # the torch base, for its semantic encoder, once needed

    def load_adapter(self, path: str | Path) -> AdapterInfo:
        info = read_adapter_info(path)
        check_base_match(info, self.base_info)
        self.task_info = info
        return info

    def unload_adapter(self) -> None:
        self.task_info = None

    def calls(self, progress: ProgressCallback | None = None) -> DTPMCalls:
        base, task = self.base_info, self.task_info
        specs = [denoiser_graph(base, task)]
        with_predictor = task is not None and task.stage2.use_predictor
        if with_predictor:
            specs.append(predictor_graph(base, task))
        nets = self.runner.compile_graphs(specs, progress)
        denoise_net = nets[0]

        def denoise(x_t: np.ndarray, y_d: np.ndarray, sqrt_gamma: float,
                    code: np.ndarray | None, guidance: np.ndarray | None) -> np.ndarray:
            return denoise_net(x_t=x_t, y_d=y_d, guidance=guidance,
                               sqrt_gamma=np.full((1,), sqrt_gamma, dtype=np.float32),
                               semantic_code=code)

        def predict(y_d: np.ndarray) -> np.ndarray:
            return nets[1](y_d=y_d)

        semantic = None
        if base.config.denoiser.semantic != "none":
            semantic = self._semantic_code
        return DTPMCalls(predict if with_predictor else None, semantic, denoise,
                         guided=task is not None and task.stage2.uses_adapters)

    def _semantic_code(self, y_eps: np.ndarray) -> np.ndarray:
        if self._semantic is None:
            from .dtpm_torch import TorchDTPMNetworks

            self._semantic = TorchDTPMNetworks(self.base_info.path,
                                               Runner("cpu", "fp32", backend="torch"))
        return self._semantic.calls().semantic(y_eps)
