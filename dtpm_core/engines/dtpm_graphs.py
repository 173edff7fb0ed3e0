"""The DTPM engine's networks on a graph runtime (OpenVINO): read from what the weight files
say of themselves (`dtpm_core.modelfiles.verified`) and run as converted graphs, shipped
beside the models or cached; nothing here imports torch. Only a conversion (a graph neither
shipped nor cached) loads the torch networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backends import GraphSpec
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

    def specs(self) -> list[GraphSpec]:
        """The graphs of the loaded base and task: the denoiser, then the initial predictor
        and the semantic encoder where they have them."""
        base, task = self.base_info, self.task_info
        specs = [denoiser_graph(base, task)]
        if task is not None and task.stage2.use_predictor:
            specs.append(predictor_graph(base, task))
        if base.config.denoiser.semantic != "none":
            specs.append(semantic_graph(base))
        return specs

    def compile_ahead(self, sizes: list[tuple[int, int]], denoiser: bool) -> int:
        """Start compiling the networks that run on the photo's windows (the predictor, and
        the denoiser where `denoiser`) for these window sizes (`Runner.compile_ahead`); the
        semantic encoder sees one size whatever the photo's and compiles on first use."""
        wanted = ("predictor", "denoiser") if denoiser else ("predictor",)
        specs = [spec for spec in self.specs() if spec.role in wanted]
        specs.sort(key=lambda spec: wanted.index(spec.role))  # the predictor runs first
        return self.runner.compile_ahead(specs, sizes)

    def calls(self, progress: ProgressCallback | None = None) -> DTPMCalls:
        task = self.task_info
        specs = self.specs()
        with_predictor = any(spec.role == "predictor" for spec in specs)
        with_semantic = any(spec.role == "semantic" for spec in specs)
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
