"""`sakd bench`: time the training step per strategy; print a table, optionally write JSON.

A tool, not a DVC stage: it reads no params.yaml, trains nothing that is kept, and its JSON
goes where --json says (written atomically).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import BenchConfig, BenchResult, format_table, run_bench
from benchmarks.concurrent import format_concurrent, run_concurrent
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
) -> BenchResult | dict[str, Any]:
    """Run the benchmark (cfg.concurrent copies at once if > 1), print its table and write
    the JSON document if asked."""
    try:
        if cfg.concurrent > 1:
            result = run_concurrent(cfg, log=log)
            doc, table = result, format_concurrent(result)
        else:
            result = run_bench(cfg, log=log)
            doc, table = result.to_dict(), format_table(result)
    except ValueError as err:  # unknown distiller/pair, CUDA missing, a failed run, ...
        raise UserError(str(err)) from None
    log(table)
    if json_path is not None:
        write_json(json_path, doc)
        log(f"wrote {json_path}")
    return result
