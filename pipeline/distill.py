"""`distill` stage: one teacher -> student pair with one distiller and one strategy, every seed.

One process runs all seeds of a stage (`run_distill_cell`): start-up (torch, MLflow, its
store) is paid once per stage, not once per seed; each seed stays its own MLflow run with its
own checkpoint, metrics and plots. The run itself is built by sakd.build; this module adds what
belongs to the pipeline: the teacher checkpoint it loads, the checkpoint path, the MLflow run,
and the DVC outputs. `build_distillation` is shared with the sensitivity stage (its trials).
A seed's MLflow run is named `<distiller> <strategy> s<seed>` and tagged with dataset, pair and
its run path; a finished seed is not trained again unless forced (pipeline.cells).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from pipeline.cells import Cell, skip_finished
from pipeline.decisions import write_decision_grid
from pipeline.launch import training_device
from pipeline.lineage import log_dataset_and_model, source_tags
from pipeline.outputs import (
    CURVE_COLUMNS,
    accuracy_summary,
    publish_checkpoint,
    write_csv,
    write_json,
)
from pipeline.paths import Layout, run_key
from pipeline.settings import git_commit, make_tracker, open_store_early
from pipeline.trained import load_trained
from sakd.build import build_distill_run
from sakd.config import DistillConfig, Params, config_hash, flatten
from sakd.models import SpotNet, create_model
from sakd.tracking import Tracker
from sakd.train.loop import RunSpec, TrainingJob, fit


def _teacher_factory(params: Params, root: Path, arch: str) -> Callable[[int], SpotNet]:
    """The teacher for a dataset of n classes: the pretrained one, or a fresh network for
    Table VIII's `scratch` mode."""
    path = Layout(root, params.data.dataset).pretrained(arch)

    def make(num_classes: int) -> SpotNet:
        if params.distill.teacher_trainable == "scratch":
            return create_model(arch, num_classes)
        teacher, _ = load_trained(path, "model", f"pretrain@{arch}", arch, num_classes)
        return teacher

    return make


def distill_hash(params: Params, teacher: str, student: str, distiller: str, strategy: str,
                 seed: int, cfg: DistillConfig | None = None) -> str:
    """The config hash of one distillation (checkpoint and MLflow tag `params_hash`)."""
    return config_hash(params.data, cfg or params.distill, teacher, student, distiller,
                       strategy, seed)


def build_distillation(
    params: Params, root: Path, teacher_arch: str, student_arch: str, distiller_name: str,
    strategy: str, seed: int, checkpoint_path: Path, cfg: DistillConfig | None = None,
    progress: bool = True, with_test: bool = True,
) -> TrainingJob:
    """The builder's run plus what the pipeline owns: the teacher checkpoint it loads, the
    checkpoint path and config hash, the MLflow tags and params. `cfg` overrides
    params.distill (the tuner's trials, built with `with_test=False`)."""
    cfg = cfg or params.distill
    data = params.data
    job = build_distill_run(params, root / data.root, training_device(params.runtime, root),
                            _teacher_factory(params, root, teacher_arch), student_arch,
                            distiller_name, strategy, seed, cfg)
    config_hash = distill_hash(params, teacher_arch, student_arch, distiller_name, strategy,
                               seed, cfg)
    tags = {
        "stage": "distill", "dataset": data.dataset, "teacher": teacher_arch,
        "student": student_arch, "pair": f"{teacher_arch}-{student_arch}",
        "distiller": distiller_name, "strategy": strategy, "seed": str(seed),
        "git_commit": git_commit(root), "params_hash": config_hash,
        **source_tags(root, f"sakd distill --teacher {teacher_arch} --student {student_arch} "
                            f"--distiller {distiller_name} --strategy {strategy} --seed {seed}"),
    }
    run_params = {
        **flatten(data, "data"), **flatten(cfg, "distill"), "teacher": teacher_arch,
        "student": student_arch, "distiller": distiller_name, "strategy": strategy,
        "seed": seed, "beta2_effective": job.step.beta2,
    }
    return replace(
        job, checkpoint_path=checkpoint_path, config_hash=config_hash, progress=progress,
        test=job.test if with_test else None,  # tuning trials never read the test split
        metadata={**job.metadata, "teacher": teacher_arch}, tags=tags, params=run_params,
    )


def run_distill_cell(
    params: Params, root: Path, teacher: str, student: str, distiller: str, strategy: str,
    seeds: Sequence[int], progress: bool = True,
    on_seed: Callable[[int, dict], None] | None = None, tracker: Tracker | None = None,
    force: bool = False,
) -> dict[int, dict]:
    """Every seed of one distill stage, one after the other in this process; metrics per seed.

    A finished seed's state stays in the resume folder until the last seed is done, so a stage
    killed part-way (whose outputs DVC deletes before running it again) retrains only the seeds
    that had not finished."""
    out: dict[int, dict] = {}  # (MLflow keeps one store per URI: opened once for all seeds)
    for seed in seeds:
        out[seed] = run_distill(params, root, teacher, student, distiller, strategy, seed,
                                tracker=tracker, progress=progress, keep_resume=True,
                                force=force)
        if on_seed:
            on_seed(seed, out[seed])
    layout = Layout(root, params.data.dataset)
    for seed in seeds:
        layout.resume(layout.student(run_key(teacher, student, distiller, strategy, seed))
                      ).unlink(missing_ok=True)
    return out


def run_distill(
    params: Params, root: Path, teacher: str, student: str, distiller: str, strategy: str,
    seed: int, tracker: Tracker | None = None, progress: bool = True, keep_resume: bool = False,
    force: bool = False,
) -> dict:
    """Run one seed of a distill stage and write its DVC outputs; returns its metrics
    (rank 0 of a torchrun launch writes them; the other ranks return {}). A finished seed is
    reported and not trained again (its metrics are returned) unless `force`."""
    layout = Layout(root, params.data.dataset)
    key = run_key(teacher, student, distiller, strategy, seed)
    ckpt = layout.student(key)
    resume = layout.resume(ckpt)
    cell = Cell(f"{params.tracking.experiment_prefix}-distill", f"{params.data.dataset}/{key}",
                distill_hash(params, teacher, student, distiller, strategy, seed), ckpt, resume)
    tracker = tracker or make_tracker(params, root)
    open_store_early(tracker)  # a broken store fails now, before any data or training
    done = skip_finished(tracker, cell, force)
    if done is not None:
        return done
    d = build_distillation(params, root, teacher, student, distiller, strategy, seed, resume,
                           progress=progress)
    spec = RunSpec(experiment=cell.experiment, name=f"{distiller} {strategy} s{seed}",
                   path=cell.path, tags=d.tags, params=d.params)
    plots = layout.distill_plots(key)
    metrics: dict = {}

    def finish(history: list[dict]) -> None:
        metrics.update(accuracy_summary(history))  # numbers only; the path names the run
        publish_checkpoint(resume, ckpt, keep_resume=keep_resume)
        spot_names = d.step.spot_names
        write_csv(plots / "curves.csv", history, [*CURVE_COLUMNS, "tau", "train/ce",
                                                   "train/kd", "train/distill", "train/routing"])
        write_csv(plots / "route.csv",
                  [{"epoch": h["epoch"], **{n: h[f"route/p_distill/{n}"] for n in spot_names}}
                   for h in history],
                  ["epoch", *spot_names])
        write_json(layout.distill_metrics(key), metrics)
        tracker.log_metrics({"final/top1": metrics["top1"], "final/top5": metrics["top5"]},
                            step=d.epochs)
        tracker.log_artifact(plots / "curves.csv", "plots")
        tracker.log_artifact(plots / "route.csv", "plots")
        if params.distill.decision_grid and d.step.strategy.uses_policy:  # others: fixed
            with tempfile.TemporaryDirectory() as tmp:
                for path in write_decision_grid(d.step, d.data.val, d.data.info,
                                                params.distill.decision_grid, Path(tmp)):
                    tracker.log_artifact(path, "decisions")
        tracker.log_artifact(ckpt, "checkpoint")
        log_dataset_and_model(tracker, d, params.data.dataset,
                              root / params.data.root / params.data.dataset)

    fit(d, tracker, spec, on_finish=finish)
    return metrics
