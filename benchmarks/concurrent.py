"""Several runs per device: k processes of the same benchmark at once, aggregate images/s.

One SAKD run of CIFAR-size networks leaves most of a modern GPU idle, so a study is faster
with several runs sharing it (N experiment workers per device). This measures that: k spawned
processes build their models and warm up, wait for each other at a barrier, then time their
steps at the same time. Each reports its own figures; the aggregate images/s of a strategy is
the sum over processes (each process's images/s is from its median step).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from benchmarks.config import BenchConfig
from benchmarks.run import run_bench

BARRIER_TIMEOUT_S = 1800.0  # builds and first compilations of every process must fit in it


def run_concurrent(cfg: BenchConfig, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run cfg.concurrent copies of the benchmark at once; the JSON document (see module)."""
    k = cfg.concurrent
    single = replace(cfg, concurrent=1)
    ctx = mp.get_context("spawn")  # CUDA cannot be forked; each process gets its own context
    barrier, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(single, j, barrier, results), daemon=True)
             for j in range(k)]
    log(f"starting {k} concurrent runs of the benchmark")
    for proc in procs:
        proc.start()
    runs: list[dict[str, Any] | None] = [None] * k
    try:
        for _ in range(k):
            j, outcome = _next_result(results, procs)
            if isinstance(outcome, str):
                raise ValueError(f"concurrent run {j} failed: {outcome}")
            runs[j] = outcome
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
    return summarise_concurrent(cfg, [r for r in runs if r is not None])


def _next_result(results: Any, procs: list) -> tuple[int, dict[str, Any] | str]:
    """The next (run index, result or error) from the queue; an error if a process died."""
    while True:
        try:
            return results.get(timeout=5.0)
        except queue_module.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                return procs.index(dead[0]), f"process exited with code {dead[0].exitcode}"


def _child(cfg: BenchConfig, j: int, barrier: Any, results: Any) -> None:
    try:
        result = run_bench(cfg, before_timing=lambda: barrier.wait(BARRIER_TIMEOUT_S))
        results.put((j, result.to_dict()))
    except Exception as err:  # reported by the parent, which stops the others
        barrier.abort()
        results.put((j, f"{type(err).__name__}: {err}"))


def summarise_concurrent(cfg: BenchConfig, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per strategy: aggregate images/s (sum over runs) and each run's; plus every run."""
    out: dict[str, Any] = {"concurrent": len(runs)}
    for name in cfg.strategies:
        per_run = [r[name]["images_per_s"] for r in runs]
        epochs = [r[name]["epoch_images_per_s"] for r in runs]
        out[name] = {
            "images_per_s": sum(per_run),
            "per_run_images_per_s": per_run,
            "median_step_s": sum(r[name]["median_step_s"] for r in runs) / len(runs),
            "epoch_images_per_s": None if None in epochs else sum(epochs),
        }
    out["config"] = runs[0]["config"] | {"concurrent": len(runs)}
    out["machine"] = runs[0]["machine"]
    out["runs"] = runs
    return out


def format_concurrent(doc: dict[str, Any]) -> str:
    """The printed summary of concurrent runs."""
    lines = [f"{'strategy':<10} {'aggregate img/s':>15}  per run"]
    for name in doc["config"]["strategies"]:
        r = doc[name]
        per = ", ".join(f"{v:.1f}" for v in r["per_run_images_per_s"])
        lines.append(f"{name:<10} {r['images_per_s']:15.1f}  [{per}]")
    lines.append(f"{doc['concurrent']} concurrent runs on {doc['machine']['device']}")
    return "\n".join(lines)
