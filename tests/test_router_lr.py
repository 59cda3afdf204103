"""The router's learning-rate schedule (`distill.router_lr_schedule`, sakd.spots.router_lr).

`authors_trainable_teacher` must give, epoch by epoch, the router lr of the authors' Table VIII
script; the oracle below restates their code independently. `follow_student` must stay what
the router always had (MultiStepLR at student lr x ratio), and a resumed run must continue the
schedule where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sakd.build import build_distill_run, lr_schedulers
from sakd.config import ConfigError, DistillConfig, load_params
from sakd.data import fetch_dataset
from sakd.models import create_model
from sakd.registry import UnknownNameError
from sakd.spots.router_lr import list_router_lr_schedules, router_lr_scheduler
from sakd.train.loop import TrainingJob, save_state, try_resume
from tests.conftest import read_yaml, repo_params

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "configs" / "cifar100_trainable_teacher.yaml"


# --------------------------------------------------------------------------- the oracle
# zju-vipa/spot-adaptive-pytorch, commit 9d54c50819712434a01bcf61a9574d76b7c5342a, restated:
# - train_both.py, main: agent_optimizer = SGD(lr=cfg.training.lr_agent) and, on the same
#   optimiser, agent_lr_scheduler = MultiStepLR(lr_decay_epochs, lr_decay_rate);
# - train_both.py, train_kd: for epoch in 1..epochs: adjust_learning_rate_stage_agent(epoch),
#   train one epoch, then agent_lr_scheduler.step();
# - helper/util.py, adjust_learning_rate_stage_agent: epoch < 30 -> lr = lr_agent / 100;
#   otherwise steps = #{milestones m : epoch > m}, and if steps > 0 -> lr = lr_agent *
#   rate ** steps; else the lr is left as it is;
# - env.yaml pins torch 1.6, whose MultiStepLR.step() multiplies the optimiser's current lr by
#   gamma when its counter reaches a milestone (and leaves it alone otherwise).
def authors_router_lrs(lr_agent: float, milestones: list[int], rate: float,
                       epochs: int) -> list[float]:
    """The router lr of each epoch 1..epochs in train_both.py."""
    lr = lr_agent
    used = []
    for epoch in range(1, epochs + 1):
        if epoch < 30:
            lr = lr_agent / 100
        else:
            steps = sum(1 for m in milestones if epoch > m)
            if steps > 0:
                lr = lr_agent * rate**steps
        used.append(lr)
        if epoch in milestones:  # MultiStepLR.step() after the epoch; its counter is `epoch`
            lr = lr * rate
    return used


def _preset() -> DistillConfig:
    return load_params(read_yaml(PRESET)).distill


def _run(tmp_path: Path, distill: dict, student: str = "resnet8"):
    """A real distillation run (digits data, tiny nets) with the given distill settings."""
    raw = repo_params()
    raw["distill"].update(distill)
    raw["runtime"].update(device="cpu")
    raw["data"]["dataset"] = "digits"  # embedded: loads in a blink (glyphs are drawn: seconds)
    params = load_params(raw)
    fetch_dataset(params.data.dataset, tmp_path)
    return build_distill_run(params, tmp_path, torch.device("cpu"),
                             lambda n: create_model("resnet14", n), student, "pkt", "adaptive", 0)


def _lrs_per_epoch(optimizers: dict, schedulers: dict, epochs: int) -> dict[str, list[float]]:
    """Each optimiser's lr in each epoch, stepping the schedulers as the epoch loop does."""
    out: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(epochs):
        for name, opt in optimizers.items():
            out[name].append(opt.param_groups[0]["lr"])
        for sched in schedulers.values():
            sched.step()
    return out


def _schedule_settings(cfg: DistillConfig) -> dict:
    keys = ("epochs", "lr", "milestones", "lr_decay", "router_lr_ratio", "router_lr_schedule")
    return {k: getattr(cfg, k) for k in keys}


# --------------------------------------------------------------------------- tests
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_preset_router_lr_is_the_authors_train_both_lr_for_all_240_epochs(tmp_path):
    cfg = _preset()
    assert (cfg.epochs, cfg.milestones, cfg.lr_decay) == (240, [150, 180, 210], 0.1)
    run = _run(tmp_path, _schedule_settings(cfg))
    router = run.optimizers["router"]
    lr_agent = cfg.lr * 0.5  # the authors' configs: lr 0.05, lr_agent 0.025 (0.01 / 0.005)
    assert router.param_groups[0]["initial_lr"] == pytest.approx(lr_agent)
    lrs = _lrs_per_epoch(run.optimizers, run.schedulers, 240)
    ours = lrs["router"]
    theirs = authors_router_lrs(lr_agent, [150, 180, 210], 0.1, 240)
    assert ours == pytest.approx(theirs, rel=1e-12, abs=0)
    # the facts in words: lr_agent / 100 for epochs 1-150, then x0.1 / x0.01 / x0.001
    assert ours[0] == ours[149] == pytest.approx(0.025 / 100)
    assert ours[150] == ours[179] == pytest.approx(0.0025)
    assert ours[180] == pytest.approx(0.00025) and ours[239] == pytest.approx(0.000025)
    # the student keeps the paper's decay
    assert lrs["student"] == pytest.approx([0.05] * 150 + [0.005] * 30 + [0.0005] * 30
                                           + [0.00005] * 30, rel=1e-12)


def test_the_router_base_is_the_student_lr_times_the_ratio_for_small_lr_students():
    cfg = _preset()
    assert cfg.router_lr_ratio * cfg.lr_for("mobilenetv2") == pytest.approx(0.005)  # lr_agent
    assert cfg.router_lr_ratio * cfg.lr_for("resnet20") == pytest.approx(0.025)


@pytest.mark.parametrize(("milestones", "epochs"), [
    ([150, 180, 210], 240), ([20, 40], 60), ([29, 30, 31], 40), ([5], 10), ([30], 45),
])
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_authors_schedule_matches_their_function_for_any_milestones(milestones, epochs):
    lr_agent, rate = 0.025, 0.2
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr_agent)
    sched = router_lr_scheduler("authors_trainable_teacher", opt, milestones, rate)
    assert _lrs_per_epoch({"router": opt}, {"router": sched}, epochs)["router"] == pytest.approx(
        authors_router_lrs(lr_agent, milestones, rate, epochs), rel=1e-12, abs=0)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_follow_student_is_the_students_decay_times_the_ratio(tmp_path):
    run = _run(tmp_path, {"epochs": 12, "milestones": [4, 7, 9], "lr_decay": 0.1})
    assert isinstance(run.schedulers["router"], torch.optim.lr_scheduler.MultiStepLR)
    lrs = _lrs_per_epoch(run.optimizers, run.schedulers, 12)
    assert lrs["router"] == pytest.approx([0.5 * s for s in lrs["student"]], rel=1e-12)
    assert lrs["student"] == pytest.approx([0.05] * 4 + [0.005] * 3 + [0.0005] * 2
                                           + [0.00005] * 3, rel=1e-12)


def test_lr_schedulers_defaults_to_follow_student():
    opts = {name: torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
            for name in ("student", "router")}
    scheds = lr_schedulers(opts, [2], 0.1)
    assert all(isinstance(s, torch.optim.lr_scheduler.MultiStepLR) for s in scheds.values())


@pytest.mark.parametrize("stop", [1, 29, 30, 150, 151, 200])
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_a_resumed_run_continues_the_router_schedule(tmp_path, stop):
    """Checkpoint after `stop` epochs (through the epoch loop's own save/restore, loaded with
    weights_only), resume in a freshly built run: the remaining lrs are the uninterrupted ones."""
    settings = _schedule_settings(_preset())
    expected = authors_router_lrs(0.025, [150, 180, 210], 0.1, 240)

    def job(run) -> TrainingJob:
        return TrainingJob(step=run.step, train_loader=run.train_loader, evaluate=dict,
                           epochs=240, modules=run.step.modules_to_checkpoint(),
                           optimizers=run.optimizers, schedulers=run.schedulers,
                           checkpoint_path=tmp_path / "resume.pt", config_hash="same")

    first = _run(tmp_path, settings)
    before = _lrs_per_epoch(first.optimizers, first.schedulers, stop)["router"]
    assert before == pytest.approx(expected[:stop], rel=1e-12)
    save_state(job(first), stop, [], None)
    second = _run(tmp_path, settings)
    assert try_resume(job(second)).start_epoch == stop
    rest = _lrs_per_epoch(second.optimizers, second.schedulers, 240 - stop)["router"]
    assert rest == pytest.approx(expected[stop:], rel=1e-12)


def test_unknown_schedules_are_refused_with_the_valid_names():
    assert list_router_lr_schedules() == ["authors_trainable_teacher", "follow_student"]
    with pytest.raises(ConfigError, match=r"router_lr_schedule.*authors_trainable_teacher"):
        load_params({"distill": {"router_lr_schedule": "authors"}})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(UnknownNameError, match="follow_student"):
        router_lr_scheduler("authors", opt, [2], 0.1)
