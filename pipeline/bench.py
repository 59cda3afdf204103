"""`sakd bench`: time the training step per strategy; print a table, optionally write JSON.

A tool, not a DVC stage: it reads no params.yaml, trains nothing that is kept, and its JSON
goes where --json says (written atomically).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks import BenchConfig, BenchResult, format_table, run_bench
from pipeline.errors import UserError
from pipeline.outputs import write_json


def make_config(**options) -> BenchConfig:
    """A BenchConfig from CLI options; a bad value becomes a UserError naming it."""
    try:
        return BenchConfig(**options)
    except ValueError as err:
        raise UserError(str(err)) from None


def run_bench_command(
    cfg: BenchConfig, json_path: Path | None = None, log: Callable[[str], None] = print
) -> BenchResult:
    """Run the benchmark, print its table and write the JSON document if asked."""
    try:
        result = run_bench(cfg, log=log)
    except ValueError as err:  # unknown distiller/pair, CUDA missing, ...
        raise UserError(str(err)) from None
    log(format_table(result))
    if json_path is not None:
        write_json(json_path, result.to_dict())
        log(f"wrote {json_path}")
    return result
