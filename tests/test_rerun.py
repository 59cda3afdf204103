"""Running a finished cell again (issue 22): `sakd pretrain` / `sakd distill` report it and train
nothing; `--force` retrains it, and so does a rerun after DVC removed its outputs; either way the
earlier MLflow runs stay, tagged superseded, and one run per cell is current. Runs have short
names and are found by tags (run_path, pair, dataset), as the README's filters do."""

from __future__ import annotations

import re

import mlflow
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.paths import Layout, run_key
from pipeline.pretrain import run_pretrain
from sakd.tracking import MemoryTracker, MLflowTracker, mark_current
from sakd.train.checkpoint import load_checkpoint
from tests.studies import fetched_project, tiny_study

CELL = ["--teacher", "resnet8", "--student", "resnet8", "--distiller", "kd",
        "--strategy", "always", "--seed", "0", "-q"]
KEY = run_key("resnet8", "resnet8", "kd", "always", 0)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project root with digits fetched, a resnet8 -> resnet8 pair and 2-epoch runs."""
    root = tmp_path_factory.mktemp("rerun")
    return root, fetched_project(root, tiny_study("resnet8", "resnet8", ["kd"], ["always"]))


def _runs(uri: str, experiment: str, filter_string: str = "") -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string,
                              order_by=["attributes.start_time ASC"])


@pytest.mark.slow  # end to end: pretrain/distill commands train, rerun and force a cell
def test_pretrain_skips_a_finished_cell_and_force_supersedes_it(project, tmp_path, capsys):
    root, params = project
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MLflowTracker(uri, artifact_root=tmp_path / "mlruns")
    ckpt = Layout(root, "digits").pretrained("resnet8")
    first = run_pretrain(params, "resnet8", root, tracker=tracker, progress=False)
    [a] = _runs(uri, "sakd-pretrain")
    assert a.info.run_name == "resnet8"
    assert a.data.tags["run_path"] == "digits/resnet8" and a.data.tags["dataset"] == "digits"
    assert a.data.tags["sakd.current"] == "true"
    written = ckpt.stat().st_mtime_ns
    capsys.readouterr()

    again = run_pretrain(params, "resnet8", root, tracker=tracker, progress=False)
    said = capsys.readouterr().out
    assert f"already finished: digits/resnet8, MLflow run {a.info.run_id}; --force retrains" in said
    assert again == first and ckpt.stat().st_mtime_ns == written  # nothing retrained
    assert len(_runs(uri, "sakd-pretrain")) == 1

    forced = run_pretrain(params, "resnet8", root, tracker=tracker, progress=False, force=True)
    a, b = _runs(uri, "sakd-pretrain")
    assert forced["top1"] == first["top1"]  # deterministic on CPU: the same network again
    assert ckpt.stat().st_mtime_ns != written and b.info.status == "FINISHED"
    assert a.data.tags["sakd.current"] == "false"
    assert a.data.tags["sakd.superseded_by"] == b.info.run_id
    assert b.data.tags["sakd.current"] == "true" and "sakd.superseded_by" not in b.data.tags


@pytest.mark.slow  # end to end: pretrain/distill commands train, rerun and force a cell
def test_distill_command_skips_forces_and_a_dvc_style_rerun_supersedes(project, tmp_path,
                                                                        monkeypatch):
    root, params = project
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    if not Layout(root, "digits").pretrained("resnet8").exists():
        run_pretrain(params, "resnet8", root, tracker=MemoryTracker(), progress=False)
    ckpt = Layout(root, "digits").student(KEY)
    runner = CliRunner()

    def distill(*extra: str) -> str:
        result = runner.invoke(app, ["distill", *CELL, "--root", str(root), *extra])
        assert result.exit_code == 0, result.output
        return result.output

    distill()
    [a] = _runs(uri, "sakd-distill")
    assert a.info.run_name == "kd always s0"
    assert {k: a.data.tags[k] for k in ("dataset", "pair", "run_path", "sakd.current")} == {
        "dataset": "digits", "pair": "resnet8-resnet8",
        "run_path": "digits/resnet8-resnet8/kd-always/seed0", "sakd.current": "true"}

    said = distill()  # what the new user typed after `dvc repro` had finished the cell
    assert (f"already finished: digits/resnet8-resnet8/kd-always/seed0, MLflow run "
            f"{a.info.run_id}; --force retrains") in said
    assert re.search(r"seed 0: final top-1 [\d.]+%", said)
    assert [r.info.run_id for r in _runs(uri, "sakd-distill")] == [a.info.run_id]

    distill("--force")
    a, b = _runs(uri, "sakd-distill")
    assert (a.data.tags["sakd.superseded_by"], a.data.tags["sakd.current"]) == (b.info.run_id,
                                                                                "false")
    assert load_checkpoint(ckpt)["run_id"] == b.info.run_id

    ckpt.unlink()  # `dvc repro -f` (or a code change) removes the stage's outputs first
    distill()
    a, b, c = _runs(uri, "sakd-distill")
    assert c.info.status == "FINISHED" and load_checkpoint(ckpt)["run_id"] == c.info.run_id
    assert {r.data.tags["sakd.superseded_by"] for r in (a, b)} == {c.info.run_id}
    current = _runs(uri, "sakd-distill",
                    'tags.strategy = "always" and tags.`sakd.current` = "true"')
    assert [r.info.run_id for r in current] == [c.info.run_id]  # the README's filter


@pytest.mark.parametrize("kind", ["mlflow", "memory"])
def test_supersede_keeps_other_cells_configs_and_unfinished_runs_alone(tmp_path, kind):
    tracker = (MLflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}") if kind == "mlflow"
               else MemoryTracker())
    cell = {"run_path": "d/t-s/kd-always/seed0", "params_hash": "h1"}
    ids = {}
    for name, tags in [("old", cell), ("other-config", {**cell, "params_hash": "h2"}),
                       ("other-cell", {**cell, "run_path": "d/t-s/kd-always/seed1"}),
                       ("new", cell)]:
        with tracker.run("e", name, tags, {}) as run_id:
            ids[name] = run_id
    with pytest.raises(RuntimeError), tracker.run("e", "failed", cell, {}) as run_id:
        ids["failed"] = run_id
        raise RuntimeError("boom")
    assert mark_current(tracker, "e", ids["new"], cell) == [ids["old"]]
    assert tracker.find_runs("e", {**cell, "sakd.current": "true"}) == [ids["new"]]
    assert tracker.find_runs("e", {"sakd.superseded_by": ids["new"]}) == [ids["old"]]
    assert tracker.find_runs("e", cell, "FAILED") == [ids["failed"]]
