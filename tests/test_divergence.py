"""Divergence stops the run with one line saying what diverged, when, and what was kept; the
kept checkpoint is finite everywhere (parameters and BatchNorm buffers) or there is none."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from typer.testing import CliRunner

import pipeline.pretrain
from pipeline.cli import app
from pipeline.fetch import run_fetch
from sakd.build_pretrain import build_supervised_run
from sakd.config import load_params
from sakd.tracking import MemoryTracker
from sakd.train.checkpoint import load_checkpoint
from sakd.train.loop import RunSpec, TrainingDiverged, TrainingJob, fit

pytestmark = pytest.mark.slow  # end to end: diverging pretrain runs (fit and the CLI)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from tests.conftest import repo_params

    raw = repo_params()
    raw["runtime"]["device"] = "cpu"
    raw["pretrain"].update(epochs=2, milestones=[1])
    root = tmp_path_factory.mktemp("digits")
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    run_fetch(load_params(raw), root)
    return root, load_params(raw)


def _job(digits, path, lr: float | None = None) -> TrainingJob:
    root, params = digits
    run = build_supervised_run(params, root / "data", torch.device("cpu"), "resnet8")
    if lr is not None:  # beyond what params.yaml allows: the library must still cope
        for group in run.optimizers["model"].param_groups:
            group["lr"] = lr
    return TrainingJob(step=run.step, train_loader=run.train_loader, evaluate=run.evaluate,
                       epochs=2, modules={"model": run.model}, optimizers=run.optimizers,
                       schedulers=run.schedulers, checkpoint_path=path, config_hash="h",
                       progress=False)


def _fit(job):
    return fit(job, MemoryTracker(), RunSpec("e", "r", {}, {}), log=lambda _: None)


def test_a_first_epoch_divergence_keeps_nothing_and_says_so(digits, tmp_path):
    with pytest.raises(TrainingDiverged) as err:
        _fit(_job(digits, tmp_path / "m.pt", lr=1e6))
    message = str(err.value)
    assert "\n" not in message
    assert "epoch 1/2" in message and "train/loss" in message
    assert "no checkpoint was kept" in message
    assert not (tmp_path / "m.pt").exists()


def test_an_infinite_batchnorm_variance_is_divergence_and_is_never_saved(digits, tmp_path):
    job = _job(digits, tmp_path / "m.pt")
    inner, model = job.step, job.modules["model"]
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    calls = {"n": 0}

    def overflowing(x, y, index):  # what lr 20 does: finite losses, running_var -> inf
        calls["n"] += 1
        stats = inner(x, y, index)
        if calls["n"] > len(job.train_loader):
            bn.running_var.fill_(math.inf)
        return stats

    job.step = overflowing
    with pytest.raises(TrainingDiverged, match=r"epoch 2/2: model\..*running_var not finite; "
                                               r"kept .*m\.pt from epoch 1"):
        _fit(job)
    state = load_checkpoint(tmp_path / "m.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["modules"]["model"].values()
               if t.is_floating_point())


def test_the_cli_exits_2_with_one_line_on_divergence(digits, monkeypatch):
    root, _ = digits
    build = pipeline.pretrain.build_supervised_run

    def explosive(*args, **kwargs):
        run = build(*args, **kwargs)
        for group in run.optimizers["model"].param_groups:
            group["lr"] = 1e6
        return run

    monkeypatch.setattr(pipeline.pretrain, "build_supervised_run", explosive)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    result = CliRunner().invoke(app, ["pretrain", "--arch", "resnet8", "-q",
                                      "--root", str(root)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error: training diverged in epoch 1/2" in result.output
