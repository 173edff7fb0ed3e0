"""`dtpm-train`: prepare data, train Stage I and Stage II, evaluate, export."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dtpm_core.errors import DTPMError
from dtpm_core.model import STAGE2_MODES

CONFIG_HELP = ("TOML config: a file, or a bundled name (paper_stage1, paper_stage2, "
               "cpu_demo_stage1, cpu_demo_stage2, bundled_stage1, bundled_stage2); keys not "
               "in the file keep the paper's settings")
SET_HELP = ("override any config key, repeatable, e.g. --set optim.lr=3e-4 --set "
            "data.batch_size=4 --set model.overrides.denoiser.width=24")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtpm-train",
        description="Train Diffusion Texture Prior Models: `prepare` patches, learn the texture "
                    "prior (`stage1`), adapt it to a task (`stage2`), `eval`uate at several "
                    "step counts and `export` the files the app loads. Runs on one CPU or, "
                    "through torchrun, on many GPUs (DistributedDataParallel).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="crop clean photos into patches with RTV-smoothed twins",
                       description="Crop clean high-quality images into patches and precompute "
                                   "their texture-free RTV versions (lambda 0.01, sigma 3, "
                                   "eps_s 0.02, 4 iterations). Resumable: existing patches are "
                                   "kept.")
    p.add_argument("sources", nargs="+", type=Path, help="clean image files or folders")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--patch", type=int, default=512, help="patch size (paper: 512)")
    p.add_argument("--stride", type=int, default=None,
                   help="distance between patches (default: the patch size, no overlap)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many patches")

    for name, text in (("stage1", "learn the texture prior on prepared patches"),
                       ("stage2", "train a task adapter + initial predictor on a frozen base")):
        p = sub.add_parser(name, help=text, description=text + ". Resumes automatically from "
                           "RUN_DIR/checkpoint.pt; launch with `torchrun --nproc_per_node N "
                           f"-m trainer.cli {name} ...` for several processes.")
        p.add_argument("--config", default=f"cpu_demo_{name}", help=CONFIG_HELP +
                       f" (default: cpu_demo_{name})")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help=SET_HELP)
        p.add_argument("--run-dir", type=Path, required=True,
                       help="folder for checkpoints, TensorBoard logs, samples and the export")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="training device (default: CUDA when available)")
        p.add_argument("--iterations", type=int, help="shortcut for --set loop.iterations=N")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--no-semantic", action="store_true",
                       help="ablation: no semantic code (stage2: needs a base trained so)")
        if name == "stage2":
            p.add_argument("--task", help="task name: motion-deblur, defocus-deblur, "
                                          "derain-dehaze, desnow, raindrop or your own")
            p.add_argument("--base", type=Path, help="the Stage I base file to adapt")
            p.add_argument("--mode", choices=STAGE2_MODES,
                           help="adapters (paper) or an ablation fine-tuning the base's "
                                "encoder, decoder or both without adapters")
            p.add_argument("--no-predictor", action="store_true",
                           help="ablation: no initial predictor (y_eps = degraded input)")
            p.add_argument("--no-stage1", action="store_true",
                           help="ablation: no Stage I, train the whole model from scratch")

    p = sub.add_parser("eval", help="PSNR/SSIM/MAE/LPIPS (FID) at several K -> CSV, Markdown, plot",
                       description="Evaluate a base + adapter on a paired set at several step "
                                   "counts, next to the degraded input and the initial "
                                   "prediction alone; writes eval.csv, eval.md and "
                                   "tradeoff.png (PSNR and LPIPS against K).")
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--adapter", type=Path, required=True)
    p.add_argument("--layout", default="folders",
                   help="gopro, dpdd, snow100k, outdoor-rain, raindrop, folders or synthetic")
    p.add_argument("--root", type=Path, help="dataset root for the named layouts")
    p.add_argument("--split", default="test", help="dataset split (default: test)")
    p.add_argument("--degraded", type=Path, help="degraded folder (layout folders)")
    p.add_argument("--clean", type=Path, nargs="+",
                   help="clean folder (layout folders) or clean images (layout synthetic)")
    p.add_argument("--task", help="task to synthesise (layout synthetic)")
    p.add_argument("--held-out-degradations", action="store_true",
                   help="synthesise with the held-out degradation distribution")
    p.add_argument("--steps", default="1,4,10,50", help="comma-separated K (default 1,4,10,50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--max-side", type=int, default=None,
                   help="downscale larger images to this side first (CPU budgets)")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")

    p = sub.add_parser("export", help="write the base/adapter file from a run's checkpoint",
                       description="Write the weight file (safetensors + metadata: task, "
                                   "display name, base hash, config, metrics) of a Stage I or "
                                   "Stage II run, with its EMA weights.")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("-o", "--out", type=Path, required=True, help="the .safetensors to write")
    p.add_argument("--raw", action="store_true", help="export the raw weights, not the EMA")
    p.add_argument("--metrics", type=Path, help="eval.csv whose summary goes into the metadata")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DTPMError as exc:
        print(f"dtpm-train {args.command}: {exc}", file=sys.stderr)
        return 2


def _prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare
    report = prepare(args.sources, args.out, patch=args.patch, stride=args.stride,
                     limit=args.limit)
    print(report.summary() if hasattr(report, "summary") else report)
    return 1 if getattr(report, "failed", None) else 0


def _train(args: argparse.Namespace) -> int:
    from . import dist
    from .config import load_config
    from .loop import run

    overrides = list(args.overrides)
    if args.iterations is not None:
        overrides.append(f"loop.iterations={args.iterations}")
    if args.no_semantic:
        overrides.append('model.semantic="none"')
    if args.command == "stage2":
        if args.task:
            overrides.append(f'stage2.task="{args.task}"')
        if args.mode:
            overrides.append(f'stage2.mode="{args.mode}"')
        if args.no_predictor:
            overrides.append("stage2.use_predictor=false")
        if args.no_stage1:
            overrides.append("stage2.from_scratch=true")
    config = load_config(args.config, overrides)
    info = dist.setup(args.device)
    try:
        if args.command == "stage1":
            from .stage1 import build_stage1
            job = build_stage1(config, args.run_dir)
        else:
            from .stage2 import build_stage2
            job = build_stage2(config, args.run_dir, args.base)
        run(job, info, progress=not args.quiet)
    finally:
        dist.teardown()
    return 0


def _eval(args: argparse.Namespace) -> int:
    from dtpm_core.restore import Restorer

    from .evaluate import evaluate, write_all
    pairs = _eval_pairs(args)
    if args.max_images:
        pairs = pairs[: args.max_images]
    steps = tuple(int(s) for s in args.steps.split(","))
    restorer = Restorer(args.base, args.adapter, device=args.device)
    report = evaluate(restorer, pairs, steps, seed=args.seed, max_side=args.max_side)
    files = write_all(report, args.out)
    print((args.out / "eval.md").read_text() if (args.out / "eval.md").exists() else report)
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _eval_pairs(args: argparse.Namespace) -> list:
    from .data import Pair, find_pairs, pairs_from_folders
    if args.layout == "folders":
        if not args.degraded or not args.clean:
            raise DTPMError("layout folders needs --degraded DIR and --clean DIR")
        return pairs_from_folders(args.degraded, args.clean[0])
    if args.layout == "synthetic":
        import numpy as np

        from dtpm_core.imageio import list_images, read_image, write_image

        from .degradations import degrade
        if not args.task or not args.clean:
            raise DTPMError("layout synthetic needs --task T and --clean IMAGES/FOLDERS")
        folder = args.out / "pairs"
        pairs = []
        for index, path in enumerate(list_images(args.clean)):
            clean = read_image(path).rgb
            rng = np.random.default_rng([args.seed, index])
            degraded = degrade(args.task, clean, rng, held_out=args.held_out_degradations)
            d, c = folder / "degraded" / f"{path.stem}.png", folder / "clean" / f"{path.stem}.png"
            write_image(d, degraded)
            write_image(c, clean)
            pairs.append(Pair(d, c))
        return pairs
    if not args.root:
        raise DTPMError(f"layout {args.layout} needs --root DIR")
    return find_pairs(args.layout, args.root, args.split)


def _export(args: argparse.Namespace) -> int:
    from .export import export_run
    metrics = None
    if args.metrics:
        import csv
        with open(args.metrics, newline="") as handle:
            metrics = {"eval": list(csv.DictReader(handle))}
    path = export_run(args.run_dir, args.out, use_ema=not args.raw, metrics=metrics)
    print(f"wrote {path}")
    return 0


COMMANDS = {"prepare": _prepare, "stage1": _train, "stage2": _train, "eval": _eval,
            "export": _export}

if __name__ == "__main__":
    sys.exit(main())
