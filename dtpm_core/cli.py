"""`dtpm-restore`: restore photos from the command line with either engine: DTPM (a base and a
task adapter) or the single-pass network. The options given build the engine's spec
(`dtpm_core.engines.engine.spec_from_options`); an option of the other engine is a usage error."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cli_warnings import plain_warnings
from .errors import Cancelled, ConfigError, DTPMError
from .files.batch_report import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    BatchEnd,
    failures_before_running,
    report_batch_end,
)
from .files.output_plan import (
    ON_CONFLICT,
    OUTPUT_FORMATS,
    BatchItem,
    OutputPlan,
    check_output_folder,
    plan_outputs,
    record_output,
    sweep_stale_temp_files,
)
from .modelfiles.unverified import UNVERIFIED_HELP, UNVERIFIED_OPTION, allow_unverified
from .options import (
    BACKEND_CHOICES,
    DEFAULT_STEPS,
    DEFAULT_STRENGTH,
    DEFAULT_TEXTURE_COLOUR,
    DEFAULT_TILE,
    DEVICE_CHOICES,
    DTPM,
    ENGINES,
    MAX_SAMPLING_STEPS,
    MAX_STRENGTH,
    MIN_TILE,
    PRECISION_CHOICES,
    SINGLE_PASS,
    TEXTURE_COLOURS,
)
from .progress_bars import progress_bar, write_line

EARLIER_RESULTS_SHOWN = 10
"""Inputs left out as results of earlier runs that are named one by one; the rest counted."""
SPEC_OPTIONS = ("model", "task", "ensemble", "base", "adapter", "steps", "seed", "strength",
                "texture_colour", "eta", "tile", "device", "precision", "backend")
"""The options that go into the engine's spec (dtpm_core.engines.engine), each named as the spec's
field. They default to None, so that only those given reach the spec (its own defaults hold
otherwise) and an option of the other engine is refused, not ignored."""
DEFAULT_ADAPTER = "motion-deblur"

if TYPE_CHECKING:
    from .engines.engine import Engine, EngineSpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtpm-restore",
        description="Restore photos (deblur, derain, desnow, ...) with a Diffusion Texture Prior "
                    "Model (--engine dtpm) or its single-pass network (--engine single-pass). "
                    "Folders are searched recursively; inputs are never overwritten, "
                    "two inputs never share an output (a taken name gets _restored), a file "
                    "that is not this tool's result of the same photo is never replaced "
                    "(see --on-conflict), and results (marked inside the file) are never "
                    "restored again.",
        epilog="Options marked 'DTPM engine' or 'single-pass engine' belong to that engine: "
               "giving one with the other engine is a usage error. "
               "Exit status: 0 when every image was restored (or left out as asked: "
               "--skip-existing, --on-conflict skip), 1 when some failed or an input could "
               "not be read (a FIFO, a folder without images, an animation, a photo too large "
               "for the memory left; a summary lists them), 2 for a usage or model error, an "
               "output folder that cannot be written or --on-conflict error finding a taken "
               "name (found before any image is computed), 130 when interrupted with Ctrl-C "
               "(after the summary; finish later with --skip-existing).")
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
                             f"{DEFAULT_ADAPTER} (it wins over a file or folder of that name "
                             "in the current folder: write ./NAME for the file), or a "
                             f".safetensors file (default: the installed {DEFAULT_ADAPTER}, "
                             "if any)")
    parser.add_argument("--base", metavar="PATH",
                        help="DTPM engine: the base model .safetensors (default: the installed "
                             "base model)")
    parser.add_argument("--steps", type=int, metavar="K",
                        help=f"DTPM engine: DDIM steps, 1-{MAX_SAMPLING_STEPS}: fewer favour "
                             "fidelity (PSNR), more favour texture and realism (LPIPS) "
                             "(default: the K recommended for the adapter in its model "
                             "manifest, measured per task, e.g. 1 for the bundled "
                             f"motion-deblur; {DEFAULT_STEPS} for an adapter without one; "
                             "a note says which values came from there)")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="DTPM engine: seed of the sampling noise; the same seed gives "
                             "identical output (default: 0)")
    parser.add_argument("--strength", type=float, metavar="A",
                        help="DTPM engine: texture strength, the scale of the generated "
                             "texture layer, 0 = the initial prediction only (no DDIM steps "
                             f"run), 1 = as trained, up to {MAX_STRENGTH:g} (default: the "
                             "strength recommended for the adapter in its model manifest, "
                             "e.g. 0.25 for the bundled motion-deblur and 0 for derain-dehaze; "
                             f"{DEFAULT_STRENGTH:g} for an adapter without one)")
    parser.add_argument("--texture-colour", choices=TEXTURE_COLOURS,
                        help="DTPM engine: how the texture layer is added: luminance = its "
                             "brightness only, the initial prediction's colours kept (no "
                             "coloured specks); rgb = every channel's own, as the paper does "
                             f"(default: {DEFAULT_TEXTURE_COLOUR})")
    parser.add_argument("--eta", type=float,
                        help="DTPM engine: DDIM stochasticity, 0 = deterministic DDIM "
                             "(default: 0)")
    parser.add_argument("--tile", type=int, metavar="N",
                        help="both engines: the largest tile side in pixels for large images "
                             "(tiles overlap by up to 128 px and are sized to the photo), 0 = "
                             f"whole image at once, else at least {MIN_TILE}; smaller "
                             "automatically "
                             "for a photo that would not fit in the memory left, and halved "
                             f"on out-of-memory (default: {DEFAULT_TILE})")
    parser.add_argument("--device", choices=DEVICE_CHOICES,
                        help="both engines: compute device (default: auto = CUDA, then MPS, "
                             "then CPU)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES,
                        help="both engines: network precision, auto = bf16 weights and "
                             "autocast on a CPU with AMX or AVX512-BF16 (2-3x faster), fp32 "
                             "elsewhere; a choice the device cannot run is an error (bf16 on "
                             "a CPU without it, fp16 on any CPU) (default: auto)")
    parser.add_argument("--backend", choices=BACKEND_CHOICES,
                        help="both engines: where the networks run, auto = OpenVINO where it "
                             "was measured faster (installed, an x86-64 CPU, no GPU for "
                             "torch), torch elsewhere; openvino needs the CPU and "
                             "converts the networks once, on first use, into a cache "
                             "(default: auto)")
    parser.add_argument("--format", default="same", choices=["same", *sorted(OUTPUT_FORMATS)],
                        help="output format (default: same as the input)")
    parser.add_argument("--quality", type=int, default=95,
                        help="JPEG/WebP quality 1-100 (default: 95)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave results of these photos that already exist in OUTDIR "
                             "untouched (found from the mark inside each result): rerun the "
                             "same command with it to finish an interrupted run")
    parser.add_argument("--on-conflict", choices=ON_CONFLICT, default="rename",
                        help="when a file that is not this tool's result of the same photo "
                             "has a result's name (your own file, a result of another photo, "
                             "a read-only file): rename = write the result under the next free "
                             "name (_restored, _restored-2, ...) and say so; skip = leave that "
                             "photo out; error = restore nothing and exit 2; overwrite = "
                             "replace the file (never an input, a read-only file, a link or a "
                             "folder) (default: rename)")
    parser.add_argument("--overwrite", dest="on_conflict", action="store_const",
                        const="overwrite", help="the same as --on-conflict overwrite")
    parser.add_argument("--no-recursive", action="store_true",
                        help="do not descend into sub-folders of input folders")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument(UNVERIFIED_OPTION, action="store_true", help=UNVERIFIED_HELP)
    # --- batch on a Ray cluster: --cluster [ADDRESS] and its options (dtpm_core/cluster) ---
    from .cluster.arguments import add_cluster_arguments

    add_cluster_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plain_warnings("dtpm-restore")  # one line each, library deprecation notices silenced
    if args.allow_unverified_models:
        allow_unverified()
    from .backends.device import configure_threads

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
    if args.tile is not None and (args.tile < 0 or 0 < args.tile < MIN_TILE):
        print(f"dtpm-restore: --tile must be 0 (the whole image at once) or at least "
              f"{MIN_TILE} pixels: smaller tiles are mostly overlap and network margin, many "
              "times slower and visibly worse", file=sys.stderr)
        return EXIT_USAGE
    from .cluster.arguments import cluster_usage_error  # --- batch on a Ray cluster ---

    if (problem := cluster_usage_error(args)) is not None:
        print(f"dtpm-restore: {problem}", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in args.inputs if not (Path(p).exists() or Path(p).is_symlink())]
    try:
        _check_engine_options(args)
        plan = plan_outputs([p for p in args.inputs if p not in missing], args.output,
                            args.format, recursive=not args.no_recursive,
                            on_conflict=args.on_conflict)
        if args.on_conflict == "error" and plan.conflicts:
            raise ConfigError(_conflict_error(plan))
        check_output_folder(plan, args.output)
        spec, defaults_note = _engine_spec(args)
        if args.cluster is None:  # (on a Ray cluster the workers load it from the spec)
            engine = _load_engine(spec)
    except (DTPMError, ValueError) as exc:
        print(f"dtpm-restore: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dtpm-restore: interrupted before any image was restored", file=sys.stderr)
        return EXIT_INTERRUPTED
    sweep_stale_temp_files(plan, args.output)
    for path, reason in plan.skipped:
        print(f"skipped: {path}: {reason}", file=sys.stderr)
    for path, reason in plan.earlier_results[:EARLIER_RESULTS_SHOWN]:
        print(f"note: {path}: {reason}", file=sys.stderr)
    if len(plan.earlier_results) > EARLIER_RESULTS_SHOWN:
        print(f"note: ... and {len(plan.earlier_results) - EARLIER_RESULTS_SHOWN} more results "
              "of earlier runs, not restored again", file=sys.stderr)
    for path, reason in plan.renamed:
        print(f"note: {path}: {reason}", file=sys.stderr)
    if defaults_note:
        print(f"note: {defaults_note}", file=sys.stderr)
    for path, reason in plan.conflicts:
        print(f"{'skipped' if args.on_conflict == 'skip' else 'failed'}: {path}: {reason}",
              file=sys.stderr)
    if args.cluster is not None:  # --- batch on a Ray cluster (dtpm_core/cluster) ---
        from .cluster.driver import run_on_cluster

        return run_on_cluster(args, plan, spec, missing, restore_one=_restore_one)
    return _run_batch(args, plan, engine, missing)


def _run_batch(args: argparse.Namespace, plan: OutputPlan, engine: Engine,
               missing: list[str]) -> int:
    """Restore every item of `plan`; one failure is reported and the batch goes on. Ctrl-C
    stops it and still prints the summary."""
    items = plan.items
    failures = failures_before_running(plan, missing, args.on_conflict)
    renamed = {source for source, _ in plan.renamed}
    done = skipped = processed = done_renamed = 0
    interrupted = False
    started = time.perf_counter()
    files_bar = progress_bar(items, quiet=args.quiet, unit="image", disable=len(items) < 2,
                             desc="images", position=0)
    try:
        for item in files_bar:
            if args.skip_existing and item.existing == "result":
                skipped += 1
            else:
                status, message = _restore_one(args, plan, item, engine, len(items) > 1)
                if status == "done":
                    done += 1
                    done_renamed += item.source in renamed
                else:
                    failures.append((str(item.source), message))
                    write_line(f"failed: {item.source}: {message}", file=sys.stderr)
            processed += 1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        files_bar.close()
    end = BatchEnd(str(args.output), len(items) + len(missing) + len(plan.conflicts), done,
                   skipped, done_renamed, len(items) - processed, failures,
                   time.perf_counter() - started, interrupted)
    return report_batch_end(end, plan, args.on_conflict)


def _conflict_error(plan: OutputPlan) -> str:
    lines = [f"{len(plan.conflicts)} result name(s) are taken by files that dtpm-restore did "
             "not write for these photos; nothing was restored (--on-conflict error):"]
    lines += [f"  {path}: {reason}" for path, reason in plan.conflicts]
    lines.append("choose another output folder, or pass --on-conflict rename (a free name, "
                 "the default), --on-conflict skip or --overwrite (replace them)")
    return "\n".join(lines)


def _restore_one(args: argparse.Namespace, plan: OutputPlan, item: BatchItem, engine: Engine,
                 nested: bool) -> tuple[str, str]:
    """Read, restore, write and record one item: ("done", "") or ("failed", reason). A photo
    that would not fit in the memory left is tried with smaller tiles, else left out; a
    MemoryError fails this item only."""
    from .files.imageio import image_size, read_image, write_image
    from .files.output_marker import OutputMarker

    size = image_size(item.source)
    spec, problem = _fit_memory(item, size, engine)
    if problem:
        return "failed", problem
    if size is not None:
        _compile_ahead(engine, size, spec)

    passes = progress_bar(quiet=args.quiet, total=0, unit="pass", desc=item.source.name,
                          leave=False, position=1 if nested else 0)

    def on_progress(p, passes=passes) -> None:
        passes.total = p.total
        passes.set_postfix_str(p.stage, refresh=False)
        passes.update(p.done - passes.n)

    try:
        loaded = read_image(item.source)
        restored = engine.restore(loaded.rgb, spec, progress=on_progress)
        # the mark says whose result it is; a name free when planned stays someone else's
        # if a file appeared there meanwhile (replace only what the plan found to replace)
        write_image(item.target, restored.image, like=loaded, quality=args.quality,
                    marker=OutputMarker.for_input(loaded), replace=bool(item.existing))
    except Cancelled:
        raise
    except DTPMError as exc:  # unreadable input, broken model output, write failure, ...
        return "failed", str(exc)
    except MemoryError:
        return "failed", ("out of memory while restoring it (the estimate said it would fit); "
                          "close other programs, or restore it with a smaller --tile")
    finally:
        passes.close()
    try:
        record_output(plan, args.output, item.target)
    except OSError as exc:
        write_line(f"{item.target}: written, but the list of results in {args.output} "
                   f"could not be updated ({exc})", file=sys.stderr)
    for note in restored.notes:
        write_line(f"{item.source}: {note}")
    return "done", ""


def _compile_ahead(engine: Engine, size: tuple[int, int], spec: EngineSpec | None) -> None:
    """Let OpenVINO compile the networks for the photo's size while it is read (about 0.1 s
    of a 2.4 MP photo's run). Only a head start: whatever fails here fails again, and is
    reported, when the photo is restored."""
    try:
        engine.compile_ahead([size], spec)
    except Exception:  # noqa: BLE001 - the restore repeats it and reports the error
        pass


def _fit_memory(item: BatchItem, size: tuple[int, int] | None, engine: Engine
                ) -> tuple[EngineSpec | None, str]:
    """(the spec to restore `item` with: None = the engine's own, or one with a smaller
    tile; a reason to leave it out, or "") from the memory estimate of its `size`."""
    from .engines import memory_budget

    available = memory_budget.available_memory_bytes() if size is not None else None
    if size is None or available is None:
        return None, ""  # unknown: read_image says what is wrong; no limit known
    kind, tile = engine.spec.engine, engine.spec.tile
    device = str(getattr(engine.device, "type", "cpu"))
    fitted = memory_budget.fit_tile(kind, *size, tile, device, available, engine.backend)
    if fitted is None:
        need = memory_budget.estimate_bytes(kind, *size, MIN_TILE, device, engine.backend)
        return None, (f"needs about {memory_budget.describe_bytes(need)} of memory "
                      f"({size[1]}x{size[0]} pixels), {memory_budget.describe_bytes(available)}"
                      " available: skipped; close other programs or restore it on a machine "
                      "with more memory")
    if fitted == tile:
        return None, ""
    write_line(f"{item.source}: tile {fitted} instead of {tile or 'off'}, to fit in the "
               f"{memory_budget.describe_bytes(available)} of memory available",
               file=sys.stderr)
    return dataclasses.replace(engine.spec, tile=fitted), ""


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The spec options the user gave (those left None were not)."""
    return {name: getattr(args, name) for name in SPEC_OPTIONS
            if getattr(args, name) is not None}


def _check_engine_options(args: argparse.Namespace) -> None:
    """An option of the other engine is an error, before any file is looked at."""
    from .engines.engine import refused_options

    refused = refused_options(args.engine, _given_options(args))
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ConfigError(f"{flags}: not an option of the {args.engine} engine; it takes "
                          f"{_engine_flags(args.engine)}")


def _engine_flags(engine: str) -> str:
    from .engines.engine import engine_options

    names = [n for n in engine_options(engine) if n in SPEC_OPTIONS]
    return ", ".join("--" + name.replace("_", "-") for name in names)


def _engine_spec(args: argparse.Namespace) -> tuple[EngineSpec, str]:
    """(the spec of the options given, with the model files resolved (the installed ones
    unless given) and K and strength, where not given, the adapter's recommended ones;
    a note saying which values came from the recommendation, or "")."""
    from .engines.engine import spec_from_options
    from .modelfiles.catalog import (
        entry_for_adapter,
        load_catalog,
        resolve_adapter,
        resolve_base,
        resolve_singlepass,
    )

    options = _given_options(args)
    if args.engine == SINGLE_PASS:
        options["model"] = resolve_singlepass(args.model)
        return spec_from_options(args.engine, **options), ""
    catalog = load_catalog()
    options["base"] = resolve_base(args.base, catalog)
    if args.adapter is None and DEFAULT_ADAPTER not in catalog.adapters:
        raise DTPMError("no adapter given and none installed: pass --adapter NAME|PATH")
    options["adapter"] = resolve_adapter(args.adapter or DEFAULT_ADAPTER, catalog)
    entry = entry_for_adapter(options["adapter"], catalog)
    recommended = entry.recommended if entry is not None else None
    taken = []
    if recommended is not None:
        if args.steps is None:
            options["steps"] = recommended.steps
            taken.append(f"K={recommended.steps}")
        if args.strength is None:
            options["strength"] = recommended.strength
            taken.append(f"texture strength {recommended.strength:g}")
    spec = spec_from_options(args.engine, **options)
    notes = []
    if taken and entry is not None:
        notes.append(f"{' and '.join(taken)}: recommended for {entry.task} in its model "
                     "manifest (measured per task); --steps and --strength override it")
    if spec.strength == 0.0 and args.steps is not None:
        notes.append(f"at texture strength 0 the result is the initial prediction: --steps "
                     f"{args.steps} changes nothing (give --strength, e.g. "
                     f"{DEFAULT_STRENGTH:g}, for the texture layer)")
    return spec, "; ".join(notes)


def _load_engine(spec: EngineSpec) -> Engine:
    """Load the chosen engine once; what would fail every image (no task of that name, a
    file with several tasks and no --task) fails here, as a usage error."""
    from .engines.engine import load_engine

    engine = load_engine(spec)
    engine.prepare()
    return engine


if __name__ == "__main__":
    sys.exit(main())
