"""The training campaign: continue every stage from the committed checkpoints, in the
background, for as long as the session lasts (issue 20).

    nohup .venv/bin/python scripts/campaign.py --hours 2.5 --commit > runs/campaign.log 2>&1 &
    # before the session ends: stop it (it finishes nothing half-way)
    kill -TERM <pid>

With `--commit` every finished slice commits its checkpoint and log row at once (`git commit
-- <those files>`: nothing else staged goes with it), so a session that ends without a word
keeps every finished slice; without it, commit checkpoints/ by hand.

Stages: the Stage I base (`base`), the Stage II adapters (one or more lines per task) and
the single-pass network (`singlepass`); `--stages` picks some, in turn.

The campaign runs *slices*: one finished `dtpm-train` run of a stage (a few hundred to a few
thousand iterations with warm-up and cosine, calibration measured at its end) that starts
from `checkpoints/<stage>.safetensors` and, when it finishes, replaces that file (atomically)
and appends a row to `checkpoints/campaign.tsv`. Stages take turns (`--stages`, default the
plan's order). A killed campaign loses at most the slice in flight, and rerunning the same
command resumes that slice from its run folder (runs/campaign/<stage>-<slice>). One CPU
thread per run (`OMP_NUM_THREADS`, default 1), so the session's other work keeps a core.

A stage with no checkpoint starts from the shipped model (resources/models/<task>.safetensors,
or singlepass.safetensors for the single-pass stage), or from scratch for a stage with another
predictor. Shipping is separate: a checkpoint replaces a model in resources/models/ only after
the full `dtpm-train eval` says it is better (README, "Training campaign").

While a slice runs, give other work on the machine one thread (OMP_NUM_THREADS=1): two
threads on the core the campaign leaves make every parallel region wait for the descheduled
one (a test run measured 15x slower).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
CHECKPOINTS = ROOT / "checkpoints"
BASE = ROOT / "resources" / "models" / "base.safetensors"

SHIPPED = ROOT / "resources" / "models"
PREPARED = ROOT / "data" / "prepared128"
"""Stage I's patches (clean and RTV-smoothed), as `bundled_stage1.toml` names them; the
campaign prepares them from data/clean_train when they are missing."""

# The predictor the equal-CPU-time sweep chose (README "Training campaign"): the shipped one,
# continued. From scratch, the wider predictors with a pixel-unshuffle stem (receptive field
# 47 and 81 px against 17) gained +0.09 / +0.02 dB on the held-out judge after the same 15
# CPU-minutes that took the warm P16 from +0.24 to +0.35 dB. Continued to 2080 iterations the
# stem predictor reached +0.22 dB, where P16 needed about 10900: it runs beside as its own
# stage (motion-deblur-p48) until it overtakes the shipped line.
CHOSEN_PREDICTOR: dict[str, object] = {}
P48_STEM2 = {"predictor.width": 48, "predictor.stem": 2, "predictor.enc_blocks": [1, 1, 2],
             "predictor.dec_blocks": [1, 1, 1], "predictor.middle_blocks": 2}

# The predictor on EfficientNet-Lite0 (ImageNet encoder, NAF decoder of width 16; issue 20,
# item 4): receptive field 87 px by benchmarks/bench_train_setups.py's measure (P16: 17).
E16_IMAGENET = {"predictor.encoder": "efficientnet-lite0", "predictor.enc_blocks": [],
                "predictor.dec_blocks": [1, 1, 1, 1, 1], "predictor.width": 16}

# the campaign's single-pass slices: 128 px crops like the adapters (the bundled recipe used
# 96 px), a lower peak rate than MTUL's fresh steps (1e-3)
SINGLEPASS_SLICE = {"data.crop": 128, "data.batch_size": 4, "optim.lr": 5e-4}

# fine-tuning the shipped single-pass file: a fifth of the line's rate
SINGLEPASS_GENTLE = {"optim.lr": 1e-4}

# the single-pass network with a stem: the shipped tiny preset's lower three levels on 2 x 2
# cells (trainer.singlepass.stem makes the warm start)
SINGLEPASS_STEM2 = {"singlepass.overrides.stem": 2, "singlepass.overrides.width": 32,
                    "singlepass.overrides.enc_blocks": [1, 1, 1],
                    "singlepass.overrides.dec_blocks": [1, 1, 1]}

RAINDROP_LOSS = {"stage2.predictor_l1_weight": 0.0, "stage2.predictor_mse_weight": 20.0}


@dataclass(frozen=True)
class Stage:
    """One thing the campaign trains: a Stage II task adapter (`kind` "stage2", `task` its
    task), the Stage I base (`kind` "stage1", the texture prior every adapter runs on) or the
    multi-task single-pass network (`kind` "singlepass", MTUL's last step continued on every
    task)."""
    name: str
    task: str
    iterations: int  # per slice
    kind: str = "stage2"
    config: str = "campaign_stage2"
    predictor: dict = field(default_factory=lambda: dict(CHOSEN_PREDICTOR))
    # torch.compile the step, in bf16 on a CPU with native bf16 (AMX / AVX512-BF16): measured
    # on a Sapphire Rapids core (benchmarks/bench_train_setups.py --compile --stage1) 2.1x the
    # eager fp32 step for Stage I, 2.9x for Stage II with P16, 1.35x with E16; compiled fp32
    # (a CPU without native bf16) 1.35x / 1.8x / 1.15x
    compiled_step: bool = True
    # the step in bf16 (autocast, channels-last images) where the CPU has native bf16, also
    # without compiling (the single-pass step, which cannot be compiled)
    bf16_step: bool = True
    settings: dict = field(default_factory=dict)  # more --set KEY=VALUE
    # "stem": with no checkpoint yet, the line starts from the shipped single-pass file made
    # into a stem network (trainer.singlepass.stem); "": from the shipped file as it is
    warm_start: str = ""
    stopped: str = ""  # why the default plan leaves this line out (`--stages` still runs it)
    # every slice trains the shipped file afresh with its own seed (loop.seed = the slice
    # number) instead of continuing the last slice: independent fine-tunes from one start,
    # the ingredients of a weight average (`dtpm-train singlepass average`)
    fresh_each_slice: bool = False

    def checkpoint(self) -> Path:
        return CHECKPOINTS / f"{self.name}.safetensors"

    def file_name(self) -> str:
        """The name of the model file this stage ships as (and a slice writes)."""
        return {"singlepass": "singlepass.safetensors",
                "stage1": "base.safetensors"}.get(self.kind, f"{self.task}.safetensors")

    def shipped(self) -> Path:
        return SHIPPED / self.file_name()

    def exported(self, run_dir: Path) -> Path:
        """The file a finished slice writes."""
        return run_dir / self.file_name()

    def prepare(self) -> None:
        """Write the warm start of a line that has no checkpoint yet (`warm_start`)."""
        if self.warm_start == "stem" and not self.checkpoint().is_file():
            from trainer.singlepass.stem import write_stem_warm_start

            print(f"  {self.name}: warm start from {self.shipped()} with a stem", flush=True)
            write_stem_warm_start(self.shipped(), self.checkpoint())

    def init_file(self) -> Path | None:
        """The file a slice continues from: the stage's checkpoint, else the shipped model
        (only for the shipped predictor); the shipped model always for a fresh-each-slice line."""
        if self.checkpoint().is_file() and not self.fresh_each_slice:
            return self.checkpoint()
        shipped = self.shipped()
        return shipped if shipped.is_file() and not self.predictor else None

    def command(self, run_dir: Path, number: int = 1) -> list[str]:
        """The dtpm-train command of slice `number` (its seed on a fresh-each-slice line)."""
        init = self.init_file()
        if self.kind == "singlepass":
            if init is None:
                raise SystemExit(f"{self.name}: no {self.shipped()} to continue")
            cmd = [str(BIN / "dtpm-train"), "singlepass", "continue", "--config", self.config,
                   "--init", str(init), "--run-dir", str(run_dir), "--quiet"]
        elif self.kind == "stage1":
            if init is None:
                raise SystemExit(f"{self.name}: no {self.shipped()} to continue")
            # the continued objective keeps the base's residual scale s (measuring it again
            # on the same photos would give about the same s, but not exactly)
            cmd = [str(BIN / "dtpm-train"), "stage1", "--config", self.config, "--run-dir",
                   str(run_dir), "--quiet", "--set", f"model.init={init}", "--set",
                   f"calibration.residual_scale={_residual_scale(init)}"]
        else:
            cmd = [str(BIN / "dtpm-train"), "stage2", "--config", self.config, "--task",
                   self.task, "--base", str(BASE), "--run-dir", str(run_dir), "--quiet"]
            for key, value in self.predictor.items():
                cmd += ["--set", f"model.overrides.{key}={_toml(value)}"]
            if init is not None:
                cmd += ["--set", f"stage2.init={init}"]
        cmd += ["--set", f"loop.iterations={self.iterations}"]
        if self.compiled_step:
            cmd += ["--set", "loop.compile=true"]
        if self.bf16_step:
            cmd += ["--set", f"loop.cpu_bf16={_toml(native_bf16())}"]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={_toml(value)}"]
        if self.fresh_each_slice:
            cmd += ["--set", f"loop.seed={number}"]
        return cmd


def native_bf16() -> bool:
    from dtpm_core.backends.device import cpu_has_native_bf16

    return cpu_has_native_bf16()


def _residual_scale(model_file: Path) -> float:
    """The residual scale s a model file's calibration stores (read from its header)."""
    from dtpm_core.diffusion.calibration import Calibration
    from dtpm_core.modelfiles.verified import header_metadata

    return Calibration.from_metadata(header_metadata(model_file), str(model_file)).residual_scale


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


PLAN = (
    # The texture prior all five adapters run on (issue 20, item 5: "a Stage I base trained far
    # longer"), continued with the bundled recipe. A new base ships only with adapters trained
    # on it (an adapter names its base by hash), so this line grows the base for a later
    # move of every adapter onto it; each slice keeps the x0-error curve it measured
    # (checkpoints/base_calibration.json) as its screen: the lower the curve, the more of the
    # texture the prior knows.
    # Stopped on 2026-12-07 at 15000 campaign iterations: the curve levelled off, and two
    # adapters moved onto it drew louder texture, no better correlated with the missing detail,
    # with every K >= 4 worse (docs/evidence/campaign/rebase/).
    Stage("base", "", 3000, kind="stage1", config="bundled_stage1",
          stopped="levelled off; adapters on it drew louder, uncorrelated texture"),
    # Stopped on 2026-12-07 at 28300: +0.50-0.51 dB held-out for five slices since the shipped
    # 19300 (the predictor's receptive field, not the budget, limits it now).
    Stage("motion-deblur", "motion-deblur", 1500,
          stopped="flat at +0.50 dB held-out for five slices"),
    # Stopped on 2026-12-07 at 11080: +0.37-0.38 dB held-out for four slices, below the P16 line
    # (+0.48 at 16300, shipped), which still gains about 0.03 dB per slice.
    Stage("motion-deblur-p48", "motion-deblur", 1500, predictor=dict(P48_STEM2),
          stopped="flat at +0.38 dB held-out, below the P16 line"),
    # The predictor on an ImageNet encoder: from scratch (ImageNet weights) it gained +0.22 dB
    # held-out in 820 CPU-seconds (1000 iterations), where P48-stem2 gained +0.09 in 927 and
    # needed 2080 iterations for +0.22 (README, "Training campaign").
    # Stopped at 2500: +0.25 dB, then +0.03 per 1500 iterations (the P16 line stays ahead).
    Stage("motion-deblur-effnet", "motion-deblur", 1500, predictor=dict(E16_IMAGENET),
          stopped="slow after a fast start, below the P16 line"),
    # Stopped on 2026-12-07 at 24100: +1.88 / +1.90 / +1.90 / +1.88 dB held-out over four
    # slices (19600, shipped: +1.88); 22600 evaluated in full: mixed.
    # Two new motion lines from the shipped file (19300, +0.51 dB held-out), in turn, each
    # testing one change against the flat P16 line (issue 20, items 3 and 4):
    # - c192: 192 px crops (2.25x the pixels, batch 4): the largest trained kernel (61 px)
    #   leaves a 128 px crop little sharp context; Restormer's progressive crops, one step;
    # - mse: the predictor trained with the squared error instead of L1 (the conditional mean,
    #   what PSNR scores): on raindrops it turned a flat L1 line into +0.46 dB in 400 iterations.
    # c192 stopped on 2026-12-08 after 2 slices: +0.50 / +0.51 dB held-out (the shipped file
    # +0.51), in range +0.46 / +0.47, where mse gained +0.05 in its first slice.
    Stage("motion-deblur-c192", "motion-deblur", 1000, settings={"data.crop": 192},
          stopped="flat: 192 px crops gained nothing in 2000 iterations"),
    # mse stopped on 2026-12-08 after 3 slices: +0.56 / +0.57 dB held-out after 1500 / 3000
    # iterations, but the full evaluation of 3000 traded SSIM, LPIPS and the feature distance
    # at K >= 1 for that PSNR (docs/evidence/campaign/motion_lines_c192_mse.md).
    Stage("motion-deblur-mse", "motion-deblur", 1500, settings=dict(RAINDROP_LOSS),
          stopped="the conditional mean: PSNR up, SSIM and the perceptual measures down"),
    # fft: L1 as shipped plus the L1 of the predictor error's spectrum (MIMO-UNet's frequency
    # loss, `stage2.predictor_fft_weight`), which weighs the fine detail a blur removes as much
    # as coarse error, where the squared error's conditional mean gave up the detail.
    Stage("motion-deblur-fft", "motion-deblur", 1500,
          settings={"stage2.predictor_fft_weight": 1.0}),
    Stage("defocus-deblur", "defocus-deblur", 1500,
          stopped="flat at +1.88-1.90 dB held-out for four slices"),
    # Raindrops train P with the squared error instead of L1: with L1 (the median) P kept the
    # drops (2500 iterations, -0.00 dB; 400 more at 20x the L1 weight: -0.03), with MSE (the
    # mean, what PSNR scores) 400 iterations from the same file gave +0.46 dB held-out (weight
    # 20; 100: +0.43). README, "Training campaign".
    # Stopped at 11900 (+2.09 dB held-out): the raindrop-effnet line reached +3.01 (shipped).
    Stage("raindrop", "raindrop", 1500, settings=dict(RAINDROP_LOSS),
          stopped="far below the shipped raindrop-effnet file"),
    # Drops of 16-26 px on the held-out judge: the 17 px predictor gained nothing in 1500
    # iterations (L1); the 47 px one starts from scratch beside it.
    # Stopped at 3400, for the same reason.
    Stage("raindrop-p48", "raindrop", 1500, predictor=dict(P48_STEM2),
          settings=dict(RAINDROP_LOSS), stopped="far below the shipped raindrop-effnet file"),
    # Stopped on 2026-12-07: held-out +3.01 (15000, shipped) -> +2.98 -> +2.91 while in range
    # +3.15 -> +3.10 -> +3.26, as on rain + haze and snow.
    Stage("raindrop-effnet", "raindrop", 1500, predictor=dict(E16_IMAGENET),
          settings=dict(RAINDROP_LOSS),
          stopped="held-out gain drifting down (training ranges)"),
    # Their predictors gained 4.8 and 3.7 dB in the first slice, which kept the files' residual
    # scale s (measured on the far weaker predictors): the texture came out loud, with
    # coloured specks. Each slice measures s again on the predictor it starts from.
    # Stopped on 2026-12-07: from 3000 iterations on the held-out gain drifts down while the
    # in-range one rises (rain + haze +8.13 -> +8.07, snow +7.42 -> +7.28 dB): the training
    # ranges, not the budget, limit them now.
    Stage("derain-dehaze", "derain-dehaze", 1000, settings={"stage2.rescale": True},
          stopped="held-out gain drifting down (training ranges)"),
    Stage("desnow", "desnow", 1000, settings={"stage2.rescale": True},
          stopped="held-out gain drifting down (training ranges)"),
    # The single-pass network on the camera-like ranges: 128 px crops like the adapters (the
    # bundled recipe used 96 px), a lower peak rate than MTUL's fresh steps (1e-3).
    # Its fine-tuning objective cannot be compiled (gradients inside the loss); in bf16 it ran
    # 1.45-1.55x the eager fp32 step's iterations/s with the same losses (a Sapphire Rapids
    # core, docs/evidence/campaign/bench_singlepass_step.txt).
    # Stopped on 2026-12-07 at 3000: held-out motion / defocus +0.02 / +0.10 (1000, shipped)
    # -> +0.01 / +0.14 -> -0.09 / +0.04 dB while rain + haze rose (+8.55 -> +8.88).
    Stage("singlepass", "all", 1000, kind="singlepass", config="singlepass_cpu",
          settings=dict(SINGLEPASS_SLICE),
          compiled_step=False, stopped="the blur tasks drift down (motion below the input)"),
    # The single-pass network with a pixel-unshuffle stem (issue 22: single-pass at least 5x
    # faster than DTPM K = 4): the U-Net runs on 2 x 2 cells, the shipped network's three lower
    # levels copied, its full-resolution level dropped (trainer.singlepass.stem). Measured on a
    # 2.4 MP photo, OpenVINO bf16, 2 threads, 512 px tiles: 0.73 s a pass against 1.64 s.
    # Shipped at 6000 iterations (held-out +0.06 / +0.26 / +8.57 / +8.50 / +0.16 dB); 7500 was
    # worse on motion and snow (+0.01 / +0.22 / +8.67 / +8.12 / +0.16): watch for the drift
    # the full-resolution line showed.
    # Stopped on 2026-12-07 at 27000 (slice 18): every slice trades the weather tasks for blur
    # and raindrops; no greedy soup of its files with the shipped average beat it on all five
    # tasks (docs/evidence/campaign/singlepass_finetune.md).
    Stage("singlepass-s2", "all", 1500, kind="singlepass", config="singlepass_cpu",
          settings={**SINGLEPASS_SLICE, **SINGLEPASS_STEM2},
          compiled_step=False, warm_start="stem",
          stopped="trades rain + haze and snow for blur; no soup beat the shipped average"),
    # The shipped single-pass file (the average of four singlepass-s2 files) fine-tuned gently:
    # 600 iterations at lr 1e-4 lifted defocus and raindrops (+0.12 dB each) and lowered snow
    # (-0.06 dB); snow's crops drawn twice as often was meant to hold it. Stopped on
    # 2026-12-07 after 3 slices: held-out snow fell further (+8.38, +8.23 dB after 600 and
    # 1200 iterations, the shipped file +8.65; in range it rose), raindrops gained less.
    Stage("singlepass-avg", "all", 600, kind="singlepass", config="singlepass_cpu",
          settings={**SINGLEPASS_SLICE, **SINGLEPASS_STEM2, **SINGLEPASS_GENTLE,
                    "singlepass.task_weights.desnow": 2.0},
          compiled_step=False, stopped="snow drawn twice as often lowered held-out snow more"),
    # Independent gentle fine-tunes of the shipped file, one seed a slice: three such files
    # averaged gained +0.02 / +0.09 / +0.18 / -0.15 / +0.08 dB over the shipped file (motion /
    # defocus / rain + haze / snow / raindrops); more of them for the average, and for its
    # interpolation with the shipped weights (WiSE-FT: robustness to unseen settings).
    # Stopped on 2026-12-08 after 10 slices: the soups of its files kept trading held-out snow
    # for the other tasks (docs/evidence/campaign/singlepass_finetune.md).
    Stage("singlepass-soup", "all", 600, kind="singlepass", config="singlepass_cpu",
          settings={**SINGLEPASS_SLICE, **SINGLEPASS_STEM2, **SINGLEPASS_GENTLE},
          compiled_step=False, fresh_each_slice=True,
          stopped="its soups trade held-out snow for the other tasks"),
)


def _logged(stage: Stage) -> list[dict[str, str]]:
    """The rows of checkpoints/campaign.tsv for `stage`."""
    log = CHECKPOINTS / "campaign.tsv"
    if not log.is_file():
        return []
    with log.open() as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["stage"] == stage.name]


def _slice_number(stage: Stage) -> int:
    return 1 + max((int(r["slice"]) for r in _logged(stage)), default=0)


def _total_iterations(stage: Stage) -> int:
    return sum(int(r["iterations"]) for r in _logged(stage))


def _log(stage: Stage, number: int, seconds: float, cpu_seconds: float) -> None:
    log = CHECKPOINTS / "campaign.tsv"
    new = not log.is_file()
    with log.open("a", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        if new:
            w.writerow(["stage", "slice", "iterations", "total_iterations", "wall_s", "cpu_s",
                        "finished"])
        w.writerow([stage.name, number, stage.iterations,
                    _total_iterations(stage) + stage.iterations, f"{seconds:.0f}",
                    f"{cpu_seconds:.0f}", time.strftime("%Y-%m-%d %H:%M:%S")])


class Stop(Exception):
    pass


def _prepare_patches() -> None:
    """Stage I's patches from data/clean_train (scripts/collect_demo_photos.py), once."""
    index = PREPARED / "index.json"
    if index.is_file() and json.loads(index.read_text()).get("complete"):
        return
    print(f"  preparing Stage I patches into {PREPARED} (RTV smoothing, minutes)", flush=True)
    subprocess.run([str(BIN / "dtpm-train"), "prepare", str(ROOT / "data" / "clean_train"),
                    "-o", str(PREPARED), "--patch", "128", "--stride", "128"], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)


def run_slice(stage: Stage, child: dict, commit: bool = False) -> bool:
    number = _slice_number(stage)
    run_dir = ROOT / "runs" / "campaign" / f"{stage.name}-{number}"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{time.strftime('%H:%M:%S')}] {stage.name}: slice {number} "
          f"({stage.iterations} iterations) in {run_dir}", flush=True)
    start, cpu0 = time.monotonic(), os.times()
    if stage.kind == "stage1":
        _prepare_patches()
    stage.prepare()
    with (run_dir.parent / f"{stage.name}-{number}.log").open("a") as out:
        proc = subprocess.Popen(stage.command(run_dir, number), stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        child["proc"] = proc
        code = proc.wait()
        child["proc"] = None
    cpu1 = os.times()
    cpu = (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system)
    if code != 0:
        print(f"  {stage.name}: dtpm-train exited {code} (see {run_dir.parent}/"
              f"{stage.name}-{number}.log)", flush=True)
        if code in (143, -15, 130, -2):
            raise Stop
        return False
    exported = stage.exported(run_dir)
    tmp = stage.checkpoint().with_suffix(".tmp")
    shutil.copyfile(exported, tmp)
    os.replace(tmp, stage.checkpoint())
    curve = run_dir / "calibration.json"  # the x0-error curve the slice measured at its end
    if stage.kind == "stage1" and curve.is_file():
        kept = CHECKPOINTS / f"{stage.name}_calibration.json"
        shutil.copyfile(curve, kept.with_suffix(".tmp"))
        os.replace(kept.with_suffix(".tmp"), kept)
    _log(stage, number, time.monotonic() - start, cpu)
    print(f"  {stage.name}: slice {number} done in {time.monotonic() - start:.0f} s -> "
          f"{stage.checkpoint()}", flush=True)
    if commit:
        commit_slice(stage, number)
    return True


def commit_slice(stage: Stage, number: int, attempts: int = 5) -> bool:
    """Commit the slice's checkpoint, its log row and (Stage I) its x0-error curve, and only
    them. Another git command holding the index lock is waited for; a failure is printed and
    leaves the files for a commit by hand."""
    paths = [stage.checkpoint(), CHECKPOINTS / "campaign.tsv",
             CHECKPOINTS / f"{stage.name}_calibration.json"]
    paths = [str(p) for p in paths if p.is_file()]
    message = (f"checkpoints: {stage.name} slice {number} ({_total_iterations(stage)} "
               f"iterations in all; scripts/campaign.py --commit, not evaluated)")
    for attempt in range(attempts):
        add = subprocess.run(["git", "-C", str(ROOT), "add", "--", *paths],
                             capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "-C", str(ROOT), "commit", "-q", "-m", message, "--", *paths],
            capture_output=True, text=True).returncode == 0
        if done:
            print(f"  committed: {message}", flush=True)
            return True
        time.sleep(2 + 3 * attempt)  # e.g. another git command holds the index lock
    print(f"  {stage.name}: could not commit slice {number}; commit checkpoints/ by hand",
          flush=True)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.5, help="stop starting slices after")
    parser.add_argument("--commit", action="store_true",
                        help="commit each finished slice's checkpoint and log row (git)")
    parser.add_argument("--stages", default=",".join(s.name for s in PLAN if not s.stopped),
                        help="comma-separated stages, in turn (default: every line not "
                             "stopped: " + ", ".join(s.name for s in PLAN if not s.stopped) + ")")
    args = parser.parse_args()
    plan = {s.name: s for s in PLAN}
    unknown = [n for n in args.stages.split(",") if n not in plan]
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; choose from {', '.join(plan)}")
    stages = [plan[n] for n in args.stages.split(",")]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    child: dict = {"proc": None}

    def forward(signum, frame) -> None:  # the child checkpoints and stops; so do we
        proc = child.get("proc")
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        else:
            raise Stop

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    deadline = time.monotonic() + args.hours * 3600
    try:
        while time.monotonic() < deadline:
            for stage in stages:
                if time.monotonic() >= deadline:
                    break
                run_slice(stage, child, args.commit)
    except Stop:
        print("campaign stopped; rerun the same command to resume the slice in flight",
              flush=True)
        return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
