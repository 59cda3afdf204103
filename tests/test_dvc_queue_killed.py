"""`sakd queue` SIGKILLed in the middle of a wave leaves DVC's workers running unsupervised;
the next `sakd queue` stops them, clears DVC's queue and finishes the study, with every MLflow
cell finished once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.projects import clean_env, commit_study, kd_study, sh


@pytest.mark.slow
def test_a_killed_queue_is_cleaned_up_by_the_next_one_which_finishes_the_study(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    kd_study(repo, ["always"], [0], epochs=3)
    env = clean_env()
    commit_study(repo, env)

    first = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "queue", "--jobs", "2"],
                             cwd=repo, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 400
    while not any(repo.glob(".dvc/tmp/exps/**/.sakd/resume/**/*.pt")):  # a worker's epoch
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            pytest.fail("no queue worker trained an epoch")
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)  # mid-wave: DVC's workers go on without it
    first.wait()

    said = sh([sys.executable, "-m", "pipeline.cli", "queue", "--jobs", "2"], repo, env)
    assert "a previous `sakd queue`" in said and "did not finish" in said, said
    assert (repo / "reports" / "results.md").exists()
    assert (repo / ".sakd" / "queue.lock").read_text() == ""

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")

    def finished(experiment: str, tag: str) -> Counter:
        """FINISHED runs that are their cell's current one; none left RUNNING."""
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        assert not [r for r in runs if r.info.status == "RUNNING"]
        return Counter(r.data.tags[tag] for r in runs if r.info.status == "FINISHED"
                       and r.data.tags.get("sakd.current") == "true")

    assert finished("sakd-pretrain", "arch") == Counter({"resnet14": 1, "resnet8": 1})
    assert finished("sakd-distill", "strategy") == Counter({"always": 1})
    status = sh(["dvc", "queue", "status"], repo, env)
    assert " Running " not in f" {status} ", status
