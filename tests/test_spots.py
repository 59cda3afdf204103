"""Where to distill: Gumbel decisions, tau schedules, policy, adapters, routing, strategies."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sakd.layers import Resize
from sakd.registry import UnknownNameError
from sakd.spots import (
    DISTILL,
    PolicyNet,
    RoutingNetwork,
    build_adapter,
    create_strategy,
    get_routing_loss,
    gumbel_noise,
    gumbel_softmax_st,
    list_strategies,
    list_tau_schedules,
    make_tau_schedule,
    route_decisions,
    tau_total,
)
from tests.tinynets import TinyNet


def _pair(seed: int = 0) -> tuple[TinyNet, TinyNet]:
    torch.manual_seed(seed)
    # teacher keeps block1 at full resolution: its maps are twice the student's there
    return TinyNet(2, strides=(2, 2)), TinyNet(4, strides=(1, 4))


# ----------------------------------------------------------------------------- Gumbel
def test_straight_through_is_one_hot_forward_and_softmax_backward():
    torch.manual_seed(0)
    logits = torch.randn(64, 3, 2, requires_grad=True)
    noise = gumbel_noise(logits)
    out = gumbel_softmax_st(logits, tau=2.0, noise=noise)
    assert set(out.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out.detach().sum(-1), torch.ones(64, 3))
    assert torch.equal(out.detach().argmax(-1), (logits + noise).argmax(-1))

    weights = torch.randn(64, 3, 2)
    (grad_st,) = torch.autograd.grad((out * weights).sum(), logits)
    soft = torch.softmax((logits + noise) / 2.0, dim=-1)
    (grad_soft,) = torch.autograd.grad((soft * weights).sum(), logits)
    assert grad_st.abs().sum() > 0
    torch.testing.assert_close(grad_st, grad_soft)


def test_tau_shapes_the_gradient_not_the_decision():
    torch.manual_seed(1)
    logits = torch.randn(32, 2, 2, requires_grad=True)
    noise = gumbel_noise(logits)
    sharp = route_decisions(logits, 0.5, noise=noise)
    flat = route_decisions(logits, 5.0, noise=noise)
    assert torch.equal(sharp.detach(), flat.detach())
    g_sharp = torch.autograd.grad(sharp.sum(), logits)[0]
    g_flat = torch.autograd.grad(flat.sum(), logits)[0]
    assert not torch.allclose(g_sharp, g_flat)


def test_decisions_sample_the_policy_distribution_eq5():
    logits = torch.log(torch.tensor([0.8, 0.2])).expand(20000, 1, 2)
    gen = torch.Generator().manual_seed(3)
    w = route_decisions(logits, 1.0, generator=gen)  # column DISTILL has probability 0.8
    assert DISTILL == 0
    assert abs(w.mean().item() - 0.8) < 0.015


def test_gumbel_generator_makes_draws_reproducible():
    like = torch.zeros(8, 3, 2)
    a = gumbel_noise(like, torch.Generator().manual_seed(7))
    b = gumbel_noise(like, torch.Generator().manual_seed(7))
    c = gumbel_noise(like, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isfinite(a).all()


def test_gumbel_rejects_non_positive_tau():
    with pytest.raises(ValueError, match="-1"):
        gumbel_softmax_st(torch.zeros(2, 1, 2), tau=-1.0)


# ----------------------------------------------------------------------------- tau
@pytest.mark.parametrize("kind", ["linear", "exponential", "cosine"])
def test_tau_decays_from_tau0_to_tau_min_monotonically(kind):
    tau = make_tau_schedule(kind, tau0=5.0, tau_min=0.5, total=240)
    values = [tau(t) for t in range(240)]
    assert values[0] == pytest.approx(5.0)
    assert values[-1] == pytest.approx(0.5)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] > values[120] > values[-1]
    assert tau(-3) == values[0] and tau(10_000) == values[-1]  # clamped outside the run


def test_tau_schedule_midpoints_follow_their_shape():
    mid = 100  # total 201: t = 100 is exactly half way
    assert make_tau_schedule("linear", 5.0, 1.0, 201)(mid) == pytest.approx(3.0)
    assert make_tau_schedule("exponential", 4.0, 1.0, 201)(mid) == pytest.approx(2.0)
    assert make_tau_schedule("cosine", 5.0, 1.0, 201)(mid) == pytest.approx(3.0)
    q = make_tau_schedule("cosine", 5.0, 1.0, 201)(50)
    assert q == pytest.approx(1.0 + 2.0 * (1 + math.cos(math.pi / 4)))


def test_constant_tau_is_the_authors_fixed_temperature():
    tau = make_tau_schedule("constant", 5.0, 0.5, 10)
    assert {tau(t) for t in range(10)} == {5.0}


def test_tau_schedule_per_step_and_per_epoch_totals():
    assert tau_total("epoch", 240, 782) == 240
    assert tau_total("step", 240, 782) == 240 * 782
    with pytest.raises(ValueError, match="'batch'"):
        tau_total("batch", 240, 782)


@pytest.mark.parametrize(
    ("tau0", "tau_min", "total", "named"),
    [(1.0, 2.0, 10, "2.0"), (0.0, 0.0, 10, "0.0"), (5.0, -1.0, 10, "-1.0"), (5.0, 1.0, 0, "0")],
)
def test_tau_schedule_rejects_bad_values(tau0, tau_min, total, named):
    with pytest.raises(ValueError, match=named):
        make_tau_schedule("linear", tau0, tau_min, total)


def test_unknown_tau_schedule_lists_valid_names():
    with pytest.raises(UnknownNameError, match="cosine, exponential, linear"):
        make_tau_schedule("step", 5.0, 1.0, 10)
    assert list_tau_schedules() == ["constant", "cosine", "exponential", "linear"]


# ----------------------------------------------------------------------------- policy
def test_policy_outputs_one_routing_vector_per_spot_from_detached_embeddings():
    policy = PolicyNet(teacher_dim=16, student_dim=8, num_decisions=3)
    e_t = torch.randn(5, 16, requires_grad=True)
    e_s = torch.randn(5, 8, requires_grad=True)
    out = policy(e_t, e_s)
    assert out.shape == (5, 3, 2)
    out.sum().backward()
    assert e_t.grad is None and e_s.grad is None
    assert policy.linear.weight.grad is not None


def test_policy_input_is_teacher_then_student():
    policy = PolicyNet(teacher_dim=2, student_dim=3, num_decisions=1)
    with torch.no_grad():
        policy.linear.weight.zero_()
        policy.linear.bias.zero_()
        policy.linear.weight[0, :2] = 1.0  # reads only the teacher part
    out = policy(torch.ones(1, 2), torch.full((1, 3), 100.0))
    assert out[0, 0, 0].item() == pytest.approx(2.0)


def test_distill_init_starts_by_distilling_everywhere():
    torch.manual_seed(0)
    neutral = PolicyNet(8, 4, num_decisions=3, init="neutral")
    torch.manual_seed(0)
    distill = PolicyNet(8, 4, num_decisions=3, init="distill")
    delta = (distill.linear.bias - neutral.linear.bias).view(3, 2)
    assert torch.equal(delta[:, DISTILL], torch.full((3,), 10.0))
    assert torch.equal(delta[:, 1 - DISTILL], torch.zeros(3))
    e_t, e_s = torch.randn(64, 8), torch.randn(64, 4)
    w = route_decisions(distill(e_t, e_s), 5.0, torch.Generator().manual_seed(0))
    assert w.detach().mean().item() == 1.0


def test_unknown_policy_init_lists_valid_names():
    with pytest.raises(UnknownNameError, match="distill, neutral"):
        PolicyNet(4, 4, 2, init="teacher")


# ----------------------------------------------------------------------------- adapters
@pytest.mark.parametrize(
    ("src", "dst", "layer"),
    [
        ((2, 8, 8, 8), (2, 16, 8, 8), nn.Conv2d),  # same size: 1x1
        ((2, 8, 8, 8), (2, 16, 4, 4), nn.Conv2d),  # twice the target: 3x3 stride 2
        ((2, 8, 4, 4), (2, 16, 8, 8), nn.ConvTranspose2d),  # half: 4x4 stride-2 transposed
        ((2, 8, 7, 7), (2, 16, 4, 4), Resize),  # other ratios: resize, then 1x1
        ((2, 8, 3, 3), (2, 16, 8, 8), Resize),
    ],
)
def test_map_adapter_matches_the_target_shape(src, dst, layer):
    adapter = build_adapter(src, dst)
    assert isinstance(adapter[0], layer)
    assert isinstance(adapter[-2], nn.BatchNorm2d) and isinstance(adapter[-1], nn.ReLU)
    assert adapter(torch.randn(src)).shape == dst


def test_adapter_kernels_follow_the_authors_convreg():
    down = build_adapter((2, 8, 8, 8), (2, 16, 4, 4))[0]
    up = build_adapter((2, 8, 4, 4), (2, 16, 8, 8))[0]
    same = build_adapter((2, 8, 4, 4), (2, 16, 4, 4))[0]
    assert (down.kernel_size, down.stride) == ((3, 3), (2, 2))
    assert (up.kernel_size, up.stride) == ((4, 4), (2, 2))
    assert same.kernel_size == (1, 1)


def test_vector_adapter_is_linear_and_mismatch_fails():
    adapter = build_adapter((2, 64), (2, 256))
    assert isinstance(adapter, nn.Linear) and adapter(torch.randn(3, 64)).shape == (3, 256)
    with pytest.raises(ValueError, match="both must be maps"):
        build_adapter((2, 64), (2, 16, 4, 4))


# ----------------------------------------------------------------------------- routing
def _routing(spots, student, teacher, x):
    with torch.no_grad():
        student.eval(), teacher.eval()
        feats_s, _ = student(x, return_features=True)
        feats_t, _ = teacher(x, return_features=True)
    student.train()
    return RoutingNetwork.from_examples(spots, feats_s, feats_t)


@pytest.mark.parametrize("spots", [[1, 2], [3], []])
def test_routing_all_student_or_all_teacher_paths_give_that_network(spots):
    student, teacher = _pair()
    x = torch.randn(6, 3, 8, 8)
    routing = _routing(spots, student, teacher, x)
    student.train()
    with torch.no_grad():
        ones = torch.ones(6, len(spots) + 1)
        to_teacher = routing(student, teacher, x, ones)
        to_student = routing(student, teacher, x, torch.zeros_like(ones))
        student.eval()
        expect_s, expect_t = student(x), teacher(x)
    torch.testing.assert_close(to_teacher, expect_t)
    torch.testing.assert_close(to_student, expect_s)


def test_routing_is_per_sample():
    student, teacher = _pair()
    x = torch.randn(6, 3, 8, 8)
    routing = _routing([1, 2], student, teacher, x)
    w = torch.tensor([[0.0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0], [1, 1, 1]])
    with torch.no_grad():
        out = routing(student, teacher, x, w)
        student.eval()
        expect_s, expect_t = student(x), teacher(x)
    torch.testing.assert_close(out[[0, 4]], expect_s[[0, 4]])
    torch.testing.assert_close(out[[1, 5]], expect_t[[1, 5]])
    assert not torch.allclose(out[2], expect_s[2]) and not torch.allclose(out[3], expect_t[3])


def test_routing_trains_only_adapters_and_decisions_and_restores_the_nets():
    student, teacher = _pair()
    x = torch.randn(8, 3, 8, 8, requires_grad=True)
    routing = _routing([1, 2], student, teacher, x.detach())
    student.train()
    stats_before = [b.clone() for b in student.buffers()]
    w = torch.tensor([[0.0, 1, 1], [1, 0, 0]]).repeat(4, 1).requires_grad_(True)
    out = routing(student, teacher, x, w)
    assert student.training and not teacher.training  # modes restored
    assert all(p.requires_grad for p in [*student.parameters(), *teacher.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(stats_before, student.buffers(), strict=True))
    loss = F.cross_entropy(out, torch.arange(8) % 5)
    grads = torch.autograd.grad(
        loss, [w, x, *routing.parameters()], allow_unused=True, retain_graph=True
    )
    assert grads[0].abs().sum() > 0  # the decisions get a gradient (to the policy)
    assert grads[1] is None  # nothing before the first branch spot is differentiated
    assert all(g is not None for g in grads[2:])
    loss.backward()
    assert all(p.grad is None for p in [*student.parameters(), *teacher.parameters()])


def test_routing_reuses_the_given_teacher_output():
    student, teacher = _pair()
    x = torch.randn(4, 3, 8, 8)
    routing = _routing([2], student, teacher, x)
    with torch.no_grad():
        feats_t, _ = teacher(x, return_features=True)
        w = torch.ones(4, 2)
        calls = []
        hook = teacher.stages[0].register_forward_hook(lambda *a: calls.append(1))
        out = routing(student, teacher, x, w, teacher_first=feats_t[2])
        hook.remove()
        torch.testing.assert_close(out, teacher(x))
    assert calls == []


def test_routing_rejects_unsorted_spots():
    with pytest.raises(ValueError, match="increasing"):
        RoutingNetwork([2, 1], [nn.Identity()] * 2, [nn.Identity()] * 2)


# ----------------------------------------------------------------------------- routing loss
def test_paper_routing_loss_is_beta3_ce():
    routed, y = torch.randn(8, 5), torch.arange(8) % 5
    loss = get_routing_loss("paper")(
        routed, y, torch.zeros(8), torch.tensor(0.0), beta3=0.5, gamma=3.0
    )
    torch.testing.assert_close(loss, 0.5 * F.cross_entropy(routed, y))


def test_reference_routing_loss_scales_by_gamma_and_adds_the_half_batch_hinge():
    torch.manual_seed(0)
    ref = get_routing_loss("reference")
    routed, y = torch.randn(8, 5), torch.arange(8) % 5
    ce = F.cross_entropy(routed, y)
    w_all_teacher = torch.ones(8)
    worse = ref(routed, y, w_all_teacher, ce - 1, beta3=1.0, gamma=2.0)
    better = ref(routed, y, w_all_teacher, ce + 1, beta3=1.0, gamma=2.0)
    equal = ref(routed, y, w_all_teacher, ce.clone(), beta3=1.0, gamma=2.0)
    torch.testing.assert_close(worse, 2.0 * ce)
    torch.testing.assert_close(better, ce / 2.0)
    torch.testing.assert_close(equal, ce)
    # hinge max(0, B/2 - sum w): 3 of 8 samples take the teacher's logits -> 4 - 3 = 1
    w = torch.tensor([1.0, 1, 1, 0, 0, 0, 0, 0], requires_grad=True)
    loss = ref(routed, y, w, ce + 1, beta3=3.0, gamma=2.0)
    torch.testing.assert_close(loss, 3.0 * (ce / 2.0 + 1.0))
    (grad,) = torch.autograd.grad(loss, w)
    torch.testing.assert_close(grad, torch.full((8,), -3.0))
    # at least half the batch on the teacher's logits: no hinge, no gradient to w
    w_half = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0], requires_grad=True)
    loss = ref(routed, y, w_half, ce + 1, beta3=1.0, gamma=2.0)
    torch.testing.assert_close(loss, ce / 2.0)
    assert torch.autograd.grad(loss, w_half)[0].abs().sum() == 0


def test_reference_routing_loss_with_a_trained_teacher_is_plain_gamma_ce():
    """Table VIII in the authors' code: gamma * CE, no better/worse comparison, no hinge."""
    routed, y = torch.randn(8, 5), torch.arange(8) % 5
    ce = F.cross_entropy(routed, y)
    ref = get_routing_loss("reference", teacher_trainable=True)
    loss = ref(routed, y, torch.zeros(8), ce + 1, beta3=1.5, gamma=2.0)  # "better", hinge 4
    torch.testing.assert_close(loss, 1.5 * 2.0 * ce)
    assert get_routing_loss("paper", teacher_trainable=True) is get_routing_loss("paper")


# ----------------------------------------------------------------------------- strategies
def test_strategy_registry_and_flags():
    assert list_strategies() == ["adaptive", "always", "anti", "never", "random"]
    uses = {name: create_strategy(name).uses_policy for name in list_strategies()}
    assert uses == {
        "adaptive": True,
        "anti": True,
        "always": False,
        "never": False,
        "random": False,
    }
    assert not create_strategy("never").needs_teacher
    with pytest.raises(UnknownNameError, match="adaptive, always, anti, never, random"):
        create_strategy("sometimes")


def test_strategy_masks():
    d = (torch.rand(16, 3) < 0.5).float()
    cpu, shape = torch.device("cpu"), (16, 3)
    assert torch.equal(create_strategy("adaptive").distill_mask(d, shape, cpu), d)
    assert torch.equal(create_strategy("anti").distill_mask(d, shape, cpu), 1 - d)
    assert torch.equal(create_strategy("always").distill_mask(None, shape, cpu), torch.ones(shape))
    assert torch.equal(create_strategy("never").distill_mask(None, shape, cpu), torch.zeros(shape))
    with pytest.raises(ValueError, match="decisions"):
        create_strategy("adaptive").distill_mask(None, shape, cpu)


def test_random_strategy_is_independent_half_and_seeded():
    rnd = create_strategy("random")
    cpu = torch.device("cpu")
    a = rnd.distill_mask(None, (4000, 3), cpu, torch.Generator().manual_seed(0))
    b = rnd.distill_mask(None, (4000, 3), cpu, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert (a.mean(0) - 0.5).abs().max() < 0.03
    # spots are drawn independently: agreement between two columns is ~0.5, not 1
    assert abs((a[:, 0] == a[:, 1]).float().mean().item() - 0.5) < 0.03
