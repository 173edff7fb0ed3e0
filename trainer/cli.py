"""`dtpm-train`: prepare data, train Stage I and Stage II, evaluate, export."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dtpm_core.errors import ConfigError, DTPMError
from dtpm_core.modelfiles.unverified import UNVERIFIED_HELP, UNVERIFIED_OPTION, allow_unverified
from dtpm_core.options import DEFAULT_TEXTURE_COLOUR, TEXTURE_COLOURS

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130
"""A usage, config, data or checkpoint error; Ctrl-C (128 + SIGINT, as shells report it)."""

CONFIG_HELP = ("TOML config: a file, or a bundled name (paper_stage1, paper_stage2, "
               "cpu_demo_stage1, cpu_demo_stage2, bundled_stage1, bundled_stage2); keys not "
               "in the file keep the paper's settings")
SET_HELP = ("override any config key, repeatable, e.g. --set optim.lr=3e-4 --set "
            "data.batch_size=4 --set model.overrides.denoiser.width=24")


def build_parser() -> argparse.ArgumentParser:
    # imported here, not at the top: they bring in torch, and Ctrl-C while the command starts
    # must reach main's handler (no traceback)
    from dtpm_core.config import STAGE2_MODES

    parser = argparse.ArgumentParser(
        prog="dtpm-train",
        description="Train Diffusion Texture Prior Models: `prepare` patches, learn the texture "
                    "prior (`stage1`), adapt it to a task (`stage2`), `eval`uate at several "
                    "step counts and `export` the files the app loads. Runs on one CPU or, "
                    "through torchrun, on many GPUs (DistributedDataParallel).",
        epilog="Exit status: 0 on success, 2 for a usage, config, data or checkpoint error "
               "(the message says which), 130 when interrupted with Ctrl-C, 143 when stopped "
               "by SIGTERM (the checkpoint is saved; the same command resumes the run).")
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
        _add_run_args(p, f"cpu_demo_{name}", CONFIG_HELP)
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

    _add_singlepass_parser(sub)

    p = sub.add_parser("eval", help="PSNR/SSIM/MAE/LPIPS, EffNet-Lite0 feature distance (FID) "
                                    "at several K -> CSV, Markdown, plot",
                       description="Evaluate a base + adapter on a paired set at several step "
                                   "counts, next to the degraded input and the initial "
                                   "prediction alone; writes eval.csv, eval.md and "
                                   "tradeoff.png (PSNR, LPIPS and the EffNet-Lite0 feature "
                                   "distance against K). The feature distance uses "
                                   "EfficientNet-Lite0 with real ImageNet weights (LPIPS's "
                                   "formula, no learned calibration: not LPIPS), reported "
                                   "beside LPIPS, whose AlexNet trunk has random weights where "
                                   "its ImageNet file is not in the torch hub cache.")
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
    p.add_argument("--start-step", type=int, default=None, metavar="T",
                   help="an experiment: sample from t_s = T instead of the adapter file's "
                        "measured start level (the report states it)")
    p.add_argument("--texture-colour", choices=TEXTURE_COLOURS, default=DEFAULT_TEXTURE_COLOUR,
                   help="how the K rows add the texture layer: luminance (the product's "
                        "default) or rgb (the paper's); see dtpm-restore --texture-colour")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--max-side", type=int, default=None,
                   help="downscale larger images to this side first (CPU budgets)")
    p.add_argument("--device", default="auto")
    p.add_argument("--save-images", type=Path, metavar="DIR",
                   help="also write one side-by-side strip per image into DIR: degraded, "
                        "initial prediction, the result at every K, clean")
    p.add_argument("--precision", default="fp32", choices=["fp32", "auto", "bf16", "fp16"],
                   help="inference precision of both engines (default fp32: reference "
                        "numbers that do not depend on the CPU)")
    p.add_argument("--singlepass", type=Path, metavar="FILE",
                   help="also score the single-pass engine of FILE on the same pairs, "
                        "for the task given by --task (row \"single-pass\")")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    _add_trust_option(p)

    p = sub.add_parser("compare", help="the engines side by side on held-out degradations",
                       description="Score the degraded input, a plain-L1 and a "
                                   "diffusion-trained single-pass network and DTPM at K = 1 and "
                                   "4 on clean photos degraded with the held-out settings "
                                   "(kernels, densities and strengths training never used); "
                                   "writes compare.csv and compare.md.")
    p.add_argument("--clean", type=Path, nargs="+", required=True,
                   help="held-out clean photos (files or folders)")
    p.add_argument("--singlepass", type=Path, help="the diffusion-trained single-pass file")
    p.add_argument("--plain", type=Path, help="the plain-L1 single-pass file")
    p.add_argument("--base", type=Path, help="DTPM base file")
    p.add_argument("--adapter", action="append", default=[], metavar="TASK=FILE",
                   help="a DTPM adapter per task, repeatable")
    p.add_argument("--tasks", default="motion-deblur,defocus-deblur,derain-dehaze,desnow,"
                                      "raindrop", help="comma-separated tasks")
    p.add_argument("--steps", default="1,4", help="DTPM K values (default 1,4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    _add_trust_option(p)

    p = sub.add_parser("export", help="write the base/adapter file from a run's checkpoint",
                       description="Write the weight file (safetensors + metadata: task, "
                                   "display name, base hash, config, metrics) of a Stage I or "
                                   "Stage II run, with its EMA weights; or, with --file, "
                                   "write a base, adapter or single-pass file again (a checkpoint "
                                   "whose run is gone) with --metrics and --storage.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", type=Path, help="the training run to export")
    source.add_argument("--file", type=Path,
                        help="a base, adapter or single-pass file to write again: its "
                             "weights and metadata are kept, --metrics replaces its metrics "
                             "and --storage its precision (fp32 only for a single-pass file)")
    p.add_argument("-o", "--out", type=Path, required=True, help="the .safetensors to write")
    p.add_argument("--raw", action="store_true", help="export the raw weights, not the EMA")
    p.add_argument("--metrics", type=Path, help="eval.csv whose summary goes into the metadata")
    p.add_argument("--storage", choices=("fp32", "fp16"), default="fp32",
                   help="how the file stores its weights: fp16 halves a base or adapter file "
                        "(and its graphs); every network still computes in fp32 on weights "
                        "rounded once to fp16 (default: fp32)")
    p.add_argument("--graphs", action="store_true",
                   help="also convert the file's networks to OpenVINO graphs in graphs/ beside "
                        "it (what the OpenVINO backend runs without torch)")
    _add_trust_option(p)

    p = sub.add_parser("graphs", help="convert an installed models folder's networks to "
                                      "OpenVINO graphs",
                       description="Convert every network of the models a folder's manifest "
                                   "lists (base, adapters with their initial predictors, the "
                                   "single-pass network) and the trade-off curve's feature "
                                   "network (EfficientNet-Lite0) to OpenVINO graphs in "
                                   "FOLDER/graphs, "
                                   "which the OpenVINO backend runs without torch (the CPU "
                                   "bundle ships them). Graphs already there and whole are "
                                   "kept.")
    p.add_argument("--models", type=Path, required=True,
                   help="the models folder (with manifest.json), e.g. resources/models")
    p.add_argument("--base", type=Path,
                   help="the base file for adapters in a folder without one (default: the "
                        "installed base)")
    _add_trust_option(p)
    return parser


def _add_trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(UNVERIFIED_OPTION, action="store_true", help=UNVERIFIED_HELP)


def _add_run_args(p: argparse.ArgumentParser, default_config: str, config_help: str) -> None:
    """The options every training command has: config, overrides, run folder, device,
    iterations, quiet."""
    p.add_argument("--config", default=default_config,
                   help=f"{config_help} (default: {default_config})")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--run-dir", type=Path, required=True,
                   help="folder for checkpoints, TensorBoard logs, samples and the export")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="training device (default: CUDA when available)")
    p.add_argument("--iterations", type=int, help="shortcut for --set loop.iterations=N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_trust_option(p)


def _add_singlepass_run_args(p: argparse.ArgumentParser, default_config: str) -> None:
    _add_run_args(p, default_config, CONFIG_HELP + ", singlepass_cpu")
    p.add_argument("--clean", type=Path, nargs="+",
                   help="clean photo folders/files (shortcut for data.clean)")


def _add_diffusion_switches(p: argparse.ArgumentParser) -> None:
    from .config import ORTHOGONALITY_MODES

    p.add_argument("--init", type=Path,
                   help="weights to start from: theta_0 (`singlepass pretrain`'s export)")
    p.add_argument("--no-generative", action="store_true", help="leave out the TMDDP loss")
    p.add_argument("--no-regulariser", action="store_true",
                   help="leave out the Omega-weighted regulariser towards theta_0")
    p.add_argument("--orthogonality", choices=ORTHOGONALITY_MODES,
                   help="gradient-orthogonality term: loss (1 - cos, back-propagated; "
                        "default), projection (PCGrad of the restoration gradient), detached "
                        "(the reference code: no gradient) or off")
    p.add_argument("--plain-l1", action="store_true",
                   help="every diffusion part off: plain L1 + 0.1 FFT L1 training")


def _add_singlepass_parser(sub) -> None:
    p = sub.add_parser("singlepass", help="the single-pass engine: pretrain, finetune, "
                                          "multitask, continue, calibrate, average",
                       description="Train the single-pass restoration network with diffusion "
                                   "objectives (DESIGN 6). Every training command resumes from "
                                   "RUN_DIR after a kill and runs under torchrun.")
    ssub = p.add_subparsers(dest="singlepass_command", required=True, metavar="STEP")
    q = ssub.add_parser("pretrain", help="TMDDP pre-training on clean photos",
                        description="Time-step matched diffusion pre-training: t ~ U{1..50}, "
                                    "x_t = x0 + sigma_bar_t eps, L1 of (x_t - f(x_t, t)) - x0. "
                                    "Writes RUN_DIR/pretrained.safetensors.")
    _add_singlepass_run_args(q, "singlepass_cpu")
    q = ssub.add_parser("finetune", help="GEF fine-tuning for one task (or plain L1)",
                        description="Generative-endowed fine-tuning: L1 + 0.1 FFT L1 of "
                                    "x_d - f(x_d, t_mat) against the clean image; with "
                                    "probability 0.1 the generative loss, the Omega regulariser "
                                    "and the orthogonality term. Writes RUN_DIR/<task>"
                                    ".safetensors.")
    _add_singlepass_run_args(q, "singlepass_cpu")
    q.add_argument("--task", help="task name (synthetic data exists for motion-deblur, "
                                  "defocus-deblur, derain-dehaze, desnow, raindrop)")
    q.add_argument("--t-mat", type=int, help="matched time step (default: the paper's table; "
                                             "`calibrate` finds one for a custom task)")
    _add_diffusion_switches(q)
    q = ssub.add_parser("multitask", help="MTUL incremental multi-task training with adaptors",
                        description="Tasks in ascending t_mat; step k trains on tasks 1..k with "
                                    "a fresh optimiser and schedule, theta_0 and Omega renewed. "
                                    "Writes RUN_DIR/singlepass.safetensors.")
    _add_singlepass_run_args(q, "singlepass_cpu")
    q.add_argument("--tasks", help="comma-separated tasks (default: the five)")
    q.add_argument("--step-iterations", type=int, help="iterations per incremental step")
    _add_diffusion_switches(q)
    q = ssub.add_parser("continue", help="more of MTUL's last step from a multi-task file",
                        description="Continue a multi-task single-pass network (MTUL's last "
                                    "step: GEF on every task at once, the adaptors trained, "
                                    "theta_0 and Omega anchored on --init), e.g. on new "
                                    "degradation ranges. Writes RUN_DIR/singlepass.safetensors.")
    _add_singlepass_run_args(q, "singlepass_cpu")
    q.add_argument("--tasks", help="comma-separated tasks (default: the five; the file must "
                                   "restore them all)")
    _add_diffusion_switches(q)
    q = ssub.add_parser("calibrate", help="find t_mat of a custom task by a scan over t",
                        description="Restore validation pairs at every t = 0..50 with a "
                                    "(pre-trained) single-pass network and keep the t with the "
                                    "best mean PSNR.")
    q.add_argument("--model", type=Path, required=True, help="a single-pass weights file")
    q.add_argument("--task", required=True, help="the task's name")
    q.add_argument("--degraded", type=Path, help="degraded folder (paired with --clean)")
    q.add_argument("--clean", type=Path, nargs="+", required=True,
                   help="clean folder (with --degraded) or clean photos (synthetic task)")
    q.add_argument("--max-images", type=int, default=8)
    q.add_argument("--size", type=int, default=128, help="centre crop of each pair (pixels)")
    q.add_argument("--device", default="auto")
    q.add_argument("-o", "--out", type=Path, help="write the scan as JSON here")
    _add_trust_option(q)
    q = ssub.add_parser("average", help="the weight average of files from one training line",
                        description="Write the uniform average of the weights of two or more "
                                    "single-pass files of one training line (the same network "
                                    "and tasks, e.g. a campaign line's slices): checkpoint "
                                    "averaging, which can keep the gains of slices that each "
                                    "traded one task for another (evaluate it before shipping "
                                    "it). The sources are listed in the file's training notes.")
    q.add_argument("files", type=Path, nargs="+", metavar="FILE",
                   help="single-pass weight files (at least two)")
    q.add_argument("-o", "--out", type=Path, required=True, help="the .safetensors to write "
                                                                  "(not one of the sources)")
    q.add_argument("--metrics", type=Path, help="eval.csv whose rows go into the metadata")
    _add_trust_option(q)


TRAINING_COMMANDS = ("stage1", "stage2", "singlepass")
"""Commands that write a checkpoint as they go (resumed by running them again)."""


def main(argv: Sequence[str] | None = None) -> int:
    command = "dtpm-train"
    try:
        args = build_parser().parse_args(argv)
        command = f"dtpm-train {args.command}"
        from dtpm_core.cli_warnings import plain_warnings
        plain_warnings(command)
        if getattr(args, "allow_unverified_models", False):
            allow_unverified()
        return COMMANDS[args.command](args)
    except DTPMError as exc:
        print(f"{command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        resume = ""
        if command.split(" ")[-1] in TRAINING_COMMANDS:
            resume = "; run the same command to resume from the last checkpoint, if one was saved"
        print(f"\n{command}: interrupted{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED


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
    from dtpm_core.engines.dtpm_restorer import Restorer

    from .evaluate import evaluate, write_all
    pairs = _eval_pairs(args)
    if args.max_images:
        pairs = pairs[: args.max_images]
    steps = tuple(int(s) for s in args.steps.split(","))
    restorer = Restorer(args.base, args.adapter, device=args.device, precision=args.precision)
    restorer.set_start_step(args.start_step)
    others = {}
    if args.singlepass is not None:
        from dtpm_core.engines.engine import SinglePassSpec, load_engine
        from dtpm_core.options import SINGLE_PASS
        if not args.task:
            raise DTPMError("--singlepass needs --task (the task the single-pass engine "
                            "restores)")
        single_pass = load_engine(SinglePassSpec(args.singlepass, args.task, device=args.device,
                                                 precision=args.precision))
        single_pass.prepare()  # a task the file lacks fails now
        others[SINGLE_PASS] = lambda image: single_pass.restore(image).image
    report = evaluate(restorer, pairs, steps, seed=args.seed, max_side=args.max_side,
                      save_images_to=args.save_images, other_methods=others,
                      texture_colour=args.texture_colour)
    files = write_all(report, args.out)
    written = args.out / "eval.md"
    print(written.read_text(encoding="utf-8") if written.exists() else report)
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _eval_pairs(args: argparse.Namespace) -> list:
    from .pairs import Pair, find_pairs, pairs_from_folders
    if args.layout == "folders":
        if not args.degraded or not args.clean:
            raise DTPMError("layout folders needs --degraded DIR and --clean DIR")
        return pairs_from_folders(args.degraded, args.clean[0])
    if args.layout == "synthetic":
        from dtpm_core.files.imageio import write_image

        from .data import degraded_photos
        if not args.task or not args.clean:
            raise DTPMError("layout synthetic needs --task T and --clean IMAGES/FOLDERS")
        folder = args.out / "pairs"
        pairs = []
        for path, degraded, clean in degraded_photos(args.clean, args.task, args.seed,
                                                     held_out=args.held_out_degradations):
            d, c = folder / "degraded" / f"{path.stem}.png", folder / "clean" / f"{path.stem}.png"
            write_image(d, degraded)
            write_image(c, clean)
            pairs.append(Pair(d, c))
        return pairs
    if not args.root:
        raise DTPMError(f"layout {args.layout} needs --root DIR")
    return find_pairs(args.layout, args.root, args.split)


def _compare(args: argparse.Namespace) -> int:
    from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec, load_engine
    from dtpm_core.evaluation.metrics import LPIPSMetric

    from .compare import compare, dtpm_methods, single_pass_method, write_reports

    methods: dict = {}
    for label, path in (("single-pass plain L1", args.plain),
                        ("single-pass diffusion-trained", args.singlepass)):
        if path:
            engine = load_engine(SinglePassSpec(path, tile=0, device=args.device))
            methods[label] = single_pass_method(engine)
    adapters = dict(item.split("=", 1) for item in args.adapter)
    ks = tuple(int(k) for k in args.steps.split(","))
    if args.base and adapters:
        engine = load_engine(DTPMSpec(args.base, steps=ks, seed=args.seed, tile=0,
                                      device=args.device))
        methods.update(dtpm_methods(engine, {t: Path(f) for t, f in adapters.items()}))
    if not methods:
        raise DTPMError("nothing to compare: give --singlepass, --plain and/or --base with "
                        "--adapter TASK=FILE")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    lpips = LPIPSMetric("alex", device="cpu")
    scores = compare(methods, tasks, args.clean, lpips, seed=args.seed, progress=print)
    note = (f"Held-out photos: {', '.join(str(c) for c in args.clean)}; held-out degradation "
            f"settings; LPIPS backbone: {lpips.backbone}.")
    write_reports(scores, ["input", *methods], note, args.out)
    print(f"wrote {args.out / 'compare.md'} and {args.out / 'compare.csv'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_run
    metrics = _read_metrics(args.metrics)
    if args.file is not None:
        return _store_again(args, metrics)
    path = export_run(args.run_dir, args.out, use_ema=not args.raw, metrics=metrics,
                      storage=args.storage)
    print(f"wrote {path}")
    if args.graphs:
        from .export import graphs_of_export

        _write_graphs(graphs_of_export(args.run_dir, path), path.parent)
    return 0


def _read_metrics(path: Path | None) -> dict | None:
    """An eval.csv's rows as a weight file's metrics, or None without one."""
    if path is None:
        return None
    import csv

    try:
        with open(path, newline="") as handle:
            return {"eval": list(csv.DictReader(handle))}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read the metrics file {path}: {exc}") from exc


def _store_again(args: argparse.Namespace, metrics: dict | None) -> int:
    from dtpm_core.modelfiles.weights import store_again

    for flag, given in (("--raw", args.raw), ("--graphs", args.graphs)):
        if given:
            raise ConfigError(f"{flag} needs --run-dir: a file holds one set of weights "
                              "(its EMA) and no base path; convert an installed folder's "
                              "graphs with `dtpm-train graphs --models FOLDER`")
    store_again(args.file, args.out, storage=args.storage, metrics=metrics)
    print(f"wrote {args.out} ({args.storage} storage)")
    return 0


def _graphs(args: argparse.Namespace) -> int:
    from dtpm_core.engines.graph_export import dtpm_graphs, feature_graphs, singlepass_graphs
    from dtpm_core.modelfiles.catalog import folder_catalog, load_catalog

    folder = folder_catalog(args.models)
    base = args.base or folder.base or load_catalog().base
    if base is None and folder.adapters:
        raise ConfigError(f"{args.models} lists adapters but no base; name it with --base")
    specs = dtpm_graphs(base) if folder.base is not None else []
    for entry in folder.adapters.values():
        specs += dtpm_graphs(base, entry.path)
    if folder.singlepass is not None:
        specs += singlepass_graphs(folder.singlepass)
    if not specs:
        raise ConfigError(f"{args.models} lists no models (manifest.json)")
    # + the trade-off curve's network; every graph the folder needs, so others are removed
    _write_graphs(specs + feature_graphs(), args.models, prune=True)
    return 0


def _write_graphs(specs: list, folder: Path, prune: bool = False) -> None:
    from dtpm_core.engines.graph_export import write_shipped_graphs

    converted = write_shipped_graphs(specs, folder, prune=prune)
    print(f"{len(specs)} graphs in {folder / 'graphs'} ({converted} converted now, "
          f"{len(specs) - converted} whole already)")


def _singlepass(args: argparse.Namespace) -> int:
    if args.singlepass_command == "calibrate":
        return _calibrate(args)
    if args.singlepass_command == "average":
        from .singlepass.average import average_singlepass

        sha = average_singlepass(args.files, args.out, _read_metrics(args.metrics))
        print(f"wrote {args.out} (the average of {len(args.files)} files, sha256 {sha[:12]})")
        return 0
    from . import dist
    from .config import load_config
    from .loop import run
    from .singlepass.train import build_continue, build_finetune, build_pretrain, run_multitask

    command = args.singlepass_command
    overrides = list(args.overrides)
    if args.iterations is not None:
        overrides.append(f"loop.iterations={args.iterations}")
    if args.clean:
        overrides.append("data.clean=[" + ",".join(f'"{p}"' for p in args.clean) + "]")
    if command != "pretrain":
        if args.init:
            overrides.append(f'singlepass.init="{args.init}"')
        if args.no_generative or args.plain_l1:
            overrides.append("singlepass.generative=false")
        if args.no_regulariser or args.plain_l1:
            overrides.append("singlepass.regulariser=false")
        if args.plain_l1:
            overrides.append('singlepass.orthogonality="off"')
        elif args.orthogonality:
            overrides.append(f'singlepass.orthogonality="{args.orthogonality}"')
    if command == "finetune":
        if args.task:
            overrides.append(f'singlepass.task="{args.task}"')
        if args.t_mat is not None:
            overrides.append(f"singlepass.t_mat={args.t_mat}")
    if command in ("multitask", "continue"):
        if args.tasks:
            names = [t.strip() for t in args.tasks.split(",") if t.strip()]
            overrides.append("singlepass.tasks=[" + ",".join(f'"{t}"' for t in names) + "]")
        if command == "multitask" and args.step_iterations is not None:
            overrides.append(f"singlepass.step_iterations={args.step_iterations}")
    config = load_config(args.config, overrides)
    info = dist.setup(args.device)
    try:
        init = config.singlepass.init or None
        if command == "pretrain":
            run(build_pretrain(config, args.run_dir), info, progress=not args.quiet)
        elif command == "finetune":
            task = config.singlepass.task
            job = build_finetune(config, args.run_dir, [task], init, f"{task}.safetensors")
            run(job, info, progress=not args.quiet)
        elif command == "continue":
            run(build_continue(config, args.run_dir, init), info, progress=not args.quiet)
        else:
            run_multitask(config, args.run_dir, init, info, progress=not args.quiet)
    finally:
        dist.teardown()
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from dtpm_core.backends.device import resolve_device
    from dtpm_core.files.atomic import write_text_atomic
    from dtpm_core.files.imageio import list_images, read_image
    from dtpm_core.singlepass.weights import load_singlepass

    from .pairs import pairs_from_folders
    from .singlepass.calibrate import calibrate

    def centre(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        s = min(args.size, h, w)
        top, left = (h - s) // 2, (w - s) // 2
        return np.ascontiguousarray(image[top:top + s, left:left + s])

    pairs = []
    if args.degraded:
        for pair in pairs_from_folders(args.degraded, args.clean[0])[: args.max_images]:
            pairs.append((centre(read_image(pair.degraded).rgb),
                          centre(read_image(pair.clean).rgb)))
    else:
        from dtpm_core.options import TASKS

        from .degradations import degrade
        if args.task not in TASKS:
            raise DTPMError(f"no synthetic degradation for {args.task!r}; give paired folders "
                            "with --degraded DIR --clean DIR")
        for index, path in enumerate(list_images(args.clean)[: args.max_images]):
            clean = centre(read_image(path).rgb)
            degraded = degrade(args.task, clean, np.random.default_rng([0, index]))
            pairs.append((np.clip(degraded, 0, 1).astype(np.float32), clean))
    if not pairs:
        raise DTPMError("no validation pairs found for the calibration")
    net, _ = load_singlepass(args.model)
    result = calibrate(net.to(resolve_device(args.device)), pairs, args.task)
    print(result.table())
    print(f"t_mat for {args.task}: {result.best} (use: dtpm-train singlepass finetune "
          f"--task {args.task} --t-mat {result.best} ...)")
    if args.out:
        write_text_atomic(args.out, json.dumps(
            {"task": args.task, "t_mat": result.best, "input_psnr": result.input_psnr,
             "psnr_by_t": result.scores, "model": str(args.model), "images": len(pairs)},
            indent=2))
    return 0


COMMANDS = {"prepare": _prepare, "stage1": _train, "stage2": _train, "eval": _eval,
            "export": _export, "graphs": _graphs, "singlepass": _singlepass,
            "compare": _compare}

if __name__ == "__main__":
    sys.exit(main())
