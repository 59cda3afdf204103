"""The benchmark driver: build every strategy's step, time steps and one epoch, summarise."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable

import torch

from benchmarks.config import BenchConfig, BenchResult, StrategyResult
from benchmarks.machine import machine_info, resolve_bench_device
from benchmarks.memory import PeakMemory
from benchmarks.step import build_step, first_batch, synthetic_loader
from benchmarks.timing import device_sync, interleaved_epoch_times, interleaved_step_times


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = lambda _: None,
              before_timing: Callable[[], object] = lambda: None) -> BenchResult:
    """Time cfg.strategies (interleaved) and one epoch each; see the module docstring.
    `before_timing` runs after the warm-up (concurrent runs wait there for each other)."""
    device = resolve_bench_device(cfg.device)
    saved_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        epoch_images = cfg.images_per_epoch(device)
        loader = synthetic_loader(cfg, device, epoch_images)
        log(f"building {cfg.teacher} -> {cfg.student} ({cfg.distiller}) for "
            f"{', '.join(cfg.strategies)} on {device}")
        steps = {s: build_step(cfg, s, device, loader) for s in cfg.strategies}
        x, y, index = first_batch(loader)
        calls = {s: (lambda st=st: st(x, y, index)) for s, st in steps.items()}
        memory = PeakMemory(device)
        machine = machine_info(device)
        log(f"timing {cfg.steps} interleaved steps after {cfg.warmup} warm-up steps each")
        sync = device_sync(device)
        times, peaks = interleaved_step_times(calls, cfg.steps, cfg.warmup, sync, memory,
                                              before_timing)
        used = len(loader) * cfg.batch_size if epoch_images >= cfg.batch_size else 0
        epochs = {}
        if used:
            log(f"timing one epoch of {used} images per strategy")
            epochs = interleaved_epoch_times(steps, loader, sync)
        machine["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
        results = {
            s: _summarise(times[s], peaks[s], cfg.batch_size, epochs.get(s), used)
            for s in cfg.strategies
        }
        return BenchResult(cfg, results, machine, memory.kind, used)
    finally:
        torch.set_num_threads(saved_threads)


def _summarise(
    times: list[float],
    peak: tuple[float, float | None],
    batch: int,
    epoch: tuple[list[float], float] | None,
    epoch_images: int,
) -> StrategyResult:
    median = statistics.median(times)
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    result = StrategyResult(
        median_step_s=median, images_per_s=batch / median, peak_mem_mb=peak[0],
        step_mem_mb=peak[1],
        min_step_s=ordered[0], p90_step_s=p90, steps=len(times),
    )
    if epoch is not None:
        batch_times, reduce_s = epoch
        result.epoch_s = sum(batch_times) + reduce_s
        result.epoch_images_per_s = epoch_images / result.epoch_s
        result.epoch_median_s = len(batch_times) * statistics.median(batch_times) + reduce_s
    return result
