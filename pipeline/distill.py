"""`distill` stage: one teacher -> student run with one distiller and one strategy.

`build_distillation` assembles everything a run needs (data, teacher, student, distiller,
step, schedules) so the sensitivity stage can reuse it with its own run and callbacks;
`run_distill` adds the DVC outputs (checkpoint, metrics JSON, plot CSVs) and MLflow artifacts.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.decisions import write_decision_grid
from pipeline.errors import UserError
from pipeline.outputs import CURVE_COLUMNS, accuracy_summary, write_csv, write_json
from pipeline.paths import Layout, run_key
from pipeline.settings import (
    data_options,
    git_commit,
    make_tracker,
    resolve_device,
    seed_everything,
)
from pipeline.trained import load_trained
from sakd.config import DistillConfig, Params, config_hash, flatten
from sakd.data import build_loaders
from sakd.distillers import create_distiller, distiller_options
from sakd.models import create_model
from sakd.spots import make_tau_schedule, tau_total
from sakd.tracking import Tracker
from sakd.train.distill_step import DistillStep, StepConfig, build_distill_step
from sakd.train.evaluate import evaluate
from sakd.train.loop import RunSpec, TrainingJob, fit
from sakd.train.runtime import autocast_enabled, place_model


@dataclass
class Distillation:
    """A ready-to-fit distillation run."""

    job: TrainingJob
    step: DistillStep
    test_loader: Any
    info: Any  # sakd.data.DatasetInfo (mean/std to show images)
    tags: dict[str, str]
    params: dict[str, Any]


def step_config(cfg: DistillConfig, distiller: str, student: str) -> StepConfig:
    return StepConfig(
        beta1=cfg.beta1, beta2=cfg.beta2_for(distiller), beta3=cfg.beta3, kd_T=cfg.kd_T,
        routing_loss=cfg.routing_loss, gamma=cfg.gamma, policy_init=cfg.policy_init,
        teacher_trainable=cfg.teacher_trainable, lr=cfg.lr_for(student),
        momentum=cfg.momentum, weight_decay=cfg.weight_decay,
        router_lr_ratio=cfg.router_lr_ratio, router_weight_decay=cfg.router_weight_decay,
    )


def _distiller_kwargs(name: str, cfg: DistillConfig, train_loader) -> dict[str, Any]:
    """The options of `name`: its declared ones from distill.options, plus the dataset's."""
    declared = cfg.options_for(name).model_dump()
    available = {
        "num_samples": lambda: train_loader.num_samples,
        "labels": lambda: train_loader.labels,
        **{key: (lambda v=value: v) for key, value in declared.items()},
    }
    return {k: available[k]() for k in distiller_options(name) if k in available}


def _teacher(params: Params, root: Path, arch: str, num_classes: int):
    """The pretrained teacher; Table VIII's `scratch` mode starts from random weights."""
    layout = Layout(root, params.data.dataset)
    if params.distill.teacher_trainable == "scratch":
        return create_model(arch, num_classes)
    teacher, state = load_trained(layout.pretrained(arch), "model", f"pretrain@{arch}")
    if state["num_classes"] != num_classes:
        raise UserError(
            f"teacher {layout.pretrained(arch)} has {state['num_classes']} classes but "
            f"{params.data.dataset} has {num_classes}"
        )
    return teacher


def build_distillation(
    params: Params,
    root: Path,
    teacher_arch: str,
    student_arch: str,
    distiller_name: str,
    strategy: str,
    seed: int,
    checkpoint_path: Path,
    cfg: DistillConfig | None = None,
    progress: bool = True,
) -> Distillation:
    """Assemble a distillation run; `cfg` overrides params.distill (the tuner's trials)."""
    cfg = cfg or params.distill
    data = params.data
    device = resolve_device(params.runtime)
    seed_everything(seed, params.runtime.deterministic)
    train_loader, test_loader, info = build_loaders(
        data.dataset, root / data.root, batch_size=cfg.batch_size, device=device, seed=seed,
        num_workers=data.workers, channels_last=params.runtime.channels_last,
        **data_options(params),
    )
    rt = params.runtime
    placement = {"channels_last": rt.channels_last, "compile": rt.compile}
    autocast = autocast_enabled(rt.autocast, device)
    teacher = place_model(_teacher(params, root, teacher_arch, info.num_classes), device,
                          **placement)
    student = place_model(create_model(student_arch, info.num_classes), device, **placement)
    example_x = next(iter(test_loader))[0][:2]
    with torch.no_grad():
        feats_s = student.eval()(example_x, return_features=True)[0]
        feats_t = teacher.eval()(example_x, return_features=True)[0]
    student.train()
    distiller = create_distiller(
        distiller_name, feats_s, feats_t, **_distiller_kwargs(distiller_name, cfg, train_loader)
    )
    tau_cfg = cfg.tau
    total = tau_total(tau_cfg.per, cfg.epochs, len(train_loader))
    tau_of = make_tau_schedule(tau_cfg.schedule, tau_cfg.tau0, tau_cfg.tau_min, total)
    step = build_distill_step(
        student, teacher, distiller, strategy, example_x,
        step_config(cfg, distiller_name, student_arch), tau=tau_of(0), autocast=autocast,
        channels_last=rt.channels_last,
    )
    schedulers = {
        name: torch.optim.lr_scheduler.MultiStepLR(opt, cfg.milestones, gamma=cfg.lr_decay)
        for name, opt in step.optimizers.items()
    }
    driver = TauDriver(step, tau_of, len(train_loader), tau_cfg.per)
    job = TrainingJob(
        step=driver,
        train_loader=train_loader,
        evaluate=lambda: evaluate(student, test_loader, autocast=autocast),
        epochs=cfg.epochs,
        modules=step.modules_to_checkpoint(),
        optimizers=step.optimizers,
        schedulers=schedulers,
        checkpoint_path=checkpoint_path,
        config_hash=config_hash(data, cfg, teacher_arch, student_arch, distiller_name,
                                strategy, seed),
        metadata={
            "arch": student_arch, "num_classes": info.num_classes, "dataset": data.dataset,
            "teacher": teacher_arch, "distiller": distiller_name, "strategy": strategy,
            "seed": seed, "spot_names": step.spot_names,
        },
        on_epoch_start=lambda epoch: _start_epoch(epoch, driver, distiller, teacher,
                                                  train_loader),
        summarize=lambda means: summarize(means, step.spot_names),
        progress=progress,
    )
    tags = {
        "stage": "distill", "dataset": data.dataset, "teacher": teacher_arch,
        "student": student_arch, "distiller": distiller_name, "strategy": strategy,
        "seed": str(seed), "git_commit": git_commit(root), "params_hash": job.config_hash,
    }
    run_params = {
        **flatten(data, "data"), **flatten(cfg, "distill"), "teacher": teacher_arch,
        "student": student_arch, "distiller": distiller_name, "strategy": strategy,
        "seed": seed, "beta2_effective": step.cfg.beta2,
    }
    return Distillation(job, step, test_loader, info, tags, run_params)


def _start_epoch(epoch: int, driver: TauDriver, distiller, teacher, train_loader):
    """Epoch 0 only happens on a fresh start: the distiller's own phase (FT's paraphraser
    pretraining) runs there, so a resumed run restores it from the checkpoint instead."""
    if epoch == 0:
        distiller.prepare(teacher, train_loader)
    return driver.start_epoch(epoch)


class TauDriver:
    """Sets the Gumbel temperature per epoch or per step, then runs the step.

    Stateless across resume: the position is recomputed from the epoch at each epoch start.
    """

    def __init__(self, step: DistillStep, tau_of, steps_per_epoch: int, per: str) -> None:
        self.step, self.tau_of, self.per = step, tau_of, per
        self.steps_per_epoch = steps_per_epoch
        self.t = 0

    def start_epoch(self, epoch: int) -> dict[str, float]:
        self.t = epoch * self.steps_per_epoch if self.per == "step" else epoch
        self.step.set_tau(self.tau_of(self.t))
        return {"tau": self.step.tau}

    def __call__(self, x, y, index):
        if self.per == "step":
            self.step.set_tau(self.tau_of(self.t))
            self.t += 1
        return self.step(x, y, index)


def summarize(means: dict[str, torch.Tensor], spot_names: list[str]) -> dict[str, float]:
    """Per-epoch metrics: loss terms and route/p_distill/<spot> (Fig. 3's curves)."""
    out = {f"train/{k}": float(means[k]) for k in ("ce", "kd", "distill", "routing")}
    if "teacher_ce" in means:
        out["train/teacher_ce"] = float(means["teacher_ce"])
    for name, p in zip(spot_names, means["p_distill"].tolist(), strict=True):
        out[f"route/p_distill/{name}"] = p
    for name, loss in zip(spot_names[:-1], means["distill_spots"].tolist(), strict=True):
        out[f"train/distill/{name}"] = loss
    return out


def run_distill(
    params: Params, root: Path, teacher: str, student: str, distiller: str, strategy: str,
    seed: int, tracker: Tracker | None = None, progress: bool = True,
) -> dict:
    """Run one cell of the distill matrix and write its DVC outputs; returns its metrics."""
    layout = Layout(root, params.data.dataset)
    key = run_key(teacher, student, distiller, strategy, seed)
    ckpt = layout.student(key)
    d = build_distillation(params, root, teacher, student, distiller, strategy, seed, ckpt,
                           progress=progress)
    tracker = tracker or make_tracker(params, root)
    run = RunSpec(
        experiment=f"{params.tracking.experiment_prefix}-distill",
        name=f"{params.data.dataset}/{key}", tags=d.tags, params=d.params,
    )
    plots = layout.distill_plots(key)
    metrics: dict = {}

    def finish(history: list[dict]) -> None:
        metrics.update(accuracy_summary(history))  # numbers only; the path names the run
        route_cols = [f"route/p_distill/{n}" for n in d.step.spot_names]
        write_csv(plots / "curves.csv", history, [*CURVE_COLUMNS, "tau", "train/ce",
                                                   "train/kd", "train/distill", "train/routing"])
        write_csv(plots / "route.csv",
                  [{"epoch": h["epoch"], **{c.rsplit("/", 1)[1]: h[c] for c in route_cols}}
                   for h in history],
                  ["epoch", *d.step.spot_names])
        write_json(layout.distill_metrics(key), metrics)
        tracker.log_metrics({"final/top1": metrics["top1"], "final/top5": metrics["top5"]},
                            step=d.job.epochs)
        tracker.log_artifact(plots / "curves.csv", "plots")
        tracker.log_artifact(plots / "route.csv", "plots")
        if params.distill.decision_grid:
            with tempfile.TemporaryDirectory() as tmp:
                for path in write_decision_grid(d.step, d.test_loader, d.info,
                                                params.distill.decision_grid, Path(tmp)):
                    tracker.log_artifact(path, "decisions")
        tracker.log_artifact(ckpt, "checkpoint")

    fit(d.job, tracker, run, on_finish=finish)
    return metrics
