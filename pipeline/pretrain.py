"""`pretrain` stage: supervised training of one architecture (a teacher, or a student alone)."""

from __future__ import annotations

from pathlib import Path

from pipeline.outputs import CURVE_COLUMNS, accuracy_summary, write_csv, write_json
from pipeline.paths import Layout
from pipeline.settings import (
    data_options,
    git_commit,
    make_tracker,
    resolve_device,
    seed_everything,
)
from sakd.config import Params, config_hash, flatten
from sakd.data import build_loaders
from sakd.models import create_model
from sakd.tracking import Tracker
from sakd.train.evaluate import evaluate
from sakd.train.loop import RunSpec, TrainingJob, fit, multistep_sgd
from sakd.train.runtime import autocast_enabled, place_model
from sakd.train.supervised import SupervisedStep


def run_pretrain(
    params: Params, arch: str, root: Path, tracker: Tracker | None = None, progress: bool = True
) -> dict:
    """Train `arch` alone on the configured dataset; returns the metrics written."""
    cfg, data = params.pretrain, params.data
    if arch not in params.runs.pretrain:
        from pipeline.errors import UserError

        raise UserError(f"{arch!r} is not in runs.pretrain {params.runs.pretrain}")
    layout = Layout(root, data.dataset)
    device = resolve_device(params.runtime)
    seed_everything(cfg.seed, params.runtime.deterministic)
    train_loader, test_loader, info = build_loaders(
        data.dataset, root / data.root, batch_size=cfg.batch_size, device=device, seed=cfg.seed,
        num_workers=data.workers, channels_last=params.runtime.channels_last,
        **data_options(params),
    )
    model = place_model(create_model(arch, info.num_classes), device,
                        channels_last=params.runtime.channels_last, compile=params.runtime.compile)
    autocast = autocast_enabled(params.runtime.autocast, device)
    opt, sched = multistep_sgd(
        model.parameters(), cfg.lr_for(arch), cfg.momentum, cfg.weight_decay,
        cfg.milestones, cfg.lr_decay,
    )
    ckpt = layout.pretrained(arch)
    job = TrainingJob(
        step=SupervisedStep(model, opt, autocast=autocast),
        train_loader=train_loader,
        evaluate=lambda: evaluate(model, test_loader, autocast=autocast),
        epochs=cfg.epochs,
        modules={"model": model},
        optimizers={"model": opt},
        schedulers={"model": sched},
        checkpoint_path=ckpt,
        config_hash=config_hash(data, cfg, arch),
        metadata={"arch": arch, "num_classes": info.num_classes, "dataset": data.dataset},
        progress=progress,
    )
    tags = {
        "stage": "pretrain", "dataset": data.dataset, "arch": arch,
        "role": "teacher/student-alone", "seed": str(cfg.seed),
        "git_commit": git_commit(root), "params_hash": job.config_hash,
    }
    run = RunSpec(
        experiment=f"{params.tracking.experiment_prefix}-pretrain",
        name=f"{data.dataset}/{arch}",
        tags=tags,
        params={**flatten(data, "data"), **flatten(cfg, "pretrain"), "arch": arch},
    )
    tracker = tracker or make_tracker(params, root)
    metrics: dict = {}

    def finish(history: list[dict]) -> None:
        metrics.update(accuracy_summary(history))  # numbers only: `dvc metrics show` columns
        write_json(layout.pretrain_metrics(arch), metrics)
        write_csv(layout.pretrain_plots(arch), history, CURVE_COLUMNS)
        tracker.log_metrics({"final/top1": metrics["top1"], "final/top5": metrics["top5"]},
                            step=cfg.epochs)
        tracker.log_artifact(ckpt, "checkpoint")
        tracker.log_artifact(layout.pretrain_plots(arch), "plots")

    fit(job, tracker, run, on_finish=finish)
    return metrics

