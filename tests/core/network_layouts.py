"""The parameter layout and seeded initialisation of every network, as a JSON-able record.

`network_layouts.json` holds this record as it was before the three U-Nets (denoiser,
initial predictor, single-pass network) shared one skeleton (dtpm_core/networks/unet.py);
test_unet.py rebuilds it and compares, so that weight files stay loadable (same names and
shapes, in the same order: optimiser states follow that order) and training starts from the
same parameters under a seed. Regenerate only for an intended change of a network:
``.venv/bin/python tests/core/network_layouts.py > tests/core/network_layouts.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import torch
from torch import nn

from dtpm_core.config import Stage2Options, preset
from dtpm_core.networks.adapters import AdapterSet
from dtpm_core.networks.denoiser import Denoiser
from dtpm_core.networks.model import DTPM
from dtpm_core.networks.predictor import InitialPredictor
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.network import SinglePassNet

SEED = 1234


def _cases() -> dict[str, Callable[[], nn.Module]]:
    cases: dict[str, Callable[[], nn.Module]] = {}
    for name in ("tiny", "paper"):
        config = preset(name)  # the default semantic code: a semantic MLP of width 512
        cases[f"denoiser/{name}"] = lambda c=config: Denoiser(c.denoiser)
        cases[f"predictor/{name}"] = lambda c=config: InitialPredictor(c.predictor)
        cases[f"adapters/{name}"] = lambda c=config: AdapterSet(
            Denoiser(c.denoiser).block_widths, c.adapter.ratio)
    cases["denoiser/small-no-semantic"] = lambda: Denoiser(
        preset("small", denoiser__semantic="none").denoiser)
    cases["dtpm/tiny-stage2"] = lambda: DTPM(preset("tiny", denoiser__semantic="none"),
                                             Stage2Options())
    cases["singlepass/tiny"] = lambda: SinglePassNet(singlepass_preset("tiny"))
    cases["singlepass/tiny-adaptors"] = lambda: SinglePassNet(
        singlepass_preset("tiny", adaptor_tasks=("denoise", "deblur")))
    cases["singlepass/reference-adaptors"] = lambda: SinglePassNet(
        singlepass_preset("reference", adaptor_tasks=("denoise",)))
    return cases


CASES = _cases()


def parameters_sha256(module: nn.Module) -> str:
    """SHA-256 of every state-dict entry (name, dtype, shape, bytes) in registration order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def layout(case: str) -> dict:
    """The state-dict names and shapes (in order) and the seeded parameters' digest."""
    torch.manual_seed(SEED)
    module = CASES[case]()
    return {"keys": [f"{name} {list(t.shape)}" for name, t in module.state_dict().items()],
            "seeded_sha256": parameters_sha256(module)}


def record() -> dict[str, dict]:
    return {case: layout(case) for case in CASES}


if __name__ == "__main__":
    print(json.dumps(record(), indent=1))
