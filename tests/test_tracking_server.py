"""A tracking server lost in the middle of a run: MLflow's retries are bounded
($SAKD_TRACKING_TIMEOUT_S), then the run stops with exit 2 and one line naming the server
without its credentials, and keeps its resume state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from pipeline.paths import Layout
from sakd.data import fetch_dataset
from sakd.tracking.server import retry_plan, server_name
from tests.conftest import REPO
from tests.servers import mlflow_server


def test_the_retry_plan_fits_the_budget_and_the_name_holds_no_credentials():
    for budget in (10, 30, 60, 600):  # >= 10 s: each attempt waits >= 2 s
        plan = retry_plan(budget)
        retries, timeout = int(plan["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]), int(
            plan["MLFLOW_HTTP_REQUEST_TIMEOUT"])
        sleeps = 2 ** retries - 2 + retries if retries else 0  # backoff 1: 0, 2, 4, ... + jitter
        assert sleeps + (retries + 1) * timeout <= budget
        assert 0 <= retries <= 10 and plan["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert int(retry_plan(60)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) >= 3
    assert server_name("http://user:secret@10.0.0.1:5000/p") == "http://10.0.0.1:5000/p"


@pytest.mark.slow
def test_a_server_lost_mid_run_stops_it_with_one_line_and_keeps_the_resume_state(
        tmp_path, default_params):
    root = tmp_path / "project"
    root.mkdir()
    default_params["data"]["dataset"] = "digits"
    default_params["runtime"].update(device="cpu", threads=1)
    default_params["pretrain"].update(epochs=4, milestones=[])
    (root / "params.yaml").write_text(yaml.safe_dump(default_params))
    fetch_dataset("digits", root / "data")
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}") as (url, server):
        port = url.rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_")}
        env.update(MLFLOW_TRACKING_URI=f"http://user:secret@127.0.0.1:{port}",
                   SAKD_TRACKING_TIMEOUT_S="10", PYTHONPATH=str(REPO))
        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "pretrain", "--arch", "resnet8", "-q",
             "--root", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        try:
            state = Layout(root, "digits").resume(root / "models/teachers/digits/resnet8.pt")
            while not state.exists():  # the first epoch is logged, then its state saved
                assert run.poll() is None, run.communicate()
                time.sleep(0.05)
            os.killpg(server.pid, signal.SIGKILL)
            lost = time.monotonic()
            out, err = run.communicate(timeout=120)
            took = time.monotonic() - lost
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 2, (out, err)
    assert took < 60, took  # MLflow's own retries: minutes
    assert "secret" not in out + err and "user:" not in out + err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines == [f"error: the MLflow tracking server http://127.0.0.1:{port} cannot be "
                     f"reached (connection refused; gave up after the retries "
                     f"$SAKD_TRACKING_TIMEOUT_S allows). Check that it runs and the URI, then "
                     f"rerun: training resumes after its last finished epoch"], err
    assert "Traceback" not in err
    assert state.exists()  # a rerun resumes from it
