"""The DTPM engine's networks on a graph runtime (OpenVINO): read from what the weight files
say of themselves (`dtpm_core.modelfiles.verified`) and run as converted graphs, shipped
beside the models or cached; nothing here imports torch. Only a conversion (a graph neither
shipped nor cached) loads the torch networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backends.graphs import denoiser_graph, predictor_graph, semantic_graph
from ..modelfiles.verified import (
    AdapterInfo,
    check_base_match,
    read_adapter_info,
    read_base_info,
)
from ..networks.semantic_input import semantic_input
from .inference import DTPMCalls, ProgressCallback
from .runner import Runner


class GraphDTPMNetworks:
    """One base model and, switchable without reloading the base, one task's parts."""

    def __init__(self, base: str | Path, runner: Runner) -> None:
        self.runner = runner
        self.base_info = read_base_info(base)
        self.task_info: AdapterInfo | None = None

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
        with_semantic = base.config.denoiser.semantic != "none"
        if with_semantic:
            specs.append(semantic_graph(base))
        nets = dict(zip((spec.role for spec in specs),
                        self.runner.compile_graphs(specs, progress), strict=True))
        denoise_net = nets["denoiser"]

        def denoise(x_t: np.ndarray, y_d: np.ndarray, sqrt_gamma: float,
                    code: np.ndarray | None, guidance: np.ndarray | None) -> np.ndarray:
            return denoise_net(x_t=x_t, y_d=y_d, guidance=guidance,
                               sqrt_gamma=np.full((1,), sqrt_gamma, dtype=np.float32),
                               semantic_code=code)

        def predict(y_d: np.ndarray) -> np.ndarray:
            return nets["predictor"](y_d=y_d)

        def semantic(y_eps: np.ndarray) -> np.ndarray:
            return nets["semantic"].outputs(image=semantic_input(y_eps))[0]

        return DTPMCalls(predict if with_predictor else None,
                         semantic if with_semantic else None, denoise,
                         guided=task is not None and task.stage2.uses_adapters)
