"""The stages end to end on the embedded digits data: pretrain -> distill -> evaluate -> report.

Runs in a temporary project root with tiny params (2 epochs, resnet14 -> resnet8) so the whole
file takes well under a minute on a CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.distill import build_distillation, run_distill, run_distill_cell
from pipeline.evaluate import run_evaluate
from pipeline.fetch import run_fetch
from pipeline.paths import Layout, run_key
from pipeline.pretrain import run_pretrain
from pipeline.report import run_report
from sakd.config import load_params
from sakd.tracking import MemoryTracker
from sakd.train.checkpoint import load_checkpoint
from sakd.train.loop import RunSpec, fit
from tests.conftest import on_digits

pytestmark = pytest.mark.slow  # end to end: the fetch, pretrain, distill, evaluate, report stages

STRATEGIES = ["adaptive", "always", "anti", "random", "never"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project root with digits fetched and both networks pretrained (2 epochs)."""
    import copy

    from tests.conftest import repo_params

    raw = repo_params()
    raw = copy.deepcopy(raw)
    raw["runs"] = {
        "pretrain": ["resnet14", "resnet8"],
        "pairs": [{"teacher": "resnet14", "student": "resnet8"}],
        "distillers": ["kd", "at"],
        "strategies": STRATEGIES,
        "seeds": [0],
    }
    for section in ("pretrain", "distill"):
        raw[section].update(epochs=2, milestones=[1])
    raw["distill"]["decision_grid"] = 8
    raw["runtime"]["device"] = "cpu"
    raw["sensitivity"]["pair"] = None
    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(raw)
    run_fetch(params, root)
    tracker = MemoryTracker()
    for arch in params.runs.pretrain:
        run_pretrain(params, arch, root, tracker=tracker, progress=False)
    return root, params, tracker


def test_pretrain_writes_checkpoint_metrics_curves_and_one_run_per_model(project):
    root, _params, tracker = project
    layout = Layout(root, "digits")
    for arch in ("resnet14", "resnet8"):
        metrics = json.loads(layout.pretrain_metrics(arch).read_text())
        assert metrics["final_epoch"] == 2 and metrics["top1"] > 30.0  # better than chance
        assert layout.pretrain_plots(arch).read_text().startswith("epoch,train/loss")
        state = load_checkpoint(layout.pretrained(arch))
        assert state["epoch"] == state["total_epochs"] == 2
    runs = [r for r in tracker.runs.values() if r["tags"]["stage"] == "pretrain"]
    assert sorted(r["tags"]["arch"] for r in runs) == ["resnet14", "resnet8"]
    assert all(r["status"] == "FINISHED" for r in runs)
    history = tracker.metric_history("val/top1", next(iter(tracker.runs)))
    assert [step for step, _ in history] == [1, 2]


def test_distill_all_strategies_then_evaluate_and_report(project):
    root, params, _ = project
    tracker = MemoryTracker()
    for distiller in ("kd", "at"):
        for strategy in STRATEGIES:
            run_distill(params, root, "resnet14", "resnet8", distiller, strategy, 0,
                        tracker=tracker, progress=False)
    layout = Layout(root, "digits")

    # Per-spot routing fractions: always = 1, never = 0, anti = 1 - adaptive's policy choice.
    def route(strategy: str, distiller: str = "at") -> list[dict]:
        text = (layout.distill_plots(run_key("resnet14", "resnet8", distiller, strategy, 0))
                / "route.csv").read_text().splitlines()
        header = text[0].split(",")
        return [dict(zip(header, map(float, line.split(",")), strict=True)) for line in text[1:]]

    assert list(route("always")[0]) == ["epoch", "spot2", "spot3", "spot4", "logits"]
    assert all(v == 1.0 for row in route("always") for k, v in row.items() if k != "epoch")
    assert all(v == 0.0 for row in route("never") for k, v in row.items() if k != "epoch")
    assert all(0.0 < row["logits"] < 1.0 for row in route("random"))

    adaptive_run = next(r for r in tracker.runs.values()
                        if r["tags"]["strategy"] == "adaptive" and r["tags"]["distiller"] == "at")
    keys = set().union(*(m for _, m in adaptive_run["metrics"]))
    for key in ("train/loss", "train/routing", "val/top1", "val/top5", "lr", "tau",
                "route/p_distill/spot2", "route/p_distill/logits"):
        assert key in keys
    assert {name for name, _ in adaptive_run["artifacts"]} >= {
        "decisions.png", "decisions.csv", "route.csv", "curves.csv", "seed0.pt",
    }
    taus = [m["tau"] for _, m in adaptive_run["metrics"] if "tau" in m]
    assert taus[0] == params.distill.tau.tau0 and taus[-1] == params.distill.tau.tau_min

    out = run_evaluate(params, root)
    evaluated = json.loads(out.read_text())
    assert set(evaluated["teachers"]) == {"resnet14", "resnet8"}
    assert len(evaluated["students"]) == 10
    run_report(root, "digits", Path("reports/results.md"), Path("plots/report/digits"))
    report = (root / "reports" / "results.md").read_text()
    assert "resnet14" in report and "Stan." in report and "Adap." in report
    assert "Anti" in report and "Rand" in report
    assert (root / "plots" / "report" / "digits" / "route_resnet14-resnet8_at.png").is_file()


def test_teacher_is_unchanged_by_distillation(project):
    root, params, _ = project
    layout = Layout(root, "digits")
    before = load_checkpoint(layout.pretrained("resnet14"))["modules"]["model"]
    d = build_distillation(params, root, "resnet14", "resnet8", "at", "adaptive", 0,
                           root / "tmp-teacher.pt", progress=False)
    fit(d, MemoryTracker(), RunSpec("t", "t", {}, {}), log=lambda _: None)
    after = d.step.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class Killed(Exception):
    pass


def test_interrupted_distillation_resumes_to_the_same_result(project, tmp_path):
    """Stop after epoch 1 (as a kill would), start again: same weights as an uninterrupted run."""
    root, params, _ = project

    def build(path):
        return build_distillation(params, root, "resnet14", "resnet8", "at", "adaptive", 0,
                                  path, progress=False)

    full = build(tmp_path / "full.pt")
    fit(full, MemoryTracker(), RunSpec("t", "full", {}, {}), log=lambda _: None)

    first = build(tmp_path / "resumed.pt")

    def kill(epoch, metrics):
        raise Killed

    first.on_epoch_end = kill
    tracker = MemoryTracker()
    with pytest.raises(Killed):
        fit(first, tracker, RunSpec("t", "resumed", {}, {}), log=lambda _: None)
    assert load_checkpoint(tmp_path / "resumed.pt")["epoch"] == 1
    torch.manual_seed(1234)  # a restarted process has a different RNG state: resume restores it
    second = build(tmp_path / "resumed.pt")
    history = fit(second, tracker, RunSpec("t", "resumed", {}, {}), log=lambda _: None)
    assert [h["epoch"] for h in history] == [1, 2]
    a = load_checkpoint(tmp_path / "full.pt")["modules"]
    b = load_checkpoint(tmp_path / "resumed.pt")["modules"]
    for module in ("student", "policy", "routing", "distiller"):
        for key in a[module]:
            assert torch.equal(a[module][key], b[module][key]), (module, key)
    assert len(tracker.runs) == 1  # the resumed run continues the same tracking run


def test_nan_loss_stops_and_keeps_last_good_checkpoint(project, tmp_path):
    root, params, _ = project
    d = build_distillation(params, root, "resnet14", "resnet8", "kd", "always", 0,
                           tmp_path / "nan.pt", progress=False)
    inner = d.step
    calls = {"n": 0}

    def poisoned(x, y, index):
        calls["n"] += 1
        if calls["n"] > len(d.train_loader):  # the whole second epoch
            x = x * float("nan")
        return inner(x, y, index)

    d.step = poisoned
    from sakd.train.loop import TrainingDiverged

    with pytest.raises(TrainingDiverged, match=r"kept .*nan\.pt from epoch 1"):
        fit(d, MemoryTracker(), RunSpec("t", "nan", {}, {}), log=lambda _: None)
    state = load_checkpoint(tmp_path / "nan.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["modules"]["student"].values()
               if v.is_floating_point())


@pytest.mark.slow
def test_killed_pretrain_process_resumes(project, tmp_path):
    """A real SIGKILL mid-run; the restarted command resumes and matches an uninterrupted run."""
    root, _params, _ = project
    raw = on_digits(yaml.safe_load((root / "params.yaml").read_text()))
    raw["pretrain"].update(epochs=4, milestones=[2])
    for name in ("killed", "clean"):
        proj = tmp_path / name
        proj.mkdir()
        (proj / "params.yaml").write_text(yaml.safe_dump(raw))
        os.symlink(root / "data", proj / "data")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    cmd = [sys.executable, "-m", "pipeline.cli", "pretrain", "--arch", "resnet8", "-q"]
    layout = Layout(tmp_path / "killed", "digits")
    ckpt = layout.pretrained("resnet8")
    resume = layout.resume(ckpt)  # not the DVC output: DVC deletes outputs before a rerun
    proc = subprocess.Popen([*cmd, "--root", str(tmp_path / "killed")], env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if resume.exists() and load_checkpoint(resume)["epoch"] >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(resume)["epoch"] < 4, "finished before it could be killed"
    assert not ckpt.exists(), "the DVC output appears only once the run has finished"
    subprocess.run([*cmd, "--root", str(tmp_path / "killed")], env=env, check=True)
    subprocess.run([*cmd, "--root", str(tmp_path / "clean")], env=env, check=True)
    assert not resume.exists(), "a finished run leaves no resume state behind"
    a = load_checkpoint(ckpt)
    b = load_checkpoint(Layout(tmp_path / "clean", "digits").pretrained("resnet8"))
    assert a["epoch"] == b["epoch"] == 4
    for key, value in b["modules"]["model"].items():
        assert torch.equal(a["modules"]["model"][key], value), key


def test_ft_pretrains_its_paraphraser_on_a_fresh_start_only(project, tmp_path):
    root, params, _ = project
    d = build_distillation(params, root, "resnet14", "resnet8", "ft", "adaptive", 0,
                           tmp_path / "ft.pt", progress=False)
    assert not bool(d.step.distiller.prepared)
    fit(d, MemoryTracker(), RunSpec("t", "ft", {}, {}), log=lambda _: None)
    assert bool(d.step.distiller.prepared)
    state = load_checkpoint(tmp_path / "ft.pt")
    assert bool(state["modules"]["distiller"]["prepared"])


def test_a_distill_stage_runs_its_seeds_in_one_process_each_its_own_run(project, capsys):
    """What `sakd distill` (one DVC stage) does: seed after seed, each its own MLflow run,
    checkpoint, metrics and curves in the stage's folders; a stage killed after its first
    seed (DVC then deletes the stage's outputs) does not retrain that seed."""
    root, params, _ = project
    layout = Layout(root, "digits")
    tracker = MemoryTracker()  # one store, as MLflow is for every process of a study
    first = run_distill(params, root, "resnet14", "resnet8", "kd", "always", 0,
                        tracker=tracker, progress=False, keep_resume=True)
    layout.student(run_key("resnet14", "resnet8", "kd", "always", 0)).unlink()  # as DVC does
    capsys.readouterr()

    out = run_distill_cell(params, root, "resnet14", "resnet8", "kd", "always", [0, 1],
                           progress=False, tracker=tracker)
    said = capsys.readouterr().out
    assert said.count("is already finished") == 1 and "seed0.pt is already finished" in said
    assert out[0] == first and set(out) == {0, 1}
    runs = [r for r in tracker.runs.values() if r["tags"]["strategy"] == "always"]
    assert sorted(r["tags"]["seed"] for r in runs) == ["0", "1"]
    for seed in (0, 1):
        key = run_key("resnet14", "resnet8", "kd", "always", seed)
        assert key == f"resnet14-resnet8/kd-always/seed{seed}"
        assert load_checkpoint(layout.student(key))["seed"] == seed
        assert json.loads(layout.distill_metrics(key).read_text()) == out[seed]
        assert (layout.distill_plots(key) / "curves.csv").is_file()
        assert not layout.resume(layout.student(key)).exists()  # gone once the stage is done
