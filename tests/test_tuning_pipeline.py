"""`sakd tune` end to end on the embedded digits data (tiny models, one-epoch trials)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.fetch import run_fetch
from pipeline.paths import Layout
from pipeline.tune import run_tune
from sakd.config import load_params
from sakd.models import create_model
from sakd.tracking import MemoryTracker
from sakd.train.checkpoint import save_checkpoint
from sakd.tuning.storage import open_storage
from sakd.tuning.study import open_study, study_attrs, study_fingerprint, study_name

pytestmark = pytest.mark.slow  # end to end: a fetched project, then the tune stage through the CLI


@pytest.fixture
def project(tmp_path, tiny_params) -> tuple[Path, dict]:
    """A project root with digits fetched and a finished (untrained) resnet8 teacher."""
    tiny_params["sensitivity"].update(
        pair={"teacher": "resnet8", "student": "resnet8"}, epochs=1, n_trials=2,
        pruner={"kind": "none"}, baseline_seeds=2,
    )
    tiny_params["tracking"]["experiment_prefix"] = "t"
    params = load_params(tiny_params)
    run_fetch(params, tmp_path)
    teacher = create_model("resnet8", 10)
    save_checkpoint({"arch": "resnet8", "num_classes": 10, "epoch": 1, "total_epochs": 1,
                     "modules": {"model": teacher.state_dict()}},
                    Layout(tmp_path, "digits").pretrained("resnet8"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params))
    return tmp_path, tiny_params


def children(tracker: MemoryTracker, parent: str) -> dict[str, dict]:
    return {r["name"]: r for r in tracker.runs.values() if r["parent"] == parent}


def test_tune_writes_outputs_and_nests_trials_in_one_parent_run(project):
    root, raw = project
    params = load_params(raw)
    tracker = MemoryTracker()
    m = run_tune(params, root, progress=False, tracker=tracker)

    assert (m["n_complete"], m["n_target"]) == (2, 2)
    assert m["best_value"] is not None and m["baseline_always_top1"] is not None
    assert m["baseline_seeds"] == 2 and m["baseline_always_std"] is not None
    header = (root / "plots" / "sensitivity" / "beta3.csv").read_text().splitlines()[0]
    assert header == "beta3,val_top1,always_top1,always_std,always_seeds"
    for name in ("trials.csv", "beta3.csv", "tau0.csv", "history.csv", "beta3.png",
                 "tau0.png", "history.png"):
        assert (root / "plots" / "sensitivity" / name).stat().st_size > 0
    assert "## Best" in (root / "reports" / "sensitivity.md").read_text()
    assert (root / "metrics" / "sensitivity.json").is_file()
    assert (root / "optuna.db").is_file()

    (parent_id, parent), = [(i, r) for i, r in tracker.runs.items() if r["parent"] is None]
    assert parent["experiment"] == "t-sensitivity" and parent["status"] == "FINISHED"
    runs = children(tracker, parent_id)
    baselines = {"baseline-always-seed0", "baseline-always-seed1"}
    assert set(runs) == baselines | {"trial-0", "trial-1"}
    study = optuna.load_study(study_name=study_name(params), storage=open_storage(
        f"sqlite:///{root / 'optuna.db'}"))
    for t in study.trials:
        run = runs[f"trial-{t.number}"]
        assert run["params"]["distill.beta3"] == t.params["beta3"]
        assert run["params"]["distill.tau.schedule"] == t.params["schedule"]
        assert run["params"]["distill.epochs"] == 1
        assert tracker.metric_history("route/p_distill/logits", run_id=_id(tracker, run))
        assert tracker.metric_history("trial/val_top1", run_id=_id(tracker, run))[0][1] == t.value
    for seed in (0, 1):  # each seed its own run, with its own training seed
        run = runs[f"baseline-always-seed{seed}"]
        assert run["params"]["strategy"] == "always" and run["params"]["seed"] == seed
        assert run["tags"]["baseline.seed"] == str(seed)
    values = [tracker.metric_history("trial/val_top1", run_id=_id(tracker, runs[name]))[0][1]
              for name in sorted(baselines)]
    assert m["baseline_always_top1"] == pytest.approx(sum(values) / 2)
    for run in runs.values():  # trials and the baseline select on val; none reads test
        assert not tracker.metric_history("test/top1", run_id=_id(tracker, run))
    tags = parent["tags"]
    assert tags["best.trial"] == str(m["best_trial"])
    assert float(tags["best.beta3"]) == m["best_params"]["beta3"]
    logged = {k for _, metrics in parent["metrics"] for k in metrics}
    assert {"best/val_top1", "baseline/always_top1", "baseline/always_std",
            "best/beta3"} <= logged
    assert ("importance.csv", "sensitivity") in parent["artifacts"]

    # Re-running with a larger budget continues: one more trial, same parent, no new baseline.
    m2 = run_tune(params, root, n_trials=3, progress=False, tracker=tracker)
    assert m2["n_complete"] == 3
    assert [i for i, r in tracker.runs.items() if r["parent"] is None] == [parent_id]
    assert set(children(tracker, parent_id)) == baselines | {"trial-0", "trial-1", "trial-2"}


def _id(tracker: MemoryTracker, run: dict) -> str:
    return next(i for i, r in tracker.runs.items() if r is run)


@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        ({"search": {"beta3": {"low": 3.0, "high": 1.0}}}, [], "sensitivity.search.beta3.high"),
        ({"search": {"tau0": {"low": 4.0, "high": 4.0}}}, [], "empty or inverted"),
        ({"search": {"schedule": ["linear", "sometimes"]}}, [], "unknown tau schedule"),
        ({"sampler": "anneal"}, [], "unknown sampler 'anneal'"),
        ({}, ["--storage", "sqlite:////nonexistent-dir/optuna.db"], "does not exist"),
        ({}, ["--storage", "mongodb://db/optuna"], "unknown storage"),
        ({}, ["--n-trials", "0"], "sensitivity.n_trials"),
    ],
)
def test_bad_input_exits_2_and_leaves_the_study_as_it_was(project, edit, args, message):
    root, raw = project
    params = load_params(raw)
    study = open_study(open_storage(f"sqlite:///{root / 'optuna.db'}"), study_name(params),
                       study_attrs(params, study_fingerprint(params)))
    study.add_trial(optuna.trial.create_trial(
        value=50.0, params={"beta3": 1.0},
        distributions={"beta3": optuna.distributions.FloatDistribution(0.1, 10.0, log=True)}))
    before = (root / "optuna.db").read_bytes()

    for key, value in edit.items():
        section = raw["sensitivity"]
        if isinstance(value, dict):
            section[key].update(value)
        else:
            section[key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["tune", "--root", str(root), "--quiet", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert (root / "optuna.db").read_bytes() == before


@pytest.mark.slow
def test_two_worker_processes_share_the_budget_and_the_parent_run(project):
    root, raw = project
    params = load_params(raw)
    tracker = MemoryTracker()
    m = run_tune(params, root, workers=2, n_trials=3, progress=False, tracker=tracker)
    assert (m["n_complete"], m["n_target"]) == (3, 3)
    study = optuna.load_study(study_name=study_name(params), storage=open_storage(
        f"sqlite:///{root / 'optuna.db'}"))
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert (root / "reports" / "sensitivity.md").is_file()
