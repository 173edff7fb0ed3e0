"""Write resources/models/MODEL_CARD.md: what the bundled models are, what they were trained
and evaluated on (every photograph with its source, licence and credit, from
../shared/data/hq/MANIFEST.tsv), how well they do, and their limits.

    python scripts/write_model_card.py resources/models --eval docs/evidence/dtpm/bundled_eval.md
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect_demo_photos import (  # noqa: E402
    EVAL_SIDE,
    EVALUATED_AS_QUADRANTS,
    HELD_OUT,
    SHARED_HQ,
    TRAIN,
    TRAIN_SIDE,
    hq_held_out,
)

from dtpm_core.files.atomic import write_text_atomic  # noqa: E402
from dtpm_core.modelfiles.verified import read_adapter_info  # noqa: E402
from dtpm_core.modelfiles.weights import load_base  # noqa: E402


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def photo_table(rows: list[dict[str, str]]) -> str:
    lines = ["| file | licence | credit | source package | note |", "|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {_md(r['licence'])} | {_md(r['author_or_credit'])} | "
              f"{_md(r['source_package'])} | {_md(r.get('note', ''))} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("--eval", type=Path, help="the evaluation table (bundled_eval.md)")
    args = parser.parse_args(argv)

    manifest = json.loads((args.models / "manifest.json").read_text())
    _, base = load_base(args.models / manifest["base"])
    adapters = [read_adapter_info(args.models / a["file"]) for a in manifest["adapters"]]
    with open(SHARED_HQ / "MANIFEST.tsv", newline="", encoding="utf-8") as handle:
        photos = list(csv.DictReader(handle, delimiter="\t"))
    train = [p for p in photos if not hq_held_out(p["file"])]
    held = [p for p in photos if hq_held_out(p["file"])]
    evaluated = [p for p in held if p["file"] not in EVALUATED_AS_QUADRANTS]

    steps = base.training.get("steps", "?")
    calibration_lines = [f"| base | {base.calibration.residual_scale:.4f} | "
                         f"{base.calibration.start_step} | {base.calibration.x0_clip:.2f} |"]
    calibration_lines += [f"| {a.task} | {a.calibration.residual_scale:.4f} | "
                          f"{a.calibration.start_step} | {a.calibration.x0_clip:.2f} |"
                          for a in adapters]
    adapter_steps = ", ".join(f"{a.task} {a.training.get('steps', '?')}" for a in adapters)
    predictor_recipe = _predictor_recipe(adapters) + " " + _predictor_networks(adapters)
    stored_from = (f" (stored in fp16 from the fp32 file `{base.stored_from[:16]}...` the "
                   "adapters were trained on)") if base.stored_from else ""
    evaluation = args.eval.read_text(encoding="utf-8") if args.eval and args.eval.is_file() \
        else "(no evaluation table was given)\n"
    text = f"""# Model card: the bundled DTPM Studio models

Made by `scripts/write_model_card.py` from the model files, the photo manifest and the
evaluation; the recipe that trained them is `scripts/train_bundled_models.sh`.

## What they are
- `{manifest['base']}`: the DTPM Stage I texture prior (a diffusion model of the texture layer
  of photos), preset `{base.config.preset}`, semantic code `{base.config.denoiser.semantic}`,
  sha256 `{base.sha256[:16]}...`{stored_from}, {steps} iterations in this run (it continues the
  previous bundled base, 12000 iterations on the scikit-image photographs).
- One adapter per task ({', '.join(a.display_name for a in adapters)}): Conditional Guidance
  Adapters and an initial predictor, Stage II iterations of each file's last run: {adapter_steps}
  (motion-deblur, defocus-deblur, derain-dehaze and desnow continue earlier runs: 19300,
  19600, 3000 and 3000 iterations in all; raindrop is the campaign's `raindrop-effnet` line,
  15000 iterations from ImageNet; all logged in `checkpoints/campaign.tsv`; their last runs
  trained on the wide camera-like ranges of `trainer/degradations.TRAIN_RANGES` with 128 px
  crops, the residual scale kept from each line's first run except derain-dehaze's and
  desnow's, measured again at the start of their last run). Every file stores its weights in
  fp16. {predictor_recipe}
- `{manifest.get('singlepass', 'singlepass.safetensors')}`: the single-pass network of the
  single-pass engine (DESIGN 6), trained earlier on the scikit-image photographs at full
  resolution, then continued by the training campaign (`dtpm-train singlepass continue`, 1000
  iterations of MTUL's last step on the camera-like ranges with 128 px crops); then made into
  a network with a pixel-unshuffle stem (`trainer/singlepass/stem.py`: the U-Net runs on 2 x 2
  pixel cells, the three lower levels kept, the full-resolution level dropped and its linear
  path written exactly as the stem's first and last convolutions) and trained by the
  campaign's `singlepass-s2` line (the same step); the shipped file is the weight average of
  that line's 6000-, 13500-, 15000- and 16500-iteration files (`dtpm-train singlepass
  average`).
- All were trained on one 2-core CPU: they are small models with a small budget (the paper
  trains 800K + 600K iterations on GPUs), for demonstration and as a starting point.

Sampling calibration stored in each file (DESIGN 1.1): residual scale s, start level t_s,
x0 clamp (in units of the scaled residual):

| file | s | t_s | clamp |
|---|---|---|---|
{chr(10).join(calibration_lines)}

## Training data
Clean photographs only; the degradations are synthetic (`trainer/degradations.py`): motion
blur, defocus blur, rain streaks + haze, snow, raindrops on glass.
- scikit-image's sample photographs (BSD-3-Clause package; each image's origin is in the
  `skimage.data` documentation): {', '.join(TRAIN)}.
- {len(train)} photographs of `../shared/data/hq` (free-licensed Debian packages), long side
  reduced to {TRAIN_SIDE} px, listed below with their licences and credits. Photos under
  CC-BY / CC-BY-SA need this credit wherever the photos themselves are redistributed; the
  weights do not contain the photos. Seven are marked DOUBTFUL in the manifest (unclear
  provenance of the original); they were used, and are named so below.

{photo_table(train)}

## Evaluation data (never trained on)
Held out by file name (`scripts/collect_demo_photos.py`): scikit-image's
{', '.join(HELD_OUT)} (evaluated as its four quadrants) and every hq photo whose number is 3
modulo 7; {len(evaluated)} of them are evaluated (long side {EVAL_SIDE} px; 031 is chelsea
again). The degradations of the evaluation use the held-out parameter ranges (other kernels,
densities and strengths than training). `030_coffee_cup` (scikit-image's coffee) is a training
photo in this recipe; the earlier one held coffee out.

{photo_table(held)}

## Results on the held-out photos
DTPM's K columns add the texture layer as luminance (the product's default, `--texture-colour
luminance`: the same change to R, G and B, the initial prediction's colours kept); the paper's
per-channel texture (`--texture-colour rgb`) measured lower PSNR at every K and left coloured
specks on rain + haze and snow.

{evaluation}
## Limits
- Synthetic degradations only: no real degraded/clean pairs were available offline, so real
  blur, rain or snow may differ from what the models learned.
- Small models and budgets: the restoration is modest, see the table above for where a task
  misses its bar.
- The texture DTPM adds is generated: at larger K it is plausible detail, not recovered
  detail. Do not use the results as evidence of what a scene contained.
"""
    write_text_atomic(args.models / "MODEL_CARD.md", text)
    print(f"wrote {args.models / 'MODEL_CARD.md'}")
    return 0


def _auxiliary_losses(adapter) -> str | None:
    """The auxiliary predictor losses in an adapter file's stored training config ("none" for
    the diffusion loss alone), or None when the file does not record them. A file written
    before the squared-error option existed records no MSE weight: it had none."""
    stage2 = adapter.training.get("config", {}).get("stage2", {})
    l1, mse = stage2.get("predictor_l1_weight"), stage2.get("predictor_mse_weight")
    if l1 is None:
        return None
    parts = ([f"L1 (weight {l1})"] if l1 else []) + \
        ([f"squared error (weight {mse})"] if mse else [])
    return " and ".join(parts) or "none"


def _predictor_recipe(adapters) -> str:
    """How the initial predictors were trained, read from each file's stored training config
    (`stage2.predictor_l1_weight`, `stage2.predictor_mse_weight`), not assumed."""
    terms = {a.task: _auxiliary_losses(a) for a in adapters}
    found = set(terms.values())
    if found == {None}:
        return "How the initial predictor was trained is not recorded in the files."
    if len(found) == 1:  # every file records the same losses
        losses = found.pop()
        if losses == "none":
            return ("The initial predictor is trained through the diffusion loss only, as in "
                    "the paper.")
        return (f"The initial predictor is trained through the diffusion loss plus an auxiliary "
                f"{losses} loss against the clean image (the paper uses the diffusion "
                "loss only).")
    return ("The initial predictor is trained through the diffusion loss plus, per task, an "
            "auxiliary loss against the clean image (the paper uses the diffusion loss only): "
            + "; ".join(f"{t} {w if w is not None else 'not recorded'}"
                        for t, w in terms.items()) + ".")


def _predictor_network(adapter) -> str:
    """The initial predictor of an adapter file, from its stored model config."""
    p = adapter.config.predictor
    if p.encoder == "efficientnet-lite0":
        return (f"EfficientNet-Lite0 encoder (started from its ImageNet weights, fine-tuned) "
                f"under a NAF decoder of width {p.width}")
    stem = f", pixel-unshuffle stem {p.stem}" if p.stem > 1 else ""
    return f"NAF U-Net of width {p.width} with {len(p.enc_blocks)} levels{stem}"


def _predictor_networks(adapters) -> str:
    """Which network each task's initial predictor is, grouped when they share one."""
    groups: dict[str, list[str]] = {}
    for a in adapters:
        groups.setdefault(_predictor_network(a), []).append(a.task)
    if len(groups) == 1:
        return f"Every initial predictor is a {next(iter(groups))}."
    return "Initial predictors: " + "; ".join(
        f"{', '.join(tasks)}: {network}" for network, tasks in groups.items()) + "."


if __name__ == "__main__":
    raise SystemExit(main())
