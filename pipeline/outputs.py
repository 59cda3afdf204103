"""Metrics JSON and plot CSV files, written atomically (temp file + rename)."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sakd.atomic import atomic_write, atomic_write_json, atomic_write_text

write_json = atomic_write_json  # the name the stages use


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def publish_checkpoint(resume: Path, output: Path, keep_resume: bool = False) -> None:
    """Move a finished run's state from its resume file to the DVC output (one rename, so the
    output is never half-written and the resume file is gone once the run is done).

    keep_resume: copy instead (temp file + rename), for a stage that runs several seeds: DVC
    deletes a stage's outputs before it runs it again, so a stage killed after its first seed
    finds that seed's finished state in the resume folder and does not retrain it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if keep_resume:
        atomic_write(output, lambda tmp: shutil.copyfile(resume, tmp))
    else:
        os.replace(resume, output)


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def accuracy_summary(history: list[dict[str, float]]) -> dict[str, float | int]:
    """The reported number (last epoch's test top-1/top-5, what the paper reports) and the
    validation numbers; the best epoch is chosen on validation, never on test."""
    last = history[-1]
    best = max(history, key=lambda h: h["val/top1"])
    return {
        "top1": last["test/top1"],
        "top5": last["test/top5"],
        "final_epoch": int(last["epoch"]),
        "val_top1": last["val/top1"],
        "best_val_top1": best["val/top1"],
        "best_epoch": int(best["epoch"]),
    }


CURVE_COLUMNS = ["epoch", "train/loss", "train/top1", "val/top1", "val/top5", "lr"]
