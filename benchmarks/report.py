"""The plain-text table `sakd bench` prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks.config import BenchResult


def format_table(result: BenchResult) -> str:
    """A plain-text table of the result, with the configuration and machine underneath."""
    cfg, m = result.config, result.machine
    head = (f"{'strategy':<10} {'median s/step':>13} {'min':>7} {'p90':>7} {'img/s':>8} "
            f"{'peak MiB':>9} {'step MiB':>9} {'epoch s':>8} {'(median)':>8}")
    lines = [head, "-" * len(head)]
    for name, r in result.strategies.items():
        epoch = _or_dash(r.epoch_s, 8, 2)
        lines.append(f"{name:<10} {r.median_step_s:13.3f} {r.min_step_s:7.3f} "
                     f"{r.p90_step_s:7.3f} {r.images_per_s:8.1f} {r.peak_mem_mb:9.0f} "
                     f"{_or_dash(r.step_mem_mb, 9, 0)} {epoch} "
                     f"{_or_dash(r.epoch_median_s, 8, 2)}")
    ratio = result.ratio_adaptive_always
    if ratio is not None:
        lines.append(f"adaptive / always = {ratio:.2f}")
    lines.append(
        f"{cfg.teacher} -> {cfg.student} ({cfg.distiller}), batch {cfg.batch_size}, "
        f"{cfg.input_size}x{cfg.input_size}, {result_device(m)}, threads {m['torch_threads']}, "
        f"channels_last {cfg.channels_last}, autocast {cfg.autocast}, compile {cfg.compile}, "
        f"fold_bn {cfg.fold_batchnorm}, capture {cfg.capture}, "
        f"fused_optimizer {cfg.fused_optimizer}; "
        f"{cfg.steps} steps after {cfg.warmup} warm-up; epoch = {result.epoch_images} images; "
        f"peak memory: {result.peak_mem_kind}; load avg {m['load_avg']} -> "
        f"{m['load_avg_after']}"
    )
    return "\n".join(lines)


def _or_dash(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def result_device(machine: Mapping[str, Any]) -> str:
    if "gpu" in machine:
        return f"{machine['device']} ({machine['gpu']})"
    return f"cpu ({machine['cpu']}, {machine['cpu_count']} cores)"
