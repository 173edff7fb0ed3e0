"""The training loop shared by Stage I and Stage II, read top to bottom (nanoGPT style):
cosine learning rate, mixed precision on CUDA, gradient clipping, NaN/Inf guard, EMA,
progress bar, TensorBoard, periodic validation, atomic checkpoints and automatic resume."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from dtpm_core.errors import DTPMError

from .checkpoint import (
    CheckpointError,
    check_training_state,
    checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import OptimConfig, TrainConfig
from .dist import DistInfo, barrier, mean_across_ranks
from .ema import EMA


class TrainingError(DTPMError):
    """Training cannot go on (e.g. the loss stayed NaN/Inf)."""


@dataclass
class TrainJob:
    """Everything the loop needs; built by stage1.py / stage2.py.

    `loss_module(batch, generator)` returns the scalar loss; `trainable` names the parameters
    to optimise (names as in `model.named_parameters()`); `validate(model_with_ema_weights,
    step)` returns metrics; `finish(model_with_ema_weights)` exports the result.
    """

    kind: str
    run_dir: Path
    config: TrainConfig
    model: nn.Module
    loss_module: nn.Module
    trainable: dict[str, nn.Parameter]
    dataset: Dataset
    validate: Callable[[nn.Module, int], dict[str, float]] | None = None
    finish: Callable[[nn.Module], None] | None = None
    extra_state: dict[str, Any] = field(default_factory=dict)


def get_lr(step: int, optim: OptimConfig, iterations: int) -> float:
    """Linear warm-up, then cosine annealing from lr to lr_min at `iterations`."""
    if optim.warmup > 0 and step < optim.warmup:
        return optim.lr * (step + 1) / optim.warmup
    span = max(iterations - optim.warmup, 1)
    progress = min(max(step - optim.warmup, 0) / span, 1.0)
    return optim.lr_min + 0.5 * (optim.lr - optim.lr_min) * (1.0 + math.cos(math.pi * progress))


def _epoch_indices(length: int, epoch: int, seed: int, dist: DistInfo) -> list[int]:
    """A seeded permutation per epoch, sharded over ranks (equal shard sizes)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(length, generator=generator).tolist()
    per_rank = length // dist.world_size
    return order[dist.rank * per_rank:(dist.rank + 1) * per_rank]


def _batches(dataset: Dataset, config: TrainConfig, dist: DistInfo, start_step: int):
    """Yield batches forever, resuming at the exact batch a checkpoint stopped before."""
    batch_size, seed = config.data.batch_size, config.loop.seed
    length = len(dataset)  # type: ignore[arg-type]
    per_epoch = (length // dist.world_size) // batch_size
    if per_epoch < 1:
        raise TrainingError(f"the dataset has {length} items: too few for batches of "
                            f"{batch_size} on {dist.world_size} process(es); lower "
                            "data.batch_size or add data")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        indices = _epoch_indices(length, epoch, seed, dist)[skip * batch_size:
                                                             per_epoch * batch_size]
        loader = DataLoader(dataset, batch_size=batch_size, sampler=indices, drop_last=True,
                            num_workers=config.data.workers,
                            persistent_workers=False, pin_memory=dist.device.type == "cuda")
        yield from loader
        epoch, skip = epoch + 1, 0


def _step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 7919 + step) * 131 + rank)


def _ema_model(job: TrainJob, ema: EMA) -> nn.Module:
    """A copy of the model carrying the EMA weights, for validation and export."""
    import copy
    model = copy.deepcopy(job.model).eval()
    named = dict(model.named_parameters())
    ema.copy_to({k: named[k] for k in job.trainable})
    return model


def run(job: TrainJob, dist: DistInfo, progress: bool = True) -> dict[str, Any]:
    """Train until config.loop.iterations; resumes from run_dir/checkpoint.pt if present."""
    config, loop = job.config, job.config.loop
    device = dist.device
    use_cuda = device.type == "cuda"
    cpu_bf16 = device.type == "cpu" and loop.cpu_bf16
    if cpu_bf16:
        from dtpm_core.backends.device import cpu_has_native_bf16
        if not cpu_has_native_bf16():
            raise TrainingError("loop.cpu_bf16 needs a CPU with AMX or AVX512-BF16; this one "
                                "has neither (set loop.cpu_bf16 = false)")
    channels_last = (use_cuda and loop.channels_last) or cpu_bf16
    job.model.to(device)
    if channels_last:
        job.model.to(memory_format=torch.channels_last)
    params = list(job.trainable.values())
    optimizer = torch.optim.Adam(params, lr=config.optim.lr,
                                 betas=(config.optim.beta1, config.optim.beta2),
                                 weight_decay=config.optim.weight_decay)
    ema = EMA(job.trainable, loop.ema_decay)
    step = 0
    ckpt = checkpoint_path(job.run_dir)
    if ckpt.is_file():
        state = load_checkpoint(ckpt)
        if state.get("kind") != job.kind:
            raise CheckpointError(f"{ckpt} belongs to a {state.get('kind')} run, not "
                                  f"{job.kind}; use another --run-dir")
        check_training_state(state, job.trainable, ckpt)
        with torch.no_grad():
            for name, value in state["trainable"].items():
                job.trainable[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        ema.load_state_dict(state["ema"])
        set_rng_state(state["rng"])
        step = int(state["step"])
        if dist.is_main and progress:
            print(f"resuming {job.kind} from {ckpt} at step {step}")
    loss_module: nn.Module = job.loss_module
    if dist.enabled:
        loss_module = DistributedDataParallel(
            job.loss_module, device_ids=[dist.local_rank] if use_cuda else None)
    if loop.compile:
        # the module's own weights stay where they are (nothing saved changes); the compiled
        # wrapper traces its forward on the first step
        loss_module = torch.compile(loss_module)
    writer = _tensorboard(job.run_dir) if dist.is_main else None

    def save(at_step: int) -> None:
        if dist.is_main:
            save_checkpoint(ckpt, {
                "kind": job.kind, "step": at_step, "config": config.to_dict(),
                "trainable": {k: v.detach().cpu() for k, v in job.trainable.items()},
                "optimizer": optimizer.state_dict(), "ema": ema.state_dict(),
                "rng": rng_state(), "extra": job.extra_state})
        barrier()

    from tqdm import tqdm
    bar = tqdm(total=loop.iterations, initial=step, disable=not (progress and dist.is_main),
               desc=job.kind, unit="it", dynamic_ncols=True)
    batches = _batches(job.dataset, config, dist, step)
    bad_steps, last_log, history = 0, time.perf_counter(), []
    job.model.train()
    stop_requested = _install_sigterm_flag()
    try:
        while step < loop.iterations:
            if stop_requested():
                save(step)
                bar.close()
                print(f"stopped by SIGTERM at step {step}; checkpoint saved, run the same "
                      "command again to resume", file=sys.stderr, flush=True)
                raise SystemExit(EXIT_SIGTERM)
            lr = get_lr(step, config.optim, loop.iterations)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            if channels_last:  # the images; other entries (time steps, task ids) as they are
                batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4
                         else v for k, v in batch.items()}
            generator = _step_generator(loop.seed, step, dist.rank)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=(use_cuda and loop.amp) or cpu_bf16):
                loss = loss_module(batch, generator)
            finite = mean_across_ranks(torch.isfinite(loss).float())
            if finite.item() < 1.0:  # every rank skips together
                bad_steps += 1
                if bad_steps >= loop.max_bad_steps:
                    raise TrainingError(f"the loss was NaN/Inf for {bad_steps} steps in a row at "
                                        f"step {step}; lower optim.lr or check the data")
                step += 1
                bar.update(1)
                continue
            bad_steps = 0
            loss.backward()
            if config.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
            optimizer.step()
            ema.update()
            step += 1
            history.append(loss.item())
            bar.update(1)
            if step % loop.log_every == 0 or step == loop.iterations:
                now = time.perf_counter()
                mean_loss = mean_across_ranks(torch.tensor(sum(history) / len(history))).item()
                its = len(history) / max(now - last_log, 1e-9)
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", its=f"{its:.2f}")
                if writer is not None:
                    writer.add_scalar("train/loss", mean_loss, step)
                    writer.add_scalar("train/lr", lr, step)
                    writer.add_scalar("train/it_per_s", its, step)
                history, last_log = [], now
            if step % loop.checkpoint_every == 0 or step == loop.iterations:
                save(step)
            if job.validate is not None and (step % loop.validate_every == 0
                                             or step == loop.iterations):
                if dist.is_main:
                    metrics = job.validate(_ema_model(job, ema), step)
                    bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}"
                                                           for k, v in metrics.items()))
                    if writer is not None:
                        for key, value in metrics.items():
                            writer.add_scalar(f"val/{key}", value, step)
                barrier()
    except KeyboardInterrupt:
        save(step)
        bar.close()
        raise
    bar.close()
    if writer is not None:
        writer.close()
    summary = {"step": step, "weights_sha256": _check_replicas(job, dist)}
    if job.finish is not None and dist.is_main:
        job.finish(_ema_model(job, ema))
    barrier()
    return summary


def _check_replicas(job: TrainJob, dist: DistInfo) -> str:
    """Hash the trained weights on every rank; DDP replicas must be identical."""
    import torch.distributed as torch_dist

    from dtpm_core.modelfiles.weights import content_sha256
    digest = content_sha256({k: v.detach() for k, v in job.trainable.items()})
    if dist.enabled:
        digests: list[str] = [""] * dist.world_size
        torch_dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise TrainingError(f"the {dist.world_size} processes ended with different "
                                f"weights: {digests}")
        if dist.is_main:
            print(f"{dist.world_size} processes finished with identical weights "
                  f"(sha256 {digest})")
    return digest


EXIT_SIGTERM = 143
"""Exit status after SIGTERM (128 + 15, as shells report it): the checkpoint is saved and the
same command resumes the run, so a scheduler can requeue the job on this code."""


def _install_sigterm_flag() -> Callable[[], bool]:
    """SIGTERM (e.g. from a job scheduler) asks the loop to checkpoint and stop at the next
    step; returns a function telling whether it was received."""
    import signal
    import threading

    received = {"flag": False}
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame) -> None:
            received["flag"] = True
        signal.signal(signal.SIGTERM, handler)
    return lambda: received["flag"]


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; stay usable without it
        print("TensorBoard is not installed: no event logs (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))
