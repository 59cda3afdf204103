"""ReviewKD through the pipeline on the digits smoke test (CPU, seconds): every strategy trains,
its spots' routing fractions are logged like any distiller's, the ABFs train with the student
and are checkpointed with it, and the exported student holds the student network only."""

from __future__ import annotations

import copy

import pytest
import torch

from pipeline.distill import build_distillation, run_distill
from pipeline.export import run_export
from pipeline.fetch import run_fetch
from pipeline.paths import Layout, run_key
from pipeline.saved_models import load_from_checkpoint
from sakd.build import build_distill_run
from sakd.config import load_params
from sakd.models import create_model
from sakd.spots.strategies import list_strategies
from sakd.tracking import MemoryTracker
from sakd.train.checkpoint import load_checkpoint, save_checkpoint
from sakd.train.loop import save_state, try_resume
from tests.conftest import repo_params

TEACHER, STUDENT = "resnet14", "resnet8"
SPOTS = ["spot2", "spot3", "spot4", "spot5"]  # the three block outputs and the embedding
STEPS = 2


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Digits fetched, one epoch of distillation, and a (randomly initialised) teacher saved as
    a finished pretrain checkpoint: what ReviewKD does is checked, not how well it learns."""
    raw = copy.deepcopy(repo_params())
    raw["runs"].update(pretrain=[TEACHER, STUDENT], pairs=[{"teacher": TEACHER,
                       "student": STUDENT}], distillers=["reviewkd"], seeds=[0])
    raw["distill"].update(epochs=1, milestones=[], decision_grid=4)
    raw["runtime"]["device"] = "cpu"
    root = tmp_path_factory.mktemp("reviewkd")
    params = load_params(raw)
    run_fetch(params, root)
    torch.manual_seed(0)
    teacher = create_model(TEACHER, 10)
    save_checkpoint({"arch": TEACHER, "num_classes": 10, "epoch": 1, "total_epochs": 1,
                     "modules": {"model": teacher.state_dict()}},
                    Layout(root, "digits").pretrained(TEACHER))
    return root, params, teacher


@pytest.mark.parametrize("strategy", list_strategies())
def test_every_strategy_trains_a_few_steps(project, strategy: str) -> None:
    root, params, teacher = project
    run = build_distill_run(params, root / "data", torch.device("cpu"), copy.deepcopy(teacher),
                            STUDENT, "reviewkd", strategy, seed=0)
    step, distiller = run.step, run.step.distiller
    assert step.spot_names == [*SPOTS, "logits"]
    step.start_epoch(0, run.train_loader)
    assert distiller.ramp.item() == pytest.approx(1 / 20)  # mdistiller's warm-up, epoch 1
    before = [p.detach().clone() for p in distiller.abfs.parameters()]
    sums: dict[str, torch.Tensor] = {}
    for _, (x, y, index) in zip(range(STEPS), run.train_loader, strict=False):
        for key, value in step(x, y, index).items():
            sums[key] = value + sums.get(key, 0)
    metrics = step.epoch_metrics({k: v / STEPS for k, v in sums.items()})
    p = [metrics[f"route/p_distill/{name}"] for name in [*SPOTS, "logits"]]
    assert all(torch.isfinite(v).all() for v in sums.values())
    changed = any(not torch.equal(a, b) for a, b in zip(before, distiller.abfs.parameters(),
                                                        strict=True))
    if strategy == "always":
        assert p == [1.0] * 5 and changed
    elif strategy == "never":  # no teacher, no distillation: the ABFs get no gradient
        assert p == [0.0] * 5 and not changed and metrics["train/distill"] == 0.0
    else:
        assert all(0.0 <= v <= 1.0 for v in p)


def _abf_state(modules: dict) -> dict[str, torch.Tensor]:
    return {k[len("abfs."):]: v for k, v in modules["distiller"].items() if k.startswith("abfs.")}


def test_checkpoint_restores_the_abfs_and_holds_the_student_apart(project, tmp_path):
    root, params, _ = project
    ckpt = tmp_path / "reviewkd-adaptive-seed0.pt"
    first = build_distillation(params, root, TEACHER, STUDENT, "reviewkd", "adaptive", 0, ckpt,
                               progress=False)
    first.step.start_epoch(0, first.train_loader)
    for _, (x, y, index) in zip(range(STEPS), first.train_loader, strict=False):
        first.step(x, y, index)
    save_state(first, 1, [], None)  # what the loop writes after an epoch
    saved = load_checkpoint(ckpt)["modules"]
    trained = _abf_state(saved)
    assert trained and not any("abf" in k for k in saved["student"])

    # a fresh build of the same cell starts from the initial ABFs; resuming restores the trained
    fresh = build_distillation(params, root, TEACHER, STUDENT, "reviewkd", "adaptive", 0, ckpt,
                               progress=False)
    abfs = fresh.step.distiller.abfs
    assert any(not torch.equal(v, trained[k]) for k, v in abfs.state_dict().items())
    assert try_resume(fresh).start_epoch == 1
    assert all(torch.equal(v, trained[k]) for k, v in abfs.state_dict().items())

    # what `sakd export` loads: the student network only, strictly
    model, _ = load_from_checkpoint(ckpt)
    assert not any("abf" in n for n, _ in model.named_parameters())
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in create_model(STUDENT, 10).parameters())


@pytest.mark.slow  # end to end: the distill stage with tracking, then `sakd export`'s code path
def test_distill_stage_logs_every_spot_and_exports_the_student(project, tmp_path):
    root, params, _ = project
    tracker = MemoryTracker()
    run_distill(params, root, TEACHER, STUDENT, "reviewkd", "adaptive", 0, tracker=tracker,
                progress=False)
    (run,) = tracker.runs.values()
    logged = set().union(*(m for _, m in run["metrics"]))
    assert {f"route/p_distill/{n}" for n in [*SPOTS, "logits"]} <= logged
    assert {f"train/distill/{n}" for n in SPOTS} <= logged

    ckpt = Layout(root, "digits").student(run_key(TEACHER, STUDENT, "reviewkd", "adaptive", 0))
    assert _abf_state(load_checkpoint(ckpt)["modules"])
    exported = run_export(str(ckpt), "torchscript", tmp_path / "student.ts",
                          f"sqlite:///{tmp_path / 'mlflow.db'}")
    scripted = torch.jit.load(str(exported.path))
    student = create_model(STUDENT, 10)
    # the file holds the student (inside the recorded normalisation wrapper) and nothing else
    assert sorted(n.removeprefix("net.") for n, _ in scripted.named_parameters()) == sorted(
        n for n, _ in student.named_parameters())
