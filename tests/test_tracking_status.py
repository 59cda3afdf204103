"""How a run ends in MLflow: FINISHED, FAILED on an error, KILLED when stopped on purpose (a
pruned Optuna trial), and a child's end never ends its parent."""

from __future__ import annotations

import mlflow
import pytest

from sakd.tracking import MemoryTracker, MLflowTracker
from sakd.tuning.workers import PrunedRun


def _statuses(uri: str) -> dict[str, str]:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("t")
    return {r.info.run_name: r.info.status for r in client.search_runs([exp.experiment_id])}


@pytest.mark.parametrize("tracker_kind", [
    pytest.param("mlflow", marks=pytest.mark.slow),  # a real MLflow store: seconds
    "memory",
])
def test_a_pruned_trial_ends_killed_a_crash_failed_and_the_parent_finishes(tmp_path, tracker_kind):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker(uri) if tracker_kind == "mlflow" else MemoryTracker()
    with tracker.run("t", "parent", {}, {}):
        with pytest.raises(PrunedRun), tracker.run("t", "pruned", {}, {}, nested=True):
            raise PrunedRun("pruned after epoch 2")
        with pytest.raises(RuntimeError), tracker.run("t", "crashed", {}, {}, nested=True):
            raise RuntimeError("boom")
        with tracker.run("t", "fine", {}, {}, nested=True):
            pass
        assert tracker.run_id is not None  # the parent is still the active run
    if tracker_kind == "mlflow":
        statuses = _statuses(uri)
    else:
        statuses = {r["name"]: r["status"] for r in tracker.runs.values()}
    assert statuses == {"parent": "FINISHED", "pruned": "KILLED", "crashed": "FAILED",
                        "fine": "FINISHED"}
