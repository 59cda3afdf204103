"""Interleaved timing: one step (or batch) of every strategy per round, in rotated order, so
load bursts from other processes slow all strategies alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch

from benchmarks.memory import PeakMemory
from sakd.data.device_loader import DeviceLoader


def device_sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def rotations(names: Sequence[str], rounds: int) -> Iterator[list[str]]:
    """`rounds` orders of `names`, each rotated by one from the previous (fair interleaving)."""
    names = list(names)
    for r in range(rounds):
        k = r % len(names)
        yield names[k:] + names[:k]


def interleaved_step_times(
    calls: Mapping[str, Callable[[], object]],
    steps: int,
    warmup: int,
    sync: Callable[[], None],
    memory: PeakMemory,
    before_timing: Callable[[], object] = lambda: None,
) -> tuple[dict[str, list[float]], dict[str, tuple[float, float | None]]]:
    """Seconds of each timed call per name, and each name's highest `memory.stop()` (MiB)."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    sync()
    before_timing()
    times: dict[str, list[float]] = {name: [] for name in calls}
    peaks: dict[str, tuple[float, float | None]] = dict.fromkeys(calls, (0.0, None))
    for order in rotations(list(calls), steps):
        for name in order:
            memory.start()
            started = time.perf_counter()
            calls[name]()
            sync()
            times[name].append(time.perf_counter() - started)
            peaks[name] = _higher(peaks[name], memory.stop())
    return times, peaks


def _higher(
    a: tuple[float, float | None], b: tuple[float, float | None]
) -> tuple[float, float | None]:
    added = [v for v in (a[1], b[1]) if v is not None]
    return max(a[0], b[0]), (max(added) if added else None)


def interleaved_epoch_times(
    steps: Mapping[str, Callable[..., dict[str, torch.Tensor]]],
    loader: DeviceLoader,
    sync: Callable[[], None],
) -> dict[str, tuple[list[float], float]]:
    """One epoch per name, batches interleaved across names: (seconds of each batch, seconds
    of the epoch-end reduction). A batch's time includes making it (crop, flip, normalise);
    the reduction is the training loop's one host sync of the summed step statistics. Each
    name iterates its own epoch of the loader (same cost, other augmentation)."""
    iterators = {name: iter(loader) for name in steps}
    batch_times: dict[str, list[float]] = {name: [] for name in steps}
    sums: dict[str, dict[str, torch.Tensor]] = {name: {} for name in steps}
    n_batches = len(loader)
    sync()
    for order in rotations(list(steps), n_batches):
        for name in order:
            started = time.perf_counter()
            x, y, index = next(iterators[name])
            stats = steps[name](x, y, index)
            acc = sums[name]
            for key, value in stats.items():
                acc[key] = value if key not in acc else acc[key] + value
            sync()
            batch_times[name].append(time.perf_counter() - started)
    out = {}
    for name, acc in sums.items():
        started = time.perf_counter()
        torch.cat([v.detach().float().reshape(-1) for v in acc.values()]).cpu()
        out[name] = (batch_times[name], time.perf_counter() - started)
    return out
