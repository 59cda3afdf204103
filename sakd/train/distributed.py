"""Data-parallel helpers over torch.distributed (launched by `torchrun`).

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `init_from_env`
joins that process group (gloo on CPU, NCCL on CUDA). Without those variables every helper is
a no-op, so the same code runs single-process unchanged.

How a run is split (README, "Many machines"): the batch size in params is the GLOBAL batch;
each global batch is cut into `world_size` consecutive shares, one per rank (sakd.data), so
the ranks together see exactly the samples a single process would. Gradients are averaged
across ranks before every optimiser step (`average_gradients_before_step`: one flattened
all-reduce per optimiser), BatchNorm running statistics are averaged once per epoch, and the
loop all-reduces its epoch sums in its one host sync. BatchNorm *batch* statistics are per rank
on CPU (gloo): torch's SyncBatchNorm runs on GPUs only; on CUDA the nets are converted to
SyncBatchNorm (`sync_batchnorm`) so the statistics are those of the global batch, as on the
paper's single GPU.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True inside a `torchrun` launch with more than one process."""
    return all(k in os.environ for k in ENV_KEYS) and int(os.environ["WORLD_SIZE"]) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Only rank 0 writes checkpoints, DVC outputs and tracking runs."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """On CUDA each process of a node takes the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_env(device: torch.device) -> bool:
    """Join torchrun's process group (once); returns whether this is a multi-process run."""
    if active():
        return True
    if not launched():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(_shutdown)
    return True


def join(device: torch.device) -> torch.device:
    """This process's device in a torchrun launch (its LOCAL_RANK's GPU on CUDA), once it has
    joined the process group: the whole of a launched process's device set-up, in one call."""
    device = local_device(device)
    init_from_env(device)
    return device


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(flat: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks (in place; returns it)."""
    if active():
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return flat


def _average_(tensors: list[torch.Tensor]) -> None:
    """Average same-shaped tensors across ranks with one all-reduce of their concatenation."""
    if not tensors or not active():
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


def average_gradients_before_step(optimizer: torch.optim.Optimizer) -> None:
    """Average the gradients of `optimizer`'s parameters across ranks before each step.

    What DistributedDataParallel does, as an optimiser pre-step hook, so it covers every part a
    step trains (student, distiller parts, policy, adapters) whatever forwards produced the
    gradients: the SAKD step runs the student whole and through BN-folded segment views, and
    trains the policy from a second backward with `inputs=`, which DDP's reducer (one forward,
    one backward per wrapped module) does not model. Parameters without a gradient are skipped
    (the same on every rank: it depends on the graph, not the data).
    """
    if not active():
        return

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for grad in grads:
            by_dtype.setdefault(grad.dtype, []).append(grad)
        for group in by_dtype.values():
            _average_(group)

    optimizer.register_step_pre_hook(hook)


def share_training(modules: Iterable[nn.Module], optimizers: Iterable[torch.optim.Optimizer],
                   seed: int) -> bool:
    """Data-parallel training of `modules` by `optimizers`: each module starts from rank 0's
    values, each optimiser averages its gradients across ranks before stepping, and ranks > 0
    reseed so their random draws are their own (rank 0 keeps the single-process stream).
    Returns whether it applied (a process group is active)."""
    if not active():
        return False
    for module in modules:
        broadcast_module(module)
    for optimizer in optimizers:
        average_gradients_before_step(optimizer)
    if rank():
        torch.manual_seed(seed + 1_000_003 * rank())
    return True


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (identical start)."""
    if active():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_batchnorm_stats(modules: Iterable[nn.Module]) -> None:
    """Average BatchNorm running mean/var across ranks (once per epoch, before evaluation),
    so every rank evaluates and rank 0 saves statistics of all the data."""
    stats = [
        t
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
        for t in (m.running_mean, m.running_var)
    ]
    _average_(stats)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """SyncBatchNorm on CUDA in a multi-process run (global-batch statistics); unchanged
    otherwise (torch's SyncBatchNorm has no CPU kernel: CPU ranks keep per-rank statistics)."""
    if active() and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def gather_objects(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (a list of one when single)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if active():
        dist.barrier()
