"""The epoch loop's bookkeeping: per-sample epoch means, one run per training, LR per epoch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sakd.tracking import MemoryTracker
from sakd.train.loop import RunSpec, TrainingJob, fit


class Batches:
    """Three batches of sizes 4, 4 and 2 (a short last batch)."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 3

    def __iter__(self):
        for size in (4, 4, 2):
            yield torch.zeros(size, 1), torch.zeros(size, dtype=torch.long), torch.arange(size)


def test_epoch_metrics_are_per_sample_means_and_lr_is_the_epochs(tmp_path):
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [1], gamma=0.1)

    def step(x, y, index):
        opt.step()  # a real step steps its optimiser before the epoch's scheduler step
        short = x.shape[0] == 2
        return {
            "loss": torch.tensor(4.0 if short else 1.0),  # batch means
            "correct": torch.tensor(x.shape[0] if short else 0),
        }

    job = TrainingJob(
        step=step, train_loader=Batches(), evaluate=lambda: {"top1": 50.0, "top5": 90.0},
        epochs=2, modules={"m": model}, optimizers={"m": opt}, schedulers={"m": sched},
        checkpoint_path=tmp_path / "ckpt.pt", config_hash="h", progress=False,
    )
    tracker = MemoryTracker()
    history = fit(job, tracker, RunSpec("e", "r", {}, {}), log=lambda _: None)
    assert history[0]["train/loss"] == pytest.approx((4 * 1 + 4 * 1 + 2 * 4) / 10)  # not 2.0
    assert history[0]["train/top1"] == pytest.approx(20.0)
    assert [h["lr"] for h in history] == pytest.approx([0.1, 0.01])  # the lr each epoch used
    assert len(tracker.runs) == 1
    assert tracker.metric_history("val/top1") == [(1, 50.0), (2, 50.0)]


def test_test_split_is_read_once_after_the_last_epoch_and_logged_apart_from_val(tmp_path):
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def test():
        calls.append("test")
        return {"top1": 70.0, "top5": 99.0}

    job = TrainingJob(
        step=lambda x, y, i: {"loss": torch.tensor(1.0)}, train_loader=Batches(),
        evaluate=lambda: calls.append("val") or {"top1": 50.0, "top5": 90.0}, test=test,
        epochs=3, modules={"m": model}, optimizers={"m": opt}, schedulers={},
        checkpoint_path=tmp_path / "ckpt.pt", config_hash="h", progress=False,
    )
    tracker = MemoryTracker()
    history = fit(job, tracker, RunSpec("e", "r", {}, {}), log=lambda _: None)
    assert calls == ["val", "val", "val", "test"]
    assert tracker.metric_history("test/top1") == [(3, 70.0)]
    assert "test/top1" not in history[0] and history[-1]["test/top1"] == 70.0
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["history"][-1]["test/top1"] == 70.0  # the evaluate stage can read it


@pytest.mark.parametrize("missing", ["checkpoint_path", "config_hash"])
def test_a_job_without_the_callers_checkpoint_and_hash_is_refused_before_any_epoch(
        tmp_path, missing):
    """A builder's job lacks what only its caller knows; fit says so before training."""
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = []
    job = TrainingJob(
        step=lambda x, y, i: steps.append(1) or {"loss": torch.tensor(1.0)},
        train_loader=Batches(), evaluate=lambda: {"top1": 0.0, "top5": 0.0}, epochs=1,
        modules={"m": model}, optimizers={"m": opt}, schedulers={},
        checkpoint_path=tmp_path / "ckpt.pt", config_hash="h", progress=False,
    )
    setattr(job, missing, None if missing == "checkpoint_path" else "")
    with pytest.raises(ValueError, match="checkpoint_path and config_hash"):
        fit(job, MemoryTracker(), RunSpec("e", "r", {}, {}), log=lambda _: None)
    assert not steps and not (tmp_path / "ckpt.pt").exists()
