"""The SAKD training step: losses, gating, what each optimiser may touch, Algorithm 1 parity."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sakd.build import build_distill_step
from sakd.config import ConfigError, DistillConfig, load_params
from sakd.distillers import DISTILLERS, create_distiller, register_distiller
from sakd.distillers.base import Distiller, ElementwiseDistiller
from sakd.models.base import SpotNet
from sakd.registry import UnknownNameError
from sakd.spots import DISTILL, gumbel_noise
from sakd.train.distill_step import DistillStep
from tests.conftest import repo_params
from tests.tinynets import TinyNet, conv_block

B, CLASSES = 16, 5



class TinyDistiller(Distiller):
    """FitNet-like: a learned 1x1 regressor per spot, per-sample MSE, gated by the mask."""

    name = "tiny"
    spot_rule = "blocks"
    default_beta = 2.0

    def __init__(self, spots: list[int], student: SpotNet, teacher: SpotNet, x: torch.Tensor):
        super().__init__(spots)
        with torch.no_grad():
            fs, _ = student.eval()(x, return_features=True)
            ft, _ = teacher.eval()(x, return_features=True)
        student.train()
        self.regressors = nn.ModuleList(
            nn.Linear(fs[k].shape[1], ft[k].shape[1])
            if fs[k].dim() == 2
            else nn.Conv2d(fs[k].shape[1], ft[k].shape[1], 1)
            for k in spots
        )

    def forward(self, feats_s, feats_t, mask=None, index=None):
        losses = []
        for j, k in enumerate(self.spots):
            f_s, f_t = self.regressors[j](feats_s[k]), feats_t[k].detach()
            if f_s.dim() == 4 and f_s.shape[-2:] != f_t.shape[-2:]:
                f_s = F.adaptive_avg_pool2d(f_s, f_t.shape[-2:])
            per_sample = (f_s - f_t).pow(2).flatten(1).mean(1)
            gate = 1.0 if mask is None else mask[:, j]
            losses.append((per_sample * gate).mean())
        return torch.stack(losses) if losses else feats_s[0].new_zeros(0)


def _setup(spots=(1, 2), strategy="adaptive", seed=0, cfg=None, tau=5.0, gen_seed=None,
           beta2=None):
    torch.manual_seed(seed)
    student = TinyNet(2, strides=(2, 2))
    teacher = TinyNet(4, strides=(1, 4))  # block1 maps twice the student's: strided adapters
    x = torch.randn(B, 3, 8, 8)
    y = torch.arange(B) % CLASSES
    distiller = TinyDistiller(list(spots), student, teacher, x[:2])
    gen = None if gen_seed is None else torch.Generator().manual_seed(gen_seed)
    step = build_distill_step(
        student, teacher, distiller, strategy, x[:2], cfg or DistillConfig(), tau=tau,
        generator=gen, beta2=beta2,
    )
    return step, x, y


def _params_with(**distill) -> dict:
    """The repository's params.yaml with some distill keys replaced."""
    raw = repo_params()
    raw["distill"].update(distill)
    return raw


def _force_policy(step: DistillStep, distill: list[bool]) -> None:
    """Make the policy's decisions certain (no Gumbel draw can flip +-1e4)."""
    with torch.no_grad():
        step.policy.linear.weight.zero_()
        bias = step.policy.linear.bias.view(-1, 2)
        bias.zero_()
        for i, yes in enumerate(distill):
            bias[i, DISTILL] = 1e4 if yes else -1e4


def _grads(params) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in params]


# ----------------------------------------------------------------------------- builder
def test_builder_wires_optimisers_modules_and_spot_names():
    cfg = DistillConfig(lr=0.1)
    step, _, _ = _setup(cfg=cfg)
    assert step.spot_names == ["spot2", "spot3", "logits"]
    assert list(step.optimizers) == ["student", "router"]  # the loop reads lr from the first
    student_opt, router_opt = step.optimizers["student"], step.optimizers["router"]
    group = student_opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 5e-4)
    group = router_opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.9, 1e-3)
    ids = {id(p) for p in student_opt.param_groups[0]["params"]}
    assert all(id(p) in ids for p in step.student.parameters())
    assert all(id(p) in ids for p in step.distiller.parameters())
    assert not any(id(p) in ids for p in step.teacher.parameters())
    router_ids = {id(p) for p in router_opt.param_groups[0]["params"]}
    expected = [*step.policy.parameters(), *step.routing.parameters()]
    assert router_ids == {id(p) for p in expected}
    assert set(step.modules_to_checkpoint()) == {"student", "distiller", "policy", "routing"}
    assert step.policy.linear.out_features == 2 * 3
    assert not any(p.requires_grad for p in step.teacher.parameters())


def test_builder_for_strategies_without_policy():
    step, _, _ = _setup(strategy="always")
    assert step.policy is None and list(step.optimizers) == ["student"]
    assert set(step.modules_to_checkpoint()) == {"student", "distiller"}


def test_builder_rejects_bad_names_and_pairs():
    with pytest.raises(UnknownNameError, match="adaptive, always"):
        _setup(strategy="sometimes")
    # bad settings are stopped by the config, naming the key, before any step is built
    for key, value, says in (("routing_loss", "authors", "reference"),
                             ("teacher_trainable", "yes", "frozen"), ("beta3", -1, "0")):
        with pytest.raises(ConfigError, match=rf"distill\.{key}") as err:
            load_params(_params_with(**{key: value}))
        assert says in str(err.value)
    student, teacher = TinyNet(2), TinyNet(4)
    teacher.stages.insert(1, conv_block(4, 4, 1))  # one more feature spot
    x = torch.randn(2, 3, 8, 8)
    distiller = TinyDistiller([1], student, student, x)
    with pytest.raises(ValueError, match="same block structure"):
        build_distill_step(student, teacher, distiller, "always", x)


def test_beta2_defaults_to_the_distiller_table_value():
    assert _setup()[0].beta2 == 2.0
    assert _setup(beta2=0.5)[0].beta2 == 0.5


@pytest.fixture
def gain_distiller(monkeypatch):
    """A test-only distiller, registered as `gain_test` for this test alone (the registry's
    table is restored afterwards). It overrides `student_parameters`, as CONTRIBUTING.md
    invites: per-spot gains held outside its module tree are trained, its `fixed` layer is not.
    """
    monkeypatch.setattr(DISTILLERS, "_factories", dict(DISTILLERS._factories))

    @register_distiller("gain_test")
    class GainDistiller(ElementwiseDistiller):
        spot_rule = "blocks"
        default_beta = 3.0

        def __init__(self, spots: list[int]) -> None:
            super().__init__(spots)
            self.fixed = nn.Linear(1, 1)  # requires_grad, yet left out by student_parameters
            self.gains = [nn.Parameter(torch.ones(())) for _ in spots]  # not submodules

        def per_sample(self, k, f_s, f_t):
            return self.gains[k] * (f_s.mean((1, 2, 3)) - f_t.mean((1, 2, 3))).pow(2)

        def student_parameters(self):
            return iter(self.gains)

    yield "gain_test"
    assert "gain_test" in DISTILLERS  # removed by monkeypatch's undo, after this


def test_builder_trains_what_student_parameters_names(gain_distiller):
    torch.manual_seed(0)
    student, teacher = TinyNet(2, strides=(2, 2)), TinyNet(4, strides=(1, 4))
    x, y = torch.randn(B, 3, 8, 8), torch.arange(B) % CLASSES
    with torch.no_grad():
        feats_s, feats_t = (net.eval()(x[:2], return_features=True)[0]
                            for net in (student, teacher))
    distiller = create_distiller(gain_distiller, feats_s, feats_t)
    step = build_distill_step(student, teacher, distiller, "always", x[:2], tau=5.0)
    groups = step.optimizers["student"].param_groups
    trained = {id(p) for group in groups for p in group["params"]}
    assert {id(g) for g in distiller.gains} <= trained  # its extra parameters are trained
    assert not any(id(p) in trained for p in distiller.fixed.parameters())  # its choice
    assert all(id(p) in trained for p in student.parameters())
    assert step.beta2 == 3.0  # its Table II default (DistillConfig.beta2_for)
    before = [g.detach().clone() for g in distiller.gains]
    step(x, y)
    assert all(not torch.equal(b, g.detach()) for b, g in zip(before, distiller.gains,
                                                              strict=True))
    cfg = DistillConfig(beta2={gain_distiller: 0.25})  # a params.yaml override wins
    assert build_distill_step(student, teacher, distiller, "always", x[:2], cfg,
                              tau=5.0).beta2 == 0.25


def test_beta2_for_names_and_distillers_is_one_rule():
    cfg = DistillConfig(beta2={"at": 7.0})
    assert cfg.beta2_for("at") == 7.0 and cfg.beta2_for("sp") == 3000.0
    feats = [torch.randn(2, 4, 4, 4) for _ in range(4)]
    at = create_distiller("at", feats, feats)
    assert cfg.beta2_for(at) == 7.0 and DistillConfig().beta2_for(at) == 1000.0
    assert DistillConfig().beta2_for(TinyDistiller) == 2.0  # unregistered: its class default


# ----------------------------------------------------------------------------- strategies
def test_always_distills_everywhere_and_never_nowhere_without_running_the_teacher():
    step, x, y = _setup(strategy="always")
    stats = step(x, y)
    assert torch.equal(stats["p_distill"], torch.ones(3))
    assert stats["kd"] > 0 and stats["distill"] > 0

    step, x, y = _setup(strategy="never")
    calls = []
    step.teacher.register_forward_hook(lambda *a: calls.append(1))
    stats = step(x, y)
    assert torch.equal(stats["p_distill"], torch.zeros(3))
    assert stats["kd"] == 0 and stats["distill"] == 0 and stats["routing"] == 0
    torch.testing.assert_close(stats["loss"], stats["ce"])
    assert calls == []


def test_never_trains_the_student_on_cross_entropy_alone():
    step, x, y = _setup(strategy="never")
    ref = copy.deepcopy(step.student)
    step(x, y)
    F.cross_entropy(ref(x), y).backward()
    for p, q in zip(step.student.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)


def test_anti_is_the_complement_of_the_policy_and_still_trains_it():
    adaptive, x, y = _setup(strategy="adaptive", gen_seed=5)
    anti, _, _ = _setup(strategy="anti", gen_seed=5)
    sp = anti.forward_student(x, y)
    assert torch.equal(sp.mask, 1 - sp.decisions)
    assert 0 < sp.decisions.mean() < 1

    anti, _, _ = _setup(strategy="anti", gen_seed=5)
    policy_before = copy.deepcopy(anti.policy.state_dict())
    s_adaptive, s_anti = adaptive(x, y), anti(x, y)
    torch.testing.assert_close(s_adaptive["p_distill"] + s_anti["p_distill"], torch.ones(3))
    assert s_anti["routing"] > 0
    assert not torch.equal(anti.policy.linear.weight, policy_before["linear.weight"])
    torch.testing.assert_close(anti.decide(x), 1 - adaptive.decide(x))


def test_random_distills_about_half_of_samples_and_spots():
    step, x, y = _setup(strategy="random", gen_seed=0)
    fractions = torch.stack([step(x, y)["p_distill"] for _ in range(8)])
    assert set(fractions.unique().tolist()) != {0.0, 1.0}
    assert abs(fractions.mean().item() - 0.5) < 0.1
    assert step.policy is None


def test_distill_policy_init_starts_by_distilling_everywhere():
    step, x, y = _setup(cfg=DistillConfig(policy_init="distill"), gen_seed=0)
    assert torch.equal(step(x, y)["p_distill"], torch.ones(3))


# ----------------------------------------------------------------------------- isolation
@pytest.mark.parametrize("strategy", ["adaptive", "anti", "always", "random"])
def test_teacher_is_bit_identical_after_several_steps(strategy):
    step, x, y = _setup(strategy=strategy, gen_seed=1)
    before = copy.deepcopy(step.teacher.state_dict())
    student_before = copy.deepcopy(step.student.state_dict())
    for _ in range(3):
        step(x, y)
    after = step.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN buffers
    assert all(p.grad is None for p in step.teacher.parameters())
    assert any(not torch.equal(student_before[k], v) for k, v in step.student.state_dict().items())


def test_routing_loss_updates_only_policy_and_adapters():
    step, x, y = _setup(gen_seed=2)
    sp = step.forward_student(x, y)
    assert 0 < sp.decisions[:, :-1].mean() < 1  # both paths used at the branch spots
    routing_loss = step.forward_routing(x, y, sp)
    router_before = [p.clone() for p in step.router_parameters()]
    step.update_router(routing_loss)
    for net in (step.student, step.teacher, step.distiller):
        assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in step.student.parameters())
    assert step.student.training and not step.teacher.training
    changed = [
        not torch.equal(a, b) for a, b in zip(router_before, step.router_parameters(), strict=True)
    ]
    assert all(changed[:2])  # policy weight and bias
    for adapters in (step.routing.to_teacher, step.routing.to_student):
        for adapter in adapters:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.parameters())


def test_step_adds_no_input_gradient_and_keeps_student_modes():
    step, x, y = _setup(gen_seed=3)
    x = x.requires_grad_(True)
    sp = step.forward_student(x, y)
    routing_loss = step.forward_routing(x, y, sp)
    assert torch.autograd.grad(routing_loss, x, allow_unused=True)[0] is None


def test_a_masked_spot_contributes_nothing_to_the_student_gradient():
    step, x, y = _setup(gen_seed=4)
    _force_policy(step, [False, True, True])  # spot2 off, spot3 and logits on
    student, distiller, teacher = (
        copy.deepcopy(m) for m in (step.student, step.distiller, step.teacher)
    )
    stats = step(x, y)
    torch.testing.assert_close(stats["p_distill"], torch.tensor([0.0, 1.0, 1.0]))
    assert stats["distill_spots"][0] == 0

    with torch.no_grad():
        feats_t, logits_t = teacher(x, return_features=True)
    feats_s, logits_s = student(x, return_features=True)
    p_t = F.softmax(logits_t / 4, 1)
    kd = (p_t * (p_t.log() - F.log_softmax(logits_s / 4, 1))).sum(1).mean() * 16
    spot3_only = distiller(feats_s, feats_t)[1]  # the unmasked spot, ungated
    (F.cross_entropy(logits_s, y) + kd + 2.0 * spot3_only).backward()
    for p, q in zip(step.student.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    assert step.distiller.regressors[0].weight.grad.abs().sum() == 0
    torch.testing.assert_close(
        step.distiller.regressors[1].weight.grad, distiller.regressors[1].weight.grad
    )


# ----------------------------------------------------------------------------- Algorithm 1
def _algorithm1(student, teacher, distiller, policy, routing, x, y, noise, tau, cfg, beta2):
    """Algorithm 1 of the paper, written out plainly: returns losses and every gradient."""
    student.train()
    teacher.eval()
    with torch.no_grad():
        feat_t, logit_t = teacher(x, return_features=True)
    feat_s, logit_s = student(x, return_features=True)

    ft = torch.cat((feat_t[-1], feat_s[-1]), 1).detach()
    a = policy.linear(ft).view(x.shape[0], -1, 2)
    y_soft = F.softmax((a + noise) / tau, dim=-1)
    y_hard = F.one_hot((a + noise).argmax(-1), 2).float()
    w = (y_hard - y_soft.detach() + y_soft)[:, :, 0]
    d = w.detach()

    T = cfg.kd_T
    p_t = F.softmax(logit_t / T, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(logit_s / T, 1))).sum(1) * T * T
    loss_s = (
        F.cross_entropy(logit_s, y)
        + cfg.beta1 * (kl * d[:, -1]).mean()
        + beta2 * distiller(feat_s, feat_t, d[:, :-1]).sum()
    )

    input_s = input_t = x
    student.eval()
    start = 0
    for i, k in enumerate(distiller.spots):
        f_t = teacher.run_stages(input_t, start, k + 1)
        f_s = student.run_stages(input_s, start, k + 1)
        wi = w[:, i].view(-1, 1, 1, 1) if f_s.dim() == 4 else w[:, i].view(-1, 1)
        input_s = f_s * (1 - wi) + routing.to_student[i](f_t) * wi
        input_t = routing.to_teacher[i](f_s) * (1 - wi) + f_t * wi
        start = k + 1
    f_t = teacher.run_stages(input_t, start, len(teacher.stages))
    f_s = student.run_stages(input_s, start, len(student.stages))
    out = f_s * (1 - w[:, -1:]) + f_t * w[:, -1:]
    student.train()
    loss_r = cfg.beta3 * F.cross_entropy(out, y)

    router = [*policy.parameters(), *routing.parameters()]
    trained = [*student.parameters(), *distiller.parameters()]
    loss_r.backward()
    router_grads = _grads(router)
    for p in trained:
        p.grad = None  # the routing loss's student gradients are thrown away
    loss_s.backward()
    return loss_s.detach(), loss_r.detach(), router_grads, _grads(trained)


@pytest.mark.parametrize("spots", [(1, 2), (3,), (0, 2), ()])
def test_step_matches_a_plain_algorithm1(spots):
    cfg = DistillConfig(beta1=0.7, beta3=1.3, weight_decay=0.0, router_weight_decay=0.0)
    step, x, y = _setup(spots=spots, cfg=cfg, tau=2.5, gen_seed=11)
    ref = {
        "student": copy.deepcopy(step.student),
        "teacher": copy.deepcopy(step.teacher),
        "distiller": copy.deepcopy(step.distiller),
        "policy": copy.deepcopy(step.policy),
        "routing": copy.deepcopy(step.routing),
    }
    noise = gumbel_noise(torch.empty(B, len(spots) + 1, 2), torch.Generator().manual_seed(11))
    stats = step(x, y)

    loss_s, loss_r, router_grads, trained_grads = _algorithm1(
        ref["student"],
        ref["teacher"],
        ref["distiller"],
        ref["policy"],
        ref["routing"],
        x,
        y,
        noise,
        2.5,
        cfg,
        beta2=2.0,
    )
    torch.testing.assert_close(stats["loss"], loss_s)
    torch.testing.assert_close(stats["routing"], loss_r)
    got_router = _grads(step.router_parameters())
    got_trained = _grads([*step.student.parameters(), *step.distiller.parameters()])
    assert all(g is not None for g in router_grads[:2])  # the policy learned something
    for got, want in zip([*got_router, *got_trained], [*router_grads, *trained_grads], strict=True):
        if want is None:
            assert got is None or got.abs().sum() == 0
        else:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_reference_routing_loss_mode_runs_the_authors_objective():
    cfg = DistillConfig(routing_loss="reference", gamma=2.0)
    step, x, y = _setup(cfg=cfg, gen_seed=6)
    sp = step.forward_student(x, y)
    routed = step.routing(step.student, step.teacher, x, sp.w, sp.teacher_first)
    ce = F.cross_entropy(routed, y)
    scale = 2.0 if ce > sp.ce else 0.5
    hinge = max(0.0, B / 2 - sp.decisions[:, -1].sum().item())
    torch.testing.assert_close(
        step.forward_routing(x, y, sp), scale * ce + hinge, rtol=1e-5, atol=1e-5
    )


# ----------------------------------------------------------------------------- teacher modes
def test_trainable_teacher_learns_only_from_its_own_cross_entropy():
    step, x, y = _setup(cfg=DistillConfig(teacher_trainable="pretrained"), gen_seed=7)
    teacher_ref = copy.deepcopy(step.teacher).train()
    ids = {id(p) for p in step.optimizers["student"].param_groups[0]["params"]}
    assert all(id(p) in ids for p in step.teacher.parameters())
    assert "teacher" in step.modules_to_checkpoint()
    before = copy.deepcopy(step.teacher.state_dict())
    stats = step(x, y)
    assert "teacher_ce" in stats
    assert step.teacher.training
    F.cross_entropy(teacher_ref(x), y).backward()
    for p, q in zip(step.teacher.parameters(), teacher_ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    after = step.teacher.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


# ----------------------------------------------------------------------------- loop API
def test_stats_are_detached_device_tensors_the_loop_can_sum():
    step, x, y = _setup(gen_seed=8)
    stats = step(x, y)
    assert set(stats) == {
        "loss",
        "ce",
        "kd",
        "distill",
        "routing",
        "p_distill",
        "distill_spots",
        "correct",
    }
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in stats.values())
    assert stats["p_distill"].shape == (3,) and stats["distill_spots"].shape == (2,)
    assert stats["correct"].dtype == torch.int64 and 0 <= stats["correct"] <= B
    torch.testing.assert_close(stats["loss"], stats["ce"] + stats["kd"] + 2.0 * stats["distill"])


def test_same_seed_same_run():
    runs = []
    for _ in range(2):
        step, x, y = _setup(gen_seed=9)
        runs.append([step(x, y) for _ in range(2)])
    for a, b in zip(*runs, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_set_tau_and_decide():
    step, x, _ = _setup(gen_seed=10)
    with pytest.raises(ValueError, match="0"):
        step.set_tau(0.0)
    step.set_tau(1.5)
    assert step.tau == 1.5
    _force_policy(step, [True, False, True])
    step.student.train()
    grid = step.decide(x)
    assert torch.equal(grid, torch.tensor([[1.0, 0.0, 1.0]]).expand(B, 3))
    assert step.student.training  # modes restored
    assert torch.equal(step.decide(x, sample=True), grid)
    always, _, _ = _setup(strategy="always")
    assert torch.equal(always.decide(x), torch.ones(B, 3))


# ----------------------------------------------------------------------------- zoo models
@pytest.mark.parametrize(
    ("teacher_name", "student_name", "distiller_name"),
    [("resnet14", "resnet8", "at"), ("resnet14", "resnet8", "pkt")],
)
def test_step_matches_a_plain_algorithm1_on_zoo_models(teacher_name, student_name, distiller_name):
    from sakd.distillers import create_distiller
    from sakd.models import create_model

    torch.manual_seed(0)  # float64: PKT's beta2 = 30000 magnifies float32 rounding
    teacher = create_model(teacher_name, CLASSES).double()
    student = create_model(student_name, CLASSES).double()
    x, y = torch.randn(8, 3, 8, 8, dtype=torch.float64), torch.arange(8) % CLASSES
    with torch.no_grad():
        feats_s, _ = student.eval()(x[:2], return_features=True)
        feats_t, _ = teacher.eval()(x[:2], return_features=True)
    distiller = create_distiller(distiller_name, feats_s, feats_t)
    cfg = DistillConfig(weight_decay=0.0, router_weight_decay=0.0)
    step = build_distill_step(
        student,
        teacher,
        distiller,
        "adaptive",
        x[:2],
        cfg,
        tau=3.0,
        generator=torch.Generator().manual_seed(1),
    )
    ref = [copy.deepcopy(m) for m in (student, teacher, distiller, step.policy, step.routing)]
    noise = gumbel_noise(
        torch.empty(8, len(distiller.spots) + 1, 2, dtype=torch.float64),
        torch.Generator().manual_seed(1),
    )
    stats = step(x, y)
    loss_s, loss_r, router_grads, trained_grads = _algorithm1(
        *ref, x, y, noise, 3.0, cfg, beta2=distiller.default_beta
    )
    torch.testing.assert_close(stats["loss"], loss_s)
    torch.testing.assert_close(stats["routing"], loss_r)
    got = _grads([*step.router_parameters(), *student.parameters(), *distiller.parameters()])
    for g, want in zip(got, [*router_grads, *trained_grads], strict=True):
        if want is None:
            assert g is None or g.abs().sum() == 0
        else:
            torch.testing.assert_close(g, want, rtol=1e-7, atol=1e-9)
