"""`runtime.nproc` > 1: a `sakd pretrain|distill` command hands itself to torchrun.

So a DVC stage's unchanged `cmd` becomes a data-parallel run when params.yaml says so, and
`torchrun ... sakd distill ...` typed by hand (or nproc: 1) runs as it is. The relaunch is
`python -m torch.distributed.run --standalone --nproc_per_node=N -m pipeline.cli <same args>`:
one machine; across machines, run torchrun yourself (README, "Many machines").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from pipeline.settings import resolve_device
from pipeline.slots import worker_device
from sakd.schema import RuntimeConfig, StageParams
from sakd.train import distributed


def torchrun_argv(nproc: int, args: list[str]) -> list[str]:
    """The command that runs `sakd <args>` as `nproc` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "pipeline.cli", *args]


def relaunch_if_asked(params: StageParams) -> None:
    """Replace this process by torchrun when runtime.nproc > 1 and we are not under it yet."""
    nproc = params.runtime.nproc
    if nproc > 1 and not distributed.launched():
        argv = torchrun_argv(nproc, sys.argv[1:])
        sys.stdout.flush()
        os.execv(argv[0], argv)


def training_device(runtime: RuntimeConfig, root: Path) -> torch.device:
    """The device of this process, resolved once from runtime.device: a worker's own device
    when DVC's queue runs several stages at once (pipeline.slots); under torchrun (its env
    variables set) its LOCAL_RANK's GPU, after joining the process group (gloo on CPU, NCCL on
    CUDA)."""
    device = resolve_device(runtime)
    if not distributed.launched():
        return worker_device(device, root, runtime.threads)
    return distributed.join(device)
