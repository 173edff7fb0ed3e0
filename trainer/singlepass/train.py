"""Training jobs of the single-pass engine (DESIGN 6) on the shared loop:

- `pretrain`: TMDDP on clean crops;
- `finetune`: GEF for one task from the pre-trained weights (plain L1 with the diffusion
  parts switched off);
- `multitask`: MTUL, tasks in ascending t_mat, step k trains on the union of tasks 1..k with a
  fresh optimiser and schedule, theta_0 and Omega renewed; each step is its own resumable run
  in RUN_DIR/step<k>-<task>/, finished steps are skipped on a rerun;
- `continue`: more of MTUL's last step (GEF on every task at once, adaptors included) from a
  multi-task file, for the training campaign.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dtpm_core.engines.singlepass_restorer import SinglePassRestorer
from dtpm_core.errors import ConfigError
from dtpm_core.evaluation.metrics import psnr
from dtpm_core.files.imageio import write_image
from dtpm_core.modelfiles.weights import WeightsError
from dtpm_core.singlepass.network import SinglePassNet
from dtpm_core.singlepass.schedule import MATCHED_TIME_STEPS, time_step_for
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass

from ..checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from ..config import TrainConfig, singlepass_net_config
from ..dist import DistInfo
from ..ema import EMA
from ..loop import TrainJob, run
from ..provenance import training_summary
from ..resume import resumed_config
from ..task_data import build_datasets
from .data import CleanCrops, TaskMixture, TimeStepped, clean_images
from .objective import (
    GEFLoss,
    TMDDPLoss,
    compute_anchor,
    load_anchor,
    save_anchor,
)

PRETRAINED_FILE = "pretrained.safetensors"
MULTITASK_FILE = "singlepass.safetensors"
STEP_FILE = "step.safetensors"
PRETRAIN_TASKS = {"noise": MATCHED_TIME_STEPS["noise"]}
"""What a pre-trained file restores: TMDDP trains a denoiser for every t; 'noise' is the
paper's matched step for noise (fine-tune it for anything else)."""


def task_time_step(config: TrainConfig, task: str) -> int:
    """t_mat of `task`: singlepass.t_mat when set (e.g. from `calibrate`), else the table."""
    if config.singlepass.t_mat >= 0 and task == config.singlepass.task:
        return config.singlepass.t_mat
    return time_step_for(task)


def multitask_plan(tasks: list[str] | tuple[str, ...],
                   t_mat: Callable[[str], int] = time_step_for) -> list[list[str]]:
    """MTUL's incremental steps: tasks sorted by ascending t_mat (ties keep the given order),
    step k trains on tasks 1..k. Returns the task list of every step."""
    if not tasks:
        raise ConfigError("multitask training needs at least one task (singlepass.tasks)")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"singlepass.tasks lists a task twice: {list(tasks)}")
    order = sorted(tasks, key=t_mat)  # stable
    return [order[: k + 1] for k in range(len(order))]


def new_net(config: TrainConfig, adaptor_tasks: tuple[str, ...] = (),
            init: str | Path | None = None) -> SinglePassNet:
    """A network for `config.singlepass`, initialised from the weights file `init` when given.
    The file may lack exactly the MoE adaptors (a pre-trained file going multi-task); any
    other difference is an error."""
    torch.manual_seed(config.loop.seed)
    net = SinglePassNet(singlepass_net_config(config, adaptor_tasks))
    if init:
        source, _ = load_singlepass(init)
        state = source.state_dict()
        expected = net.state_dict()
        extra = sorted(set(state) - set(expected))
        missing = sorted(k for k in set(expected) - set(state) if not k.startswith("adaptors."))
        if extra or missing:
            raise WeightsError(f"{init} does not fit the configured single-pass network "
                               f"(singlepass.preset/overrides): missing {missing[:4]}, "
                               f"unexpected {extra[:4]}")
        try:
            net.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise WeightsError(f"{init} does not fit the configured network: {exc}") from exc
    return net


def _export(net: nn.Module, path: Path, config: TrainConfig, step: int,
            extra: dict[str, Any], metrics: dict[str, Any] | None = None) -> str:
    training = training_summary(config, step, extra)
    training["objective"] = extra.get("objective", "")
    return save_singlepass(path, net, tasks=dict(extra["tasks"]), training=training,
                           metrics=metrics)


def _validator(pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]], samples: Path,
               config: TrainConfig, extra: dict[str, Any]
               ) -> Callable[[nn.Module, int], dict[str, float]]:
    """Restore held-out pairs of every task through the real inference path (an exported
    file and SinglePassRestorer); PSNR of the input and of the result per task."""
    def validate(trained: nn.Module, step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            _export(trained, Path(tmp) / "val.safetensors", config, step, extra)
            restorer = SinglePassRestorer(Path(tmp) / "val.safetensors", device="auto",
                                          precision="fp32", max_experts=0)
            for task, task_pairs in pairs.items():
                before, after = [], []
                for source, clean in task_pairs:
                    result = restorer.restore(source, task, tile=0).result
                    before.append(psnr(source, clean))
                    after.append(psnr(result, clean))
                    rows.append(np.concatenate([source, result, clean], axis=1))
                if task_pairs:
                    metrics[f"psnr_input_{task}"] = float(np.mean(before))
                    metrics[f"psnr_{task}"] = float(np.mean(after))
        if rows:
            write_image(samples / f"step_{step:07d}.png", np.concatenate(rows, axis=0))
        return metrics
    return validate


def build_pretrain(config: TrainConfig, run_dir: Path) -> TrainJob:
    """TMDDP pre-training on crops of the clean photos in data.clean."""
    config, extra = resumed_config(config, run_dir)
    extra = extra or {"tasks": PRETRAIN_TASKS, "objective": "tmddp"}
    net = new_net(config, (), config.singlepass.init or None)
    train, _ = clean_images(config)
    dataset = CleanCrops(train, config.data.crop, config.loop.seed,
                         length=config.data.synthetic_length)

    def finish(trained: nn.Module) -> None:
        path = run_dir / PRETRAINED_FILE
        _export(trained, path, config, config.loop.iterations, extra)
        print(f"exported the pre-trained single-pass network to {path}")

    return TrainJob("singlepass-pretrain", run_dir, config, net, TMDDPLoss(net),
                    dict(net.named_parameters()), dataset, finish=finish, extra_state=extra)


def objective_name(config: TrainConfig) -> str:
    s = config.singlepass
    if not s.diffusion_terms:
        return "plain L1 + 0.1 FFT L1"
    parts = [name for name, on in (("generative", s.generative), ("regulariser", s.regulariser))
             if on]
    if s.orthogonality != "off":
        parts.append(f"orthogonality={s.orthogonality}")
    return f"GEF (p={s.gen_probability}: " + ", ".join(parts) + ")"


def build_finetune(config: TrainConfig, run_dir: Path, tasks: list[str],
                   init: str | Path | None, out_name: str,
                   adaptor_tasks: tuple[str, ...] = ()) -> TrainJob:
    """GEF (or plain L1) training on the union of `tasks`, starting from `init`; the anchor
    (theta_0 = init weights, Omega) is computed once and kept in the run folder."""
    run_dir = Path(run_dir)
    config, extra = resumed_config(config, run_dir)
    if config.loop.compile:
        raise ConfigError("loop.compile: the single-pass fine-tuning objective (GEF) takes "
                          "gradients inside its loss (gradient orthogonality) and draws its "
                          "terms per step, which torch.compile cannot compile (it failed after "
                          "minutes of compiling); set loop.compile = false")
    if extra:
        init = extra.get("init") or None
    t_mats = {task: task_time_step(config, task) for task in tasks}
    weights = task_weights(config, tasks, adaptor_tasks)
    extra = {"tasks": {**{t: time_step_for(t) for t in adaptor_tasks if t not in t_mats},
                       **t_mats},
             "objective": objective_name(config), "init": str(init or ""),
             "adaptor_tasks": list(adaptor_tasks)}
    if weights is not None:
        extra["task_weights"] = dict(zip(tasks, weights, strict=True))
    net = new_net(config, adaptor_tasks, init)
    parts, val_pairs = [], {}
    for task in tasks:
        train_set, pairs = build_datasets(config, task)
        parts.append(TimeStepped(train_set, t_mats[task]))
        val_pairs[task] = pairs
    dataset = TaskMixture(parts, weights, seed=config.loop.seed)
    anchor = None
    if config.singlepass.regulariser and config.singlepass.diffusion_terms:
        anchor = load_anchor(run_dir)
        if anchor is None:
            if checkpoint_path(run_dir).is_file():
                raise CheckpointError(f"{run_dir} has a checkpoint but no anchor.pt; delete "
                                      "the run folder to start the fine-tuning over")
            anchor = compute_anchor(net, _clean_batches(dataset, config),
                                    config.singlepass.omega_batches, config.loop.seed)
            run_dir.mkdir(parents=True, exist_ok=True)
            save_anchor(run_dir, anchor)

    def finish(trained: nn.Module) -> None:
        path = run_dir / out_name
        _export(trained, path, config, config.loop.iterations, extra)
        print(f"exported the single-pass network ({', '.join(tasks)}) to {path}")

    return TrainJob("singlepass-finetune", run_dir, config, net,
                    GEFLoss(net, config.singlepass, anchor), dict(net.named_parameters()),
                    dataset, validate=_validator(val_pairs, run_dir / "samples", config, extra),
                    finish=finish, extra_state=extra)


def task_weights(config: TrainConfig, tasks: list[str] | tuple[str, ...],
                 adaptor_tasks: tuple[str, ...] = ()) -> list[float] | None:
    """`singlepass.task_weights` as one weight per task of `tasks` (1 where not named), or None
    when none is set. A weight for a task this run does not train (or will not, in a later
    multi-task step) is an error, as are weights for a single-task run."""
    named = dict(config.singlepass.task_weights)
    if not named:
        return None
    trained = set(tasks) | set(adaptor_tasks)
    if len(trained) < 2:
        raise ConfigError("singlepass.task_weights weighs the tasks of a multi-task run "
                          "(multitask / continue); this run trains one task")
    unknown = sorted(set(named) - trained)
    if unknown:
        raise ConfigError(f"singlepass.task_weights names {unknown}, which this run does not "
                          f"train ({', '.join(sorted(trained))})")
    weights = [float(named.get(task, 1.0)) for task in tasks]
    if sum(weights) <= 0:
        raise ConfigError(f"singlepass.task_weights leaves no task to train in {list(tasks)}")
    return weights


def _clean_batches(dataset: TaskMixture, config: TrainConfig):
    """The clean images of the task data in a seeded order, batch by batch (for Omega)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.data.batch_size,
                                         shuffle=True, generator=torch.Generator().manual_seed(
                                             config.loop.seed), num_workers=0)
    while True:
        for batch in loader:
            yield batch["clean"]


def run_multitask(config: TrainConfig, run_dir: Path, init: str | Path | None,
                  dist: DistInfo, progress: bool = True) -> Path:
    """MTUL: one resumable run per incremental step; returns the final multi-task file."""
    import dataclasses
    run_dir = Path(run_dir)
    tasks = tuple(config.singlepass.tasks)
    plan = multitask_plan(tasks)
    step_iterations = config.singlepass.step_iterations or config.loop.iterations
    step_config = dataclasses.replace(
        config, loop=dataclasses.replace(config.loop, iterations=step_iterations))
    previous = str(init) if init else None
    for k, step_tasks in enumerate(plan, start=1):
        step_dir = run_dir / f"step{k}-{step_tasks[-1]}"
        done = step_dir / STEP_FILE
        if done.is_file():
            if dist.is_main:
                print(f"step {k}/{len(plan)} ({', '.join(step_tasks)}) already done: {done}")
        else:
            if dist.is_main:
                print(f"step {k}/{len(plan)}: training on {', '.join(step_tasks)}")
            job = build_finetune(step_config, step_dir, step_tasks, previous, STEP_FILE,
                                 adaptor_tasks=tasks)
            run(job, dist, progress=progress)
        previous = str(done)
    final = run_dir / MULTITASK_FILE
    if dist.is_main:
        tmp = final.with_suffix(".tmp")
        shutil.copyfile(previous, tmp)
        tmp.replace(final)
        print(f"exported the multi-task single-pass network to {final}")
    return final


def build_continue(config: TrainConfig, run_dir: Path, init: str | Path | None) -> TrainJob:
    """MTUL's last step continued: GEF on the union of `singlepass.tasks`, every task's adaptor
    trained, from the multi-task file `init` (theta_0 and Omega anchored on it). Writes
    RUN_DIR/singlepass.safetensors."""
    if not init:
        raise ConfigError("singlepass continue needs --init: the multi-task file to continue "
                          "(e.g. resources/models/singlepass.safetensors)")
    tasks = tuple(config.singlepass.tasks)
    _, info = load_singlepass(init)
    missing = sorted(set(tasks) - set(info.tasks))
    if missing:
        raise WeightsError(f"{init} restores {sorted(info.tasks)}, not {missing}: continue "
                           "trains the tasks a multi-task file already has")
    order = multitask_plan(tasks)[-1]
    return build_finetune(config, run_dir, order, init, MULTITASK_FILE, adaptor_tasks=tasks)


def export_singlepass_run(run_dir: Path, out: Path, use_ema: bool = True,
                          metrics: dict[str, Any] | None = None) -> Path:
    """The weight file of a single-pass pretrain/finetune run, from its checkpoint."""
    state = load_checkpoint(checkpoint_path(run_dir))
    config = TrainConfig.from_dict(state["config"])
    extra = state.get("extra", {})
    if not str(state.get("kind", "")).startswith("singlepass"):
        raise CheckpointError(f"{run_dir} is not a single-pass run")
    net = SinglePassNet(singlepass_net_config(config, tuple(extra.get("adaptor_tasks", ()))))
    named = dict(net.named_parameters())
    with torch.no_grad():
        if use_ema:
            ema = EMA({k: named[k] for k in state["ema"]["shadow"]}, decay=0.0)
            ema.load_state_dict(state["ema"])
            ema.copy_to({k: named[k] for k in state["ema"]["shadow"]})
        else:
            for name, value in state["trainable"].items():
                named[name].copy_(value)
    _export(net, Path(out), config, int(state["step"]), extra, metrics)
    return Path(out)
