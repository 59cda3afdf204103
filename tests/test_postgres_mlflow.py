"""Tracking on a real `mlflow server` with a PostgreSQL backend store and an artifact root,
several processes logging to it at once (the README's shared-lab setup, on loopback)."""

from __future__ import annotations

import multiprocessing

import mlflow
import pytest

from tests import postgres_helpers as pg
from tests.servers import mlflow_server

pytestmark = pytest.mark.slow
PROCESSES, STEPS = 3, 5


def log_one_run(uri: str, k: int, folder: str) -> None:
    """One training-like run through the project's tracker (spawned: one per process)."""
    from pathlib import Path

    from sakd.tracking import MLflowTracker

    tracker = MLflowTracker(uri)
    artifact = Path(folder) / f"curves-{k}.csv"
    artifact.write_text("epoch,val/top1\n1,50.0\n")
    with tracker.run("sakd-distill", f"digits/cell-{k}", {"cell": str(k)}, {"seed": k}):
        for step in range(1, STEPS + 1):
            tracker.log_metrics({"train/loss": 1.0 / step, "val/top1": 10.0 * step}, step=step)
        tracker.log_artifact(artifact, "plots")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pg.running_cluster() as cluster:
        cluster.create_database("mlflow")
        artifacts = tmp_path_factory.mktemp("artifacts")
        with mlflow_server(cluster.url("mlflow"), artifacts) as (url, _):
            yield url, artifacts, cluster


def test_several_processes_log_to_one_server_on_postgres(server, tmp_path):
    url, artifacts, cluster = server
    assert cluster.password not in cluster.url("mlflow")  # the password comes from PGPASSWORD
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=log_one_run, args=(url, k, str(tmp_path)))
             for k in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * PROCESSES

    client = mlflow.MlflowClient(url)
    exp = client.get_experiment_by_name("sakd-distill")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"digits/cell-{k}" for k in range(PROCESSES)]
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val/top1")
        assert sorted(m.step for m in history) == list(range(1, STEPS + 1))
        assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == [
            f"plots/curves-{run.data.tags['cell']}.csv"]
    assert len(list(artifacts.rglob("curves-*.csv"))) == PROCESSES  # served from the root
