"""DKD's loss against the reference, two ways.

1. An oracle written here from the paper's equations (Zhao et al., CVPR 2022, Eq. 1-2 and the
   DKD loss), in plain Python floats over lists, without looking at our tensor code:
   b = [p_t, 1 - p_t] (target vs. the rest), q = the non-target classes renormalised,
   TCKD = KL(b^T || b^S), NCKD = KL(q^T || q^S), DKD = T^2 * (alpha * TCKD + beta * NCKD),
   averaged over the batch, p = softmax(z / T).
2. Numbers computed by mdistiller's own `dkd_loss`: megvii-research/mdistiller,
   mdistiller/distillers/DKD.py at commit a08d46f10d6102bd6e3f258ca5ac880b020ea259. Its
   module-level loss functions were run in float64, in a throwaway script outside this
   repository (not committed; mdistiller is not installable here), on the logits and labels
   stored in tests/fixtures/dkd_mdistiller.json (nine cases: batch 1 to 8, 5 to 100 classes,
   (alpha, beta, T) in {(1, 8, 4), (1, 2, 4), (0.5, 6, 2), (2, 1, 1), (0, 8, 4), (1, 0, 4)},
   logits scaled up to 20). mdistiller removes the target class from NCKD by subtracting 1000
   from its logit; ours takes a log-sum-exp over the other classes: the values agree to float64
   rounding, which the fixture test checks (rel 1e-10), and the oracle agrees with it too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sakd.distillers import create_distiller
from sakd.distillers.functional import dkd, dkd_per_sample, kd_per_sample

FIXTURE = Path(__file__).parent / "fixtures" / "dkd_mdistiller.json"
MDISTILLER_COMMIT = "a08d46f10d6102bd6e3f258ca5ac880b020ea259"
SETTINGS = [(1.0, 8.0, 4.0), (1.0, 2.0, 4.0), (0.5, 6.0, 2.0), (2.0, 1.0, 1.0), (1.0, 8.0, 8.0)]


# ---------------------------------------------------------------------- the oracle (paper)
def _softmax(row: list[float], T: float) -> list[float]:
    m = max(row)
    e = [math.exp((v - m) / T) for v in row]
    return [v / sum(e) for v in e]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def oracle_dkd(zs: list[list[float]], zt: list[list[float]], labels: list[int],
               alpha: float, beta: float, T: float) -> float:
    """The batch-mean DKD loss from the paper's definitions, one sample at a time."""
    total = 0.0
    for s_row, t_row, g in zip(zs, zt, labels, strict=True):
        ps, pt = _softmax(s_row, T), _softmax(t_row, T)
        tckd = _kl([pt[g], 1 - pt[g]], [ps[g], 1 - ps[g]])
        qs = [p / (1 - ps[g]) for j, p in enumerate(ps) if j != g]
        qt = [p / (1 - pt[g]) for j, p in enumerate(pt) if j != g]
        total += T * T * (alpha * tckd + beta * _kl(qt, qs))
    return total / len(labels)


def _draw(b: int, c: int, seed: int, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(b, c, generator=g, dtype=torch.float64) * scale
    zt = torch.randn(b, c, generator=g, dtype=torch.float64) * scale
    return zs, zt, torch.randint(0, c, (b,), generator=g)


# ---------------------------------------------------------------------- against mdistiller
def _cases() -> list[dict]:
    doc = json.loads(FIXTURE.read_text())
    assert doc["commit"] == MDISTILLER_COMMIT and doc["dtype"] == "float64"
    return doc["cases"]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"B{len(c['labels'])}-"
                         f"C{len(c['logits_s'][0])}-a{c['alpha']}-b{c['beta']}-T{c['T']}")
def test_dkd_equals_mdistiller_dkd_loss(case: dict) -> None:
    zs, zt = (torch.tensor(case[k], dtype=torch.float64) for k in ("logits_s", "logits_t"))
    y = torch.tensor(case["labels"])
    ours = dkd(zs, zt, y, case["alpha"], case["beta"], case["T"])
    assert ours.item() == pytest.approx(case["loss"], rel=1e-10, abs=1e-12)
    # the oracle says the same: the fixture's numbers are DKD as the paper defines it
    oracle = oracle_dkd(case["logits_s"], case["logits_t"], case["labels"],
                        case["alpha"], case["beta"], case["T"])
    assert oracle == pytest.approx(case["loss"], rel=1e-9)


# ---------------------------------------------------------------------- against the oracle
@pytest.mark.parametrize("alpha, beta, T", SETTINGS)
@pytest.mark.parametrize("batch, classes", [(1, 2), (4, 10), (16, 100)])
def test_dkd_equals_the_paper_oracle(alpha: float, beta: float, T: float, batch: int,
                                     classes: int) -> None:
    zs, zt, y = _draw(batch, classes, seed=batch * 1000 + classes)
    want = oracle_dkd(zs.tolist(), zt.tolist(), y.tolist(), alpha, beta, T)
    assert dkd(zs, zt, y, alpha, beta, T).item() == pytest.approx(want, rel=1e-10)
    got32 = dkd(zs.float(), zt.float(), y, alpha, beta, T).item()
    assert got32 == pytest.approx(want, rel=1e-4, abs=1e-5)  # float32: KL cancellation


def test_kd_is_tckd_plus_weighted_nckd() -> None:
    """The paper's Eq. 1, KD = TCKD + (1 - p_t^T) * NCKD, per sample: a check of both terms
    independent of any reference code."""
    zs, zt, y = _draw(12, 10, seed=7)
    T = 4.0
    tckd = dkd_per_sample(zs, zt, y, alpha=1.0, beta=0.0, T=T)
    nckd = dkd_per_sample(zs, zt, y, alpha=0.0, beta=1.0, T=T)
    p_target = torch.softmax(zt / T, 1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(tckd + (1 - p_target) * nckd, kd_per_sample(zs, zt, T),
                               rtol=1e-12, atol=1e-12)


def test_confident_logits_stay_finite_with_finite_gradients() -> None:
    """A teacher with a margin of hundreds (p_target = 1 in float32): no log(0), no NaN."""
    zs, zt, y = _draw(6, 10, seed=3)
    zt = zt.float() + 400.0 * torch.nn.functional.one_hot(y, 10)
    zs = (zs.float() * 50).requires_grad_(True)
    loss = dkd(zs, zt, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zs.grad).all()


# ---------------------------------------------------------------------- the gated distiller
def _distiller(**options):
    feats = [torch.zeros(2, 3, 4, 4), torch.zeros(2, 10)]
    return create_distiller("dkd", feats, feats, **options)


@pytest.mark.parametrize("alpha, beta, T", SETTINGS[:3])
@pytest.mark.parametrize("batch", [1, 8])
def test_gated_dkd_all_ones_is_their_loss_all_zeros_is_zero(alpha, beta, T, batch) -> None:
    d = _distiller(alpha=alpha, beta=beta, temperature=T, warmup=0)  # no warm-up: scale 1
    zs, zt, y = _draw(batch, 10, seed=batch)
    want = oracle_dkd(zs.tolist(), zt.tolist(), y.tolist(), alpha, beta, T)
    gated = (d.logit_per_sample(zs, zt, y) * torch.ones(batch, dtype=torch.float64)).mean()
    assert gated.item() == pytest.approx(want, rel=1e-10)

    zs = zs.clone().requires_grad_(True)
    zt = zt.clone().requires_grad_(True)
    empty = (d.logit_per_sample(zs, zt, y) * torch.zeros(batch, dtype=torch.float64)).mean()
    assert empty.item() == 0.0 and not torch.isnan(empty)
    empty.backward()
    assert torch.equal(zs.grad, torch.zeros_like(zs)) and zt.grad is None  # teacher detached


def test_half_mask_keeps_the_selected_samples_over_the_whole_batch() -> None:
    d = _distiller(warmup=0)
    zs, zt, y = _draw(8, 10, seed=11)
    mask = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0], dtype=torch.float64)
    gated = (d.logit_per_sample(zs, zt, y) * mask).mean()
    keep = mask.bool().tolist()
    pick = [i for i, k in enumerate(keep) if k]
    want = oracle_dkd([zs.tolist()[i] for i in pick], [zt.tolist()[i] for i in pick],
                      [y.tolist()[i] for i in pick], 1.0, 8.0, 4.0) * len(pick) / len(keep)
    assert gated.item() == pytest.approx(want, rel=1e-10)


def test_warmup_is_linear_over_the_first_epochs_then_one() -> None:
    """mdistiller: min(epoch / WARMUP, 1) with epochs counted from 1; ours counts from 0."""
    d = _distiller(warmup=4)
    zs, zt, y = _draw(4, 10, seed=5)
    full = dkd_per_sample(zs, zt, y)
    for epoch, scale in [(0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0), (10, 1.0)]:
        d.start_epoch(epoch)
        torch.testing.assert_close(d.logit_per_sample(zs, zt, y), full * scale)
    fresh = _distiller()  # default warm-up 20 epochs: a step that never calls start_epoch
    assert fresh.warmup_scale.item() == pytest.approx(1 / 20)
    assert "warmup_scale" not in fresh.state_dict()  # set per epoch, never checkpointed
