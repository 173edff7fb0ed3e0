"""`dtpm-restore`: restore photos from the command line with either engine: DTPM (a base and a
task adapter) or the single-pass network. The options given build the engine's spec
(`dtpm_core.engine.spec_from_options`); an option of the other engine is a usage error."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Cancelled, ConfigError, DTPMError
from .options import (
    DEFAULT_STEPS,
    DEFAULT_TILE,
    DEVICE_CHOICES,
    DTPM,
    ENGINES,
    MAX_SAMPLING_STEPS,
    MAX_STRENGTH,
    PRECISION_CHOICES,
    SINGLE_PASS,
)
from .output_plan import (
    OUTPUT_FORMATS,
    BatchItem,
    OutputPlan,
    check_output_folder,
    plan_outputs,
    record_output,
    sweep_stale_temp_files,
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
"""Ctrl-C: 128 + SIGINT, as shells report a process ended by the signal."""
SPEC_OPTIONS = ("model", "task", "ensemble", "base", "adapter", "steps", "seed", "strength",
                "eta", "tile", "device", "precision")
"""The options that go into the engine's spec (dtpm_core.engine), each named as the spec's
field. They default to None, so that only those given reach the spec (its own defaults hold
otherwise) and an option of the other engine is refused, not ignored."""
DEFAULT_ADAPTER = "motion-deblur"

if TYPE_CHECKING:
    from .engine import Engine, EngineSpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtpm-restore",
        description="Restore photos (deblur, derain, desnow, ...) with a Diffusion Texture Prior "
                    "Model (--engine dtpm) or its single-pass network (--engine single-pass). "
                    "Folders are searched recursively; inputs are never overwritten, "
                    "two inputs never share an output (a taken name gets _restored), and "
                    "results inside an input folder are never read back as inputs.",
        epilog="Options marked 'DTPM engine' or 'single-pass engine' belong to that engine: "
               "giving one with the other engine is a usage error. "
               "Exit status: 0 when every image was restored, 1 when some failed (a summary "
               "lists them), 2 for a usage or model error or an output folder that cannot be "
               "written (found before any image is computed), 130 when interrupted with "
               "Ctrl-C (after the summary; finish later with --skip-existing).")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files or folders (PNG, JPEG, TIFF, WebP, BMP)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                        help="folder for the results (created if needed); files inside input "
                             "folders keep their relative paths")
    parser.add_argument("--engine", choices=ENGINES, default=DTPM,
                        help="dtpm: the diffusion texture prior (K steps); single-pass: one "
                             "forward pass of the diffusion-trained network (the installed one, or "
                             "--model) (default: dtpm)")
    parser.add_argument("--model", metavar="PATH",
                        help="single-pass engine: the .safetensors model file (default: the "
                             "installed single-pass model)")
    parser.add_argument("--task", help="single-pass engine: the task to restore, one of those "
                                       "in the model file (default: the file's only task; a "
                                       "file with several needs --task)")
    parser.add_argument("--ensemble", action="store_true", default=None,
                        help="single-pass engine: average the 8 flips/rotations (8x slower)")
    parser.add_argument("--adapter", metavar="NAME|PATH",
                        help="DTPM engine: the task adapter, an installed task name such as "
                             f"{DEFAULT_ADAPTER}, or a .safetensors file (default: the "
                             f"installed {DEFAULT_ADAPTER}, if any)")
    parser.add_argument("--base", metavar="PATH",
                        help="DTPM engine: the base model .safetensors (default: the installed "
                             "base model)")
    parser.add_argument("--steps", type=int, metavar="K",
                        help=f"DTPM engine: DDIM steps, 1-{MAX_SAMPLING_STEPS}: fewer favour "
                             "fidelity (PSNR), more favour texture and realism (LPIPS) "
                             f"(default: {DEFAULT_STEPS})")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="DTPM engine: seed of the sampling noise; the same seed gives "
                             "identical output (default: 0)")
    parser.add_argument("--strength", type=float, metavar="A",
                        help="DTPM engine: texture strength, the scale of the generated "
                             "texture layer, 0 = the initial prediction only, 1 = as trained, "
                             f"up to {MAX_STRENGTH:g} (default: 1)")
    parser.add_argument("--eta", type=float,
                        help="DTPM engine: DDIM stochasticity, 0 = deterministic DDIM "
                             "(default: 0)")
    parser.add_argument("--tile", type=int, metavar="N",
                        help="both engines: tile size in pixels for large images, 0 = whole "
                             "image at once; halved automatically on out-of-memory "
                             f"(default: {DEFAULT_TILE})")
    parser.add_argument("--device", choices=DEVICE_CHOICES,
                        help="both engines: compute device (default: auto = CUDA, then MPS, "
                             "then CPU)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES,
                        help="both engines: network precision, auto = bf16 weights and "
                             "autocast on a CPU with AMX or AVX512-BF16 (2-3x faster), fp32 "
                             "elsewhere; a choice the device cannot run is an error (bf16 on "
                             "a CPU without it, fp16 on any CPU) (default: auto)")
    parser.add_argument("--format", default="same", choices=["same", *sorted(OUTPUT_FORMATS)],
                        help="output format (default: same as the input)")
    parser.add_argument("--quality", type=int, default=95,
                        help="JPEG/WebP quality 1-100 (default: 95)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave results that already exist in OUTDIR untouched: rerun "
                             "the same command with it to finish an interrupted run")
    parser.add_argument("--no-recursive", action="store_true",
                        help="do not descend into sub-folders of input folders")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .device import configure_threads

    configure_threads()  # the same count as the app and the benchmarks
    if args.steps is not None and not 1 <= args.steps <= MAX_SAMPLING_STEPS:
        print(f"dtpm-restore: --steps must be between 1 and {MAX_SAMPLING_STEPS}",
              file=sys.stderr)
        return EXIT_USAGE
    if args.strength is not None and not 0.0 <= args.strength <= MAX_STRENGTH:
        print(f"dtpm-restore: --strength must be between 0 and {MAX_STRENGTH:g}",
              file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.quality <= 100:
        print("dtpm-restore: --quality must be between 1 and 100", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in args.inputs if not (Path(p).exists() or Path(p).is_symlink())]
    try:
        _check_engine_options(args)
        plan = plan_outputs([p for p in args.inputs if p not in missing], args.output,
                            args.format, recursive=not args.no_recursive)
        check_output_folder(plan, args.output)
        engine = _load_engine(args)
    except (DTPMError, ValueError) as exc:
        print(f"dtpm-restore: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dtpm-restore: interrupted before any image was restored", file=sys.stderr)
        return EXIT_INTERRUPTED
    sweep_stale_temp_files(plan, args.output)
    for path, reason in plan.skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    for path, reason in plan.renamed:
        print(f"note: {path}: {reason}", file=sys.stderr)
    return _run_batch(args, plan, engine, missing)


def _run_batch(args: argparse.Namespace, plan: OutputPlan, engine: Engine,
               missing: list[str]) -> int:
    """Restore every item of `plan`; one failure is reported and the batch goes on. Ctrl-C
    stops it and still prints the summary."""
    from tqdm import tqdm

    items = plan.items
    failures: list[tuple[str, str]] = [(p, "no such file or folder") for p in missing]
    done = skipped = processed = 0
    interrupted = False
    started = time.perf_counter()
    files_bar = tqdm(items, unit="image", disable=args.quiet or len(items) < 2,
                     desc="images", position=0)
    try:
        for item in files_bar:
            if args.skip_existing and item.target.exists():
                skipped += 1
            else:
                status, message = _restore_one(args, plan, item, engine, len(items) > 1)
                if status == "done":
                    done += 1
                else:
                    failures.append((str(item.source), message))
                    tqdm.write(f"failed: {item.source}: {message}", file=sys.stderr)
            processed += 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        files_bar.close()
    seconds = time.perf_counter() - started
    summary = f"restored {done} of {len(items) + len(missing)} image(s) into {args.output} " \
              f"in {seconds:.1f} s"
    if skipped:
        summary += f" ({skipped} already there, skipped)"
    print(summary)
    if interrupted:
        print(f"interrupted: {len(items) - processed} image(s) not processed; run the same "
              "command with --skip-existing to finish", file=sys.stderr)
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _restore_one(args: argparse.Namespace, plan: OutputPlan, item: BatchItem, engine: Engine,
                 nested: bool) -> tuple[str, str]:
    """Read, restore, write and record one item: ("done", "") or ("failed", reason)."""
    from tqdm import tqdm

    from .imageio import read_image, write_image

    passes = tqdm(total=0, unit="pass", desc=item.source.name, leave=False,
                  disable=args.quiet, position=1 if nested else 0)

    def on_progress(p, passes=passes) -> None:
        passes.total = p.total
        passes.set_postfix_str(p.stage, refresh=False)
        passes.update(p.done - passes.n)

    try:
        loaded = read_image(item.source)
        restored = engine.restore(loaded.rgb, progress=on_progress)
        write_image(item.target, restored.image, like=loaded, quality=args.quality)
    except Cancelled:
        raise
    except DTPMError as exc:  # unreadable input, broken model output, write failure, ...
        return "failed", str(exc)
    finally:
        passes.close()
    try:
        record_output(plan, args.output, item.target)
    except OSError as exc:
        tqdm.write(f"{item.target}: written, but the list of results in {args.output} "
                   f"could not be updated ({exc})", file=sys.stderr)
    for note in restored.notes:
        tqdm.write(f"{item.source}: {note}")
    return "done", ""


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The spec options the user gave (those left None were not)."""
    return {name: getattr(args, name) for name in SPEC_OPTIONS
            if getattr(args, name) is not None}


def _check_engine_options(args: argparse.Namespace) -> None:
    """An option of the other engine is an error, before any file is looked at."""
    from .engine import refused_options

    refused = refused_options(args.engine, _given_options(args))
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ConfigError(f"{flags}: not an option of the {args.engine} engine; it takes "
                          f"{_engine_flags(args.engine)}")


def _engine_flags(engine: str) -> str:
    from .engine import engine_options

    names = [n for n in engine_options(engine) if n in SPEC_OPTIONS]
    return ", ".join("--" + name.replace("_", "-") for name in names)


def _engine_spec(args: argparse.Namespace) -> EngineSpec:
    """The spec of the options given, with the model files resolved (the installed ones
    unless given)."""
    from .catalog import load_catalog, resolve_adapter, resolve_base, resolve_singlepass
    from .engine import spec_from_options

    options = _given_options(args)
    if args.engine == SINGLE_PASS:
        options["model"] = resolve_singlepass(args.model)
    else:
        catalog = load_catalog()
        options["base"] = resolve_base(args.base, catalog)
        if args.adapter is None and DEFAULT_ADAPTER not in catalog.adapters:
            raise DTPMError("no adapter given and none installed: pass --adapter NAME|PATH")
        options["adapter"] = resolve_adapter(args.adapter or DEFAULT_ADAPTER, catalog)
    return spec_from_options(args.engine, **options)


def _load_engine(args: argparse.Namespace) -> Engine:
    """Load the chosen engine once; what would fail every image (no task of that name, a
    file with several tasks and no --task) fails here, as a usage error."""
    from .engine import load_engine

    engine = load_engine(_engine_spec(args))
    engine.prepare()
    return engine


if __name__ == "__main__":
    sys.exit(main())
