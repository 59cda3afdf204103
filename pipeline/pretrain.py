"""`pretrain` stage: supervised training of one architecture (a teacher, or a student alone).

Its MLflow run is named after the architecture (`resnet20`) and tagged with the dataset and its
run path (`<dataset>/<arch>`); a finished one is not trained again unless forced (pipeline.cells).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.cells import Cell, skip_finished
from pipeline.launch import training_device
from pipeline.lineage import log_dataset_and_model, source_tags
from pipeline.outputs import (
    CURVE_COLUMNS,
    accuracy_summary,
    publish_checkpoint,
    write_csv,
    write_json,
)
from pipeline.paths import Layout
from pipeline.settings import git_commit, make_tracker, open_store_early
from sakd.build_pretrain import build_supervised_run
from sakd.schema import PretrainParams, config_hash, flatten
from sakd.tracking import Tracker
from sakd.train.loop import RunSpec, fit


def run_pretrain(
    params: PretrainParams, arch: str, root: Path, tracker: Tracker | None = None,
    progress: bool = True, force: bool = False,
) -> dict:
    """Train `arch` alone on the configured dataset; returns the metrics written (rank 0 of a
    torchrun launch writes them; the other ranks return {}). A finished cell is reported and
    not trained again (its metrics are returned) unless `force`."""
    cfg, data = params.pretrain, params.data
    if arch not in params.runs.pretrain:
        from pipeline.errors import UserError

        raise UserError(f"{arch!r} is not in runs.pretrain {params.runs.pretrain}")
    layout = Layout(root, data.dataset)
    ckpt = layout.pretrained(arch)
    resume = layout.resume(ckpt)
    tracker = tracker or make_tracker(params, root)
    open_store_early(tracker)  # a broken store fails now, before any data or training
    cell = Cell(f"{params.tracking.experiment_prefix}-pretrain", f"{data.dataset}/{arch}",
                config_hash(data, cfg, arch), ckpt, resume)
    done = skip_finished(tracker, cell, force)
    if done is not None:
        return done
    device = training_device(params.runtime, root)
    job = replace(build_supervised_run(params, root / data.root, device, arch),
                  checkpoint_path=resume, config_hash=cell.params_hash, progress=progress)
    tags = {
        "stage": "pretrain", "dataset": data.dataset, "arch": arch,
        "role": "teacher/student-alone", "seed": str(cfg.seed),
        "git_commit": git_commit(root), "params_hash": job.config_hash,
        **source_tags(root, f"sakd pretrain --arch {arch}"),
    }
    run = RunSpec(
        experiment=cell.experiment, name=arch, path=cell.path, tags=tags,
        params={**flatten(data, "data"), **flatten(cfg, "pretrain"), "arch": arch},
    )
    metrics: dict = {}

    def finish(history: list[dict]) -> None:
        metrics.update(accuracy_summary(history))  # numbers only: `dvc metrics show` columns
        publish_checkpoint(resume, ckpt)
        write_json(layout.pretrain_metrics(arch), metrics)
        write_csv(layout.pretrain_plots(arch), history, CURVE_COLUMNS)
        tracker.log_metrics({"final/top1": metrics["top1"], "final/top5": metrics["top5"]},
                            step=cfg.epochs)
        tracker.log_artifact(ckpt, "checkpoint")
        tracker.log_artifact(layout.pretrain_plots(arch), "plots")
        log_dataset_and_model(tracker, job, data.dataset, root / data.root / data.dataset)

    fit(job, tracker, run, on_finish=finish)
    return metrics

