"""Golden values of the parameter-free losses against loop-based references of the published
formulas, gating by masks (empty, full, partial = explicit subset x n/B) and gradient flow."""

from __future__ import annotations

import math

import pytest
import test_distillers_reference as ref
import torch

from sakd.distillers import functional as L

B = 5
MASK = [1.0, 0.0, 1.0, 1.0, 0.0]  # a partial selection, n = 3


def _randn(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@pytest.fixture
def maps() -> tuple[torch.Tensor, torch.Tensor]:
    return _randn(B, 3, 4, 4, seed=1), _randn(B, 5, 4, 4, seed=2)


@pytest.fixture
def embeddings() -> tuple[torch.Tensor, torch.Tensor]:
    return _randn(B, 6, seed=3), _randn(B, 4, seed=4)


def test_kd_hand_value() -> None:
    # p_t = softmax([ln 3, 0]) = (3/4, 1/4), p_s = (1/2, 1/2): KL = 3/4 ln 1.5 + 1/4 ln 0.5
    T = 4.0
    logits_t = torch.tensor([[T * math.log(3.0), 0.0]], dtype=torch.float64)
    logits_s = torch.zeros(1, 2, dtype=torch.float64)
    expected = (0.75 * math.log(1.5) + 0.25 * math.log(0.5)) * T * T
    assert L.kd(logits_s, logits_t, T).item() == pytest.approx(expected, rel=1e-12)


def test_kd_matches_loop_reference_and_per_sample_gating() -> None:
    s, t = _randn(B, 7, seed=5), _randn(B, 7, seed=6)
    for T in (1.0, 4.0):
        assert L.kd(s, t, T).item() == pytest.approx(ref.kd(ref.as_lists(s), ref.as_lists(t), T))
    per = [ref.kd([a], [b], 4.0) for a, b in zip(ref.as_lists(s), ref.as_lists(t), strict=True)]
    assert L.kd_per_sample(s, t).tolist() == pytest.approx(per)
    gate = torch.tensor(MASK, dtype=torch.float64)
    assert L.kd_masked(s, t, gate).item() == pytest.approx(ref.gated(per, MASK))


def test_fitnet_is_elementwise_mse() -> None:
    s, t = _randn(B, 3, 2, 2, seed=7), _randn(B, 3, 2, 2, seed=8)
    per = [ref.fitnet_sample(a, b) for a, b in zip(ref.as_lists(s), ref.as_lists(t), strict=True)]
    assert L.fitnet(s, t).item() == pytest.approx(ref.mean(per))
    assert L.fitnet_per_sample(s, t).tolist() == pytest.approx(per)
    with pytest.raises(ValueError, match="regressor"):
        L.fitnet(s, t[:, :2])


@pytest.mark.parametrize("p", [1, 2, 4])
def test_at_matches_reference(maps, p: int) -> None:
    s, t = maps
    per = [ref.at_sample(a, b, p) for a, b in zip(ref.as_lists(s), ref.as_lists(t), strict=True)]
    assert L.at(s, t, p).item() == pytest.approx(ref.mean(per))
    assert L.at_per_sample(s, t, p).tolist() == pytest.approx(per)


@pytest.mark.parametrize("loss, sample_ref", [
    (L.at_per_sample, ref.at_sample),
    (L.nst_per_sample, ref.nst_sample),
    (L.ft_per_sample, ref.ft_sample),
])
def test_larger_map_is_average_pooled_to_the_smaller(loss, sample_ref) -> None:
    big, small = _randn(B, 3, 4, 4, seed=9), _randn(B, 5, 2, 2, seed=10)
    pooled = [ref.block_pool(x, 2) for x in ref.as_lists(big)]
    expected = [sample_ref(a, b) for a, b in zip(pooled, ref.as_lists(small), strict=True)]
    assert loss(big, small).tolist() == pytest.approx(expected)  # student larger
    expected_t = [sample_ref(b, a) for a, b in zip(pooled, ref.as_lists(small), strict=True)]
    assert loss(small, big).tolist() == pytest.approx(expected_t)  # teacher larger


def test_nst_matches_reference(maps) -> None:
    s, t = maps
    per = [ref.nst_sample(a, b) for a, b in zip(ref.as_lists(s), ref.as_lists(t), strict=True)]
    assert L.nst(s, t).item() == pytest.approx(ref.mean(per))


def test_ft_matches_reference(maps) -> None:
    s, t = maps
    per = [ref.ft_sample(a, b) for a, b in zip(ref.as_lists(s), ref.as_lists(t), strict=True)]
    assert L.ft(s, t).item() == pytest.approx(ref.mean(per))


def test_vid_negative_log_likelihood() -> None:
    mu, target = _randn(B, 2, 2, 2, seed=11), _randn(B, 2, 2, 2, seed=12)
    var = torch.tensor([0.5, 2.0], dtype=torch.float64)
    expected = [
        ref.mean([0.5 * ((mu[i, c, h, w] - target[i, c, h, w]).item() ** 2 / var[c].item()
                         + math.log(var[c].item()))
                  for c in range(2) for h in range(2) for w in range(2)])
        for i in range(B)
    ]
    assert L.vid_per_sample(mu, target, var).tolist() == pytest.approx(expected)


RELATIONAL = [
    ("sp", L.sp, L.sp_masked, ref.sp, "maps"),
    ("cc", L.cc, L.cc_masked, ref.cc, "cc"),
    ("rkd", L.rkd, L.rkd_masked, ref.rkd, "embeddings"),
    ("pkt", L.pkt, L.pkt_masked, ref.pkt, "embeddings"),
]


def _relational_inputs(kind: str, maps, embeddings):
    if kind == "maps":
        return maps
    if kind == "cc":  # CC compares embeddings of equal width
        return embeddings[0], _randn(B, 6, seed=13)
    return embeddings


@pytest.mark.parametrize("name, plain, masked, loop_ref, kind", RELATIONAL)
def test_relational_golden_values(name, plain, masked, loop_ref, kind, maps, embeddings) -> None:
    s, t = _relational_inputs(kind, maps, embeddings)
    a, b = ref.as_lists(s), ref.as_lists(t)
    assert plain(s, t).item() == pytest.approx(loop_ref(a, b), rel=1e-9)
    gate = torch.tensor(MASK, dtype=torch.float64)
    expected = ref.subset_times_fraction(loop_ref, a, b, MASK)
    assert masked(s, t, gate).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name, plain, masked, loop_ref, kind", RELATIONAL)
def test_relational_full_mask_is_ungated_and_empty_is_exact_zero(
    name, plain, masked, loop_ref, kind, maps, embeddings
) -> None:
    s, t = _relational_inputs(kind, maps, embeddings)
    s = s.clone().requires_grad_(True)
    full = masked(s, t, torch.ones(B, dtype=torch.float64))
    assert full.item() == pytest.approx(plain(s, t).item(), rel=1e-12)

    empty = masked(s, t, torch.zeros(B, dtype=torch.float64))
    assert empty.item() == 0.0
    (grad,) = torch.autograd.grad(empty, s)
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name, plain, masked, loop_ref, kind", RELATIONAL)
def test_relational_loss_ignores_unselected_samples(
    name, plain, masked, loop_ref, kind, maps, embeddings
) -> None:
    s, t = _relational_inputs(kind, maps, embeddings)
    gate = torch.tensor(MASK, dtype=torch.float64)
    unselected = (1 - gate).view(-1, *([1] * (s.dim() - 1)))
    s2 = s + 3.0 * unselected * torch.randn_like(s)
    t2 = t + 3.0 * unselected.view(-1, *([1] * (t.dim() - 1))) * torch.randn_like(t)
    assert masked(s2, t2, gate).item() == pytest.approx(masked(s, t, gate).item(), rel=1e-12)


def test_cc_subset_of_one_sample_is_zero() -> None:
    s, t = _randn(B, 4, seed=14), _randn(B, 4, seed=15)
    one = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert L.cc_masked(s, t, one).item() == 0.0


def test_rkd_weights_scale_the_two_terms(embeddings) -> None:
    s, t = embeddings
    a, b = ref.as_lists(s), ref.as_lists(t)
    assert L.rkd(s, t, 1.0, 0.0).item() == pytest.approx(ref.rkd(a, b, 1.0, 0.0))
    assert L.rkd(s, t, 0.0, 1.0).item() == pytest.approx(ref.rkd(a, b, 0.0, 1.0))


@pytest.mark.parametrize("loss", [
    lambda s, t: L.kd(s.flatten(1), t.flatten(1)),
    lambda s, t: L.fitnet(s, t),
    L.at, L.nst, L.ft, L.sp, L.rkd, L.pkt,
])
def test_gradient_reaches_the_student_only(loss) -> None:
    s = _randn(B, 3, 2, 2, seed=16).requires_grad_(True)
    t = _randn(B, 3, 2, 2, seed=17).requires_grad_(True)
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
