"""One device per worker when DVC's experiment queue runs stages N at a time.

DVC's queue workers export no worker index to the stages they run, so a training process takes
the first free slot itself: slot k is an exclusive `flock` on `<store>/.sakd/slots/slot<k>.lock`
(the repository DVC came from, shared by every queued experiment), held until the process
exits, so the kernel frees it even after SIGKILL. Slot k trains on GPU k mod (visible GPUs):
N workers spread round-robin over the GPUs, several per GPU when N is larger. On a CPU-only
machine `runtime.threads: 0` means this process's share of the cores: cores / $SAKD_QUEUE_JOBS
(`sakd queue --jobs N` exports it to the workers).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import torch

from pipeline.errors import UserError
from pipeline.paths import store_root

JOBS_ENV = "SAKD_QUEUE_JOBS"
SLOTS_DIR = Path(".sakd") / "slots"

_held: dict[Path, tuple[int, int]] = {}  # slots folder -> (slot, open fd), for the process life


def take_slot(root: Path, limit: int = 1024) -> int:
    """The first slot no other live process holds (the same one on every call here)."""
    folder = store_root(root) / SLOTS_DIR
    if folder in _held:
        return _held[folder][0]
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(limit):
        fd = os.open(folder / f"slot{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held[folder] = (slot, fd)
        return slot
    raise RuntimeError(f"all {limit} device slots under {folder} are taken")


def slot_device(slot: int, gpus: int) -> torch.device:
    """Round-robin: slot k on GPU k mod gpus."""
    return torch.device("cuda", slot % gpus)


def queue_jobs(env: dict[str, str] | None = None) -> int:
    """Workers running at once ($SAKD_QUEUE_JOBS, default 1); a bad value stops the stage
    with one line (exit 2), before any training."""
    raw = (os.environ if env is None else env).get(JOBS_ENV, "1")
    try:
        jobs = int(raw)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise UserError(f"${JOBS_ENV} must be a positive integer, not {raw!r}")
    return jobs


def cpu_share(jobs: int, cores: int | None = None) -> int:
    """This worker's CPU threads when `jobs` workers share the machine's cores."""
    return max(1, (cores or os.cpu_count() or 1) // jobs)


def worker_device(device: torch.device, root: Path, threads: int) -> torch.device:
    """The device of this worker: an unnumbered `cuda` becomes its slot's GPU; on CPU,
    `threads == 0` becomes its share of the cores. An explicit `cuda:N` stays as it is."""
    if device.type == "cuda" and device.index is None:
        device = slot_device(take_slot(root), torch.cuda.device_count())
        torch.cuda.set_device(device)  # CUDA graphs, autocast and caches follow the current GPU
        return device
    if device.type == "cpu" and threads == 0:
        torch.set_num_threads(cpu_share(queue_jobs()))
    return device
