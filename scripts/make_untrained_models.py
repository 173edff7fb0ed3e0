"""Write an UNTRAINED tiny base model and motion-deblur adapter, to exercise the pipeline
(`dtpm-restore`, the app) before trained models are installed. Their output is not a
restoration: train real models with `dtpm-train` or use the bundled ones.

    python scripts/make_untrained_models.py OUTDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from dtpm_core.config import Stage2Options, preset
from dtpm_core.modelfiles.weights import save_adapter, save_base
from dtpm_core.networks.model import DTPM


def main(outdir: str) -> None:
    folder = Path(outdir)
    torch.manual_seed(0)
    model = DTPM(preset("tiny", denoiser__semantic="none"), Stage2Options())
    note = {"note": "untrained: random initialisation, for pipeline checks only"}
    sha = save_base(folder / "base.safetensors", model, training=note)
    save_adapter(folder / "motion-deblur.safetensors", model, "motion-deblur", sha,
                 display_name="Motion deblurring (untrained)", training=note)
    manifest = {"base": "base.safetensors",
                "adapters": [{"task": "motion-deblur", "file": "motion-deblur.safetensors",
                              "display_name": "Motion deblurring (untrained)"}]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote UNTRAINED models to {folder}/ (base.safetensors, motion-deblur.safetensors, "
          "manifest.json)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "untrained-models")
