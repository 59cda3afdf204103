"""Vision-transformer pairs: ViT -> ViT and the heterogeneous ResNet -> ViT and ViT -> ResNet.

Every distiller builds and steps on each pair (the shared check of test_distillers_pairs), the
routing network's adapters bridge the token grids and the CNN maps, and pretrain + distill run
through the builder the CLI uses on the digits smoke data with every strategy.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from typer.testing import CliRunner

from sakd.build import build_distill_run, build_distill_step
from sakd.build_pretrain import build_supervised_run
from sakd.config import DistillConfig, load_params
from sakd.data import fetch_dataset
from sakd.distillers import create_distiller, list_distillers
from sakd.models import create_model
from sakd.spots.strategies import list_strategies
from tests.conftest import repo_params
from tests.test_distillers_pairs import (
    test_pair_builds_every_distiller_and_steps as every_distiller_steps,
)

PAIRS = [("vit_tiny", "vit_nano"), ("resnet56", "vit_nano"), ("vit_tiny", "resnet20")]
PIPELINE_PAIRS = [("vit_tiny", "vit_nano"), ("resnet56", "vit_nano")]  # homo- and heterogeneous
ROUTED_SPOTS = ["spot2", "spot3", "spot4", "logits"]  # AT's spots: the three block groups

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("teacher, student", PAIRS, ids=[f"{t}-{s}" for t, s in PAIRS])
def test_every_distiller_builds_and_steps_on_vit_pairs(teacher: str, student: str) -> None:
    every_distiller_steps(teacher, student)


def _step(teacher_name: str, student_name: str, distiller: str, size: int = 16):
    torch.manual_seed(0)
    teacher, student = create_model(teacher_name, 10), create_model(student_name, 10)
    x = torch.randn(8, 3, size, size)
    with torch.no_grad():
        feats_s, _ = student.eval()(x[:2], return_features=True)
        feats_t, _ = teacher.eval()(x[:2], return_features=True)
    options = {"labels": torch.arange(32) % 10, "nce_k": 8} if distiller == "crd" else {}
    d = create_distiller(distiller, feats_s, feats_t, **options)
    step = build_distill_step(student, teacher, d, "adaptive", x[:2], DistillConfig(lr=0.01))
    return step, x, torch.arange(8) % 10, torch.arange(8) * 3


def _ends_in_relu(adapter: torch.nn.Module) -> bool:
    return isinstance(adapter, torch.nn.Sequential) and isinstance(adapter[-1], torch.nn.ReLU)


@pytest.mark.parametrize("teacher, student", PAIRS, ids=[f"{t}-{s}" for t, s in PAIRS])
def test_routing_adapters_bridge_token_grids_and_cnn_maps(teacher: str, student: str) -> None:
    """Adapters map each spot to the other net's shape (channels and size); those into a ViT
    leave its signed maps unclipped (no final ReLU), those into a CNN keep the authors' ReLU."""
    step, x, y, index = _step(teacher, student, "at")
    routing = step.routing
    with torch.no_grad():
        feats_s, _ = step.student(x, return_features=True)
        feats_t, _ = step.teacher(x, return_features=True)
    for i, k in enumerate(routing.spots):
        assert routing.to_student[i](feats_t[k]).shape == feats_s[k].shape
        assert routing.to_teacher[i](feats_s[k]).shape == feats_t[k].shape
    assert all(_ends_in_relu(a) == step.student.relu_maps for a in routing.to_student)
    assert all(_ends_in_relu(a) == step.teacher.relu_maps for a in routing.to_teacher)
    stats = step(x, y, index)
    assert torch.isfinite(stats["loss"]) and torch.isfinite(stats["routing"])
    for adapters in (routing.to_teacher, routing.to_student):
        assert all(p.grad is not None for p in adapters.parameters())


@pytest.mark.parametrize("distiller", list_distillers())
def test_every_distiller_routes_resnet_into_vit_on_digits_sized_inputs(distiller: str) -> None:
    """SAKD with each method's spots (hint, blocks, last block, embedding) at 8x8 inputs, where
    the ResNet's maps (8, 4, 2) and the ViT's 8x8 grids differ most."""
    step, x, y, index = _step("resnet56", "vit_nano", distiller, size=8)
    stats = step(x, y, index)
    assert all(torch.isfinite(v).all() for v in stats.values())
    assert stats["p_distill"].shape == (len(step.distiller.spots) + 1,)


# ----------------------------------------------------------------------------- pipeline
def _params(pairs: list[tuple[str, str]]):
    raw = repo_params()
    raw["runs"]["pretrain"] = sorted({a for pair in pairs for a in pair})
    raw["runs"]["pairs"] = [{"teacher": t, "student": s} for t, s in pairs]
    raw["runs"]["strategies"] = list_strategies()
    for section in ("pretrain", "distill"):
        raw[section].update(batch_size=4, epochs=2, milestones=[1])
    raw["runtime"]["device"] = "cpu"
    raw["sensitivity"]["pair"] = None
    return raw


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    params = load_params(_params(PIPELINE_PAIRS))  # runs.pairs accepts the ViT pairs
    root = tmp_path_factory.mktemp("vit")
    fetch_dataset(params.data.dataset, root)
    return params, root


def _two_steps(run) -> list[dict]:
    batches = iter(run.train_loader)
    return [run.step(*next(batches)) for _ in range(2)]


@pytest.mark.parametrize("arch", ["vit_tiny", "vit_nano"])
def test_pretrain_steps_on_digits(digits, arch: str) -> None:
    params, root = digits
    run = build_supervised_run(params, root, torch.device("cpu"), arch)
    before = [p.detach().clone() for p in run.model.parameters()]
    stats = _two_steps(run)
    assert all(torch.isfinite(s["loss"]) for s in stats)
    assert all(not torch.equal(a, b) for a, b in zip(before, run.model.parameters(),
                                                         strict=True))


@pytest.mark.parametrize("strategy", list_strategies())
@pytest.mark.parametrize("teacher, student", PIPELINE_PAIRS,
                         ids=[f"{t}-{s}" for t, s in PIPELINE_PAIRS])
def test_distill_every_strategy_on_digits(digits, teacher: str, student: str,
                                          strategy: str) -> None:
    """Two steps of each strategy; the per-spot routing metrics (route/p_distill/<spot>) name
    the ViT's three block groups and the logits, as for the CNNs."""
    params, root = digits
    run = build_distill_run(params, root, torch.device("cpu"),
                            lambda n: create_model(teacher, n), student, "at", strategy, 0)
    stats = _two_steps(run)
    assert all(torch.isfinite(s["loss"]) for s in stats)
    metrics = run.step.epoch_metrics(stats[-1])
    assert [k.rsplit("/", 1)[1] for k in metrics if k.startswith("route/p_distill/")] == \
        ROUTED_SPOTS
    p = stats[-1]["p_distill"]
    if strategy == "always":
        assert torch.equal(p, torch.ones(len(ROUTED_SPOTS)))
    if strategy == "never":
        assert torch.equal(p, torch.zeros(len(ROUTED_SPOTS)))


# ----------------------------------------------------------------------------- the CLI
@pytest.mark.slow  # end to end: fetch, pretrain both nets, distill, through `sakd`
def test_cli_pretrains_and_distills_a_resnet_to_vit_pair(tmp_path) -> None:
    from pipeline.cli import app
    from pipeline.paths import Layout, run_key

    raw = _params([("resnet20", "vit_nano")])
    raw["runs"]["distillers"] = ["at"]
    for section in ("pretrain", "distill"):
        raw[section]["batch_size"] = 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    for args in (["fetch"], ["pretrain", "--arch", "resnet20"], ["pretrain", "--arch", "vit_nano"],
                 ["distill", "--teacher", "resnet20", "--student", "vit_nano", "--distiller",
                  "at", "--strategy", "adaptive"]):
        result = runner.invoke(app, [*args, "--root", str(tmp_path)])
        assert result.exit_code == 0, result.output
    layout, key = Layout(tmp_path, "digits"), run_key("resnet20", "vit_nano", "at", "adaptive", 0)
    assert layout.student(key).is_file()
    route = (layout.distill_plots(key) / "route.csv").read_text().splitlines()
    assert route[0].split(",") == ["epoch", *ROUTED_SPOTS]  # route/p_distill/<spot> per epoch
    assert len(route) == 1 + raw["distill"]["epochs"]
