"""A restarted cell: the orphaned tracking run of a killed process is closed (one live run per
cell), and a finished cell is not retrained (its outputs are rewritten from its history)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sakd.tracking import MemoryTracker, MLflowTracker
from sakd.train.checkpoint import load_checkpoint
from sakd.train.loop import RunSpec, TrainingJob, fit

SPEC = RunSpec("sakd-distill", "digits/resnet14-resnet8/kd-always/seed0", {"seed": "0"}, {})


class Batches:
    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return 2

    def __iter__(self):
        for _ in range(2):
            yield torch.ones(4, 1), torch.zeros(4, dtype=torch.long), torch.arange(4)


def _job(path) -> TrainingJob:
    torch.manual_seed(0)
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y, index):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return {"loss": loss.detach(), "correct": torch.tensor(0)}

    return TrainingJob(step=step, train_loader=Batches(),
                       evaluate=lambda: {"top1": 50.0, "top5": 90.0}, epochs=2,
                       modules={"m": model}, optimizers={"m": opt}, schedulers={},
                       checkpoint_path=path, config_hash="h", progress=False)


@pytest.fixture
def mlflow_tracker(tmp_path):
    return MLflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "mlruns")


def _statuses(tracker: MLflowTracker) -> list[str]:
    import mlflow

    client = mlflow.MlflowClient(tracker.tracking_uri)
    exp = client.get_experiment_by_name(SPEC.experiment)
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.run_path = '{SPEC.name}'")
    return sorted(r.info.status for r in runs)


def test_a_run_killed_before_its_first_checkpoint_leaves_no_running_orphan(tmp_path,
                                                                          mlflow_tracker):
    import mlflow

    client = mlflow.MlflowClient(mlflow_tracker.tracking_uri)
    experiment = mlflow_tracker._experiment_id(SPEC.experiment)
    # what a SIGKILL leaves: RUNNING, no checkpoint; found by its cell's tag, not its name
    client.create_run(experiment, run_name=SPEC.name, tags={"run_path": SPEC.name})
    assert "RUNNING" in _statuses(mlflow_tracker)
    fit(_job(tmp_path / "c.pt"), mlflow_tracker, SPEC, log=lambda _: None)
    statuses = _statuses(mlflow_tracker)
    assert "RUNNING" not in statuses
    assert statuses.count("FINISHED") == 1 and "KILLED" in statuses


def test_a_finished_cell_is_not_retrained_and_rewrites_its_outputs(tmp_path):
    tracker = MemoryTracker()
    first = fit(_job(tmp_path / "c.pt"), tracker, SPEC, log=lambda _: None)
    before = load_checkpoint(tmp_path / "c.pt")
    again = _job(tmp_path / "c.pt")

    def no_training(*args):
        raise AssertionError("a finished cell was retrained")

    again.step = no_training
    finished: list = []
    lines: list[str] = []
    history = fit(again, tracker, SPEC, on_finish=finished.append, log=lines.append)
    assert history == first and finished == [first]
    assert "already finished" in lines[0]
    assert torch.equal(again.modules["m"].weight, before["modules"]["m"]["weight"])
    assert len(tracker.runs) == 1  # the same tracking run, reopened
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 2
