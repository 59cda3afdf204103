"""The epoch loop shared by pretraining and distillation: steps, evaluation, logging, resume.

One checkpoint file holds everything needed to continue (module and optimiser states, LR
schedulers, RNG state, per-epoch history, the tracking run id). It is rewritten atomically after
every epoch, so a killed run started again resumes after its last finished epoch and ends with
the same result as an uninterrupted one. A NaN/inf loss, parameter or buffer (a BatchNorm running
variance) stops the run before the checkpoint is written, so the kept checkpoint is finite
everywhere (or, when the first epoch diverged, there is none) and the message says which.
Under `torchrun` (sakd.train.distributed) every rank runs this loop on its share of the data:
the epoch sums are all-reduced in the loop's one host sync (logged numbers are global), BN
running statistics are averaged before evaluation, each rank's RNG state goes into the
checkpoint, and only rank 0 writes the checkpoint, opens the tracking run and logs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sakd.atomic import ensure_writable
from sakd.tracking import PARAMS_HASH_TAG, RUN_PATH_TAG, MemoryTracker, Tracker, mark_current
from sakd.train import distributed
from sakd.train.checkpoint import load_checkpoint, save_checkpoint
from sakd.train.divergence import divergence
from sakd.train.errors import TrainingDiverged
from sakd.train.job import EpochLoader, Stats, TrainingJob

__all__ = ["RunSpec", "TrainingDiverged", "TrainingJob", "fit", "save_state", "try_resume"]

@dataclass
class Resume:
    start_epoch: int
    history: list[dict[str, float]]
    run_id: str | None


def _rng_state() -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def try_resume(job: TrainingJob) -> Resume:
    """Restore a run of the same configuration: an unfinished one continues after its last
    epoch, a finished one (start_epoch == epochs) is not retrained. A checkpoint from other
    params (the hash differs) is not used: the work is redone from scratch.
    """
    path = job.checkpoint_path
    if not path.exists():
        return Resume(0, [], None)
    state = load_checkpoint(path, required=("epoch", "config_hash", "modules"))
    if state["config_hash"] != job.config_hash or state["epoch"] > job.epochs:
        return Resume(0, [], None)
    for name, module in job.modules.items():
        module.load_state_dict(state["modules"][name])
    for name, opt in job.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, sched in job.schedulers.items():
        sched.load_state_dict(state["schedulers"][name])
    _set_rng_state(_own_rng(state["rng"], path))
    return Resume(state["epoch"], list(state["history"]), state.get("run_id"))


def _own_rng(rng: dict | list, path: Path) -> dict[str, Any]:
    """This rank's saved RNG state (a list, one per rank, from a data-parallel run)."""
    if isinstance(rng, dict):
        return rng
    if len(rng) != distributed.world_size():
        raise RuntimeError(
            f"{path} was written by {len(rng)} processes; resume it with the same number "
            f"(now {distributed.world_size()}), or delete it to start over"
        )
    return rng[distributed.rank()]


def save_state(job: TrainingJob, epoch: int, history: list, run_id: str | None) -> None:
    """Rank 0 writes the checkpoint (every rank must call: the RNG states are gathered)."""
    rngs = distributed.gather_objects(_rng_state())
    if not distributed.is_main():
        return
    state = {
        **job.metadata,
        "epoch": epoch,
        "total_epochs": job.epochs,
        "config_hash": job.config_hash,
        "modules": {n: m.state_dict() for n, m in job.modules.items()},
        "optimizers": {n: o.state_dict() for n, o in job.optimizers.items()},
        "schedulers": {n: s.state_dict() for n, s in job.schedulers.items()},
        "rng": rngs[0] if len(rngs) == 1 else rngs,
        "history": history,
        "run_id": run_id,
    }
    save_checkpoint(state, job.checkpoint_path)


def _batches(loader: EpochLoader, epoch: int, progress: bool, label: str) -> Iterable:
    loader.set_epoch(epoch)
    if not progress or not sys.stdout.isatty():
        return loader
    from rich.progress import track

    return track(loader, total=len(loader), description=label, transient=True)


def _mean_stats(sums: Stats, samples: int) -> tuple[dict[str, torch.Tensor], int]:
    """Per-sample epoch means over all ranks (sums are batch means x batch size) and the global
    sample count: one all-reduce, then one move to the CPU (the epoch's only host sync).
    `correct` stays a count."""
    keys = list(sums)
    parts = [sums[k].detach().float().reshape(-1) for k in keys]
    count = torch.tensor([float(samples)], device=parts[0].device if parts else None)
    flat = distributed.all_reduce_sum(torch.cat([*parts, count])).cpu()
    samples = int(flat[-1])
    out, offset = {}, 0
    for k in keys:
        n = sums[k].numel()
        out[k] = flat[offset : offset + n].reshape(sums[k].shape)
        offset += n
    return {k: (v if k == "correct" else v / samples) for k, v in out.items()}, samples


def default_summary(stats: dict[str, torch.Tensor], samples: int) -> dict[str, float]:
    """Scalar stats as train/<key>; `correct` becomes train/top1 (percent)."""
    out = {}
    for key, value in stats.items():
        if key == "correct":
            out["train/top1"] = 100.0 * float(value) / samples
        elif value.dim() == 0:  # vectors (per-spot stats) are the caller's `summarize`
            out[f"train/{key}"] = float(value)
    return out


@dataclass
class RunSpec:
    """How the tracking run is named and what it records up front. `path` names the cell
    (tag run_path; default: the name): runs are found by it, never by their display name."""

    experiment: str
    name: str
    tags: dict[str, str]
    params: dict[str, Any]
    nested: bool = False  # a child of the caller's open run (sensitivity trials)
    path: str = ""


def fit(
    job: TrainingJob,
    tracker: Tracker,
    run: RunSpec,
    on_finish: Callable[[list[dict]], None] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Train for job.epochs (resuming if possible) inside one tracking run; returns the history.

    A resumed run continues the same tracking run; a finished one is not retrained (on_finish
    rewrites its outputs from the checkpoint's history). Runs of the same cell left RUNNING by a
    killed process are marked KILLED, so each cell has one live tracking run; once a run
    finishes, it is the cell's current one and earlier FINISHED runs of the cell with the same
    config are tagged superseded (sakd.tracking.mark_current). `on_finish(history)` runs inside
    the run (log artifacts there).
    """
    job.check_ready()
    ensure_writable(job.checkpoint_path)  # a read-only folder fails now, not after an epoch
    resume = try_resume(job)
    if not distributed.is_main():  # rank 0 alone speaks and records (one run per cell)
        log, tracker = _silent, MemoryTracker()
    if resume.start_epoch >= job.epochs:
        log(f"{job.checkpoint_path} is already finished ({job.epochs}/{job.epochs} epochs, same "
            f"config): not retrained; its outputs are rewritten from its history")
    elif resume.start_epoch:
        log(f"resuming {job.checkpoint_path} after epoch {resume.start_epoch}/{job.epochs}")
    cell = {} if run.nested else {RUN_PATH_TAG: run.path or run.name}  # trials: no cell
    if cell:
        tracker.close_orphans(run.experiment, cell, keep=resume.run_id)
    tags = {**run.tags, **cell, PARAMS_HASH_TAG: job.config_hash}
    with tracker.run(run.experiment, run.name, tags, run.params, run_id=resume.run_id,
                     nested=run.nested) as run_id:
        history = _train_epochs(job, tracker, resume, log)
        if job.test and history and "test/top1" not in history[-1]:
            _test_once(job, tracker, history, log)
        if on_finish and distributed.is_main():
            on_finish(history)
    if cell:
        mark_current(tracker, run.experiment, run_id, {**cell, PARAMS_HASH_TAG: job.config_hash})
    distributed.barrier()  # every rank returns once rank 0's outputs are complete
    return history


def _test_once(job: TrainingJob, tracker: Tracker, history: list[dict],
               log: Callable[[str], None]) -> None:
    """Score the final network on the test split (`test/*`, logged apart from the per-epoch
    `val/*`) and keep it in the checkpoint's history, so nothing reads test data earlier."""
    result = {f"test/{k}": v for k, v in job.test().items()}
    history[-1].update(result)
    tracker.log_metrics(result, step=int(history[-1]["epoch"]))
    save_state(job, int(history[-1]["epoch"]), history, tracker.run_id)
    log(f"test {result['test/top1']:.2f}% (top5 {result['test/top5']:.2f}%) after the last epoch")


def _silent(message: str) -> None:
    """Ranks other than 0 print nothing (rank 0 speaks for the run)."""


def _train_epochs(
    job: TrainingJob, tracker: Tracker, resume: Resume, log: Callable[[str], None]
) -> list[dict]:
    history = resume.history
    for epoch in range(resume.start_epoch, job.epochs):
        started = time.perf_counter()
        extra = job.on_epoch_start(epoch) if job.on_epoch_start else {}
        lr = next(iter(job.optimizers.values())).param_groups[0]["lr"]
        sums: Stats = {}
        samples = 0
        label = f"epoch {epoch + 1}/{job.epochs}"
        progress = job.progress and distributed.is_main()
        for x, y, index in _batches(job.train_loader, epoch, progress, label):
            stats = job.step(x, y, index)
            size = y.shape[0]
            for key, value in stats.items():
                value = value if key == "correct" else value * size  # weight by batch size
                sums[key] = value if key not in sums else sums[key] + value
            samples += size
        means, samples = _mean_stats(sums, samples)
        metrics = default_summary(means, samples)
        if job.summarize:
            metrics.update(job.summarize(means))
        loss = metrics.get("train/loss", 0.0)
        diverged = divergence(metrics, job.modules, epoch, job.epochs, job.checkpoint_path)
        if diverged:
            raise TrainingDiverged(diverged)
        for sched in job.schedulers.values():
            sched.step()
        distributed.average_batchnorm_stats(job.modules.values())
        val = job.evaluate()
        metrics.update({f"val/{k}": v for k, v in val.items()})
        metrics["lr"] = lr
        metrics.update(extra)
        metrics["epoch_time_s"] = time.perf_counter() - started
        history.append({"epoch": epoch + 1, **metrics})
        tracker.log_metrics(metrics, step=epoch + 1)
        save_state(job, epoch + 1, history, tracker.run_id)
        if job.on_epoch_end:
            job.on_epoch_end(epoch + 1, metrics)  # may raise to stop early (pruning)
        log(
            f"{label}  loss {loss:.4f}  train {metrics.get('train/top1', 0):.2f}%  "
            f"val {val['top1']:.2f}% (top5 {val['top5']:.2f}%)  "
            f"{metrics['epoch_time_s']:.1f}s"
        )
    return history
