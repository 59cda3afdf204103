"""ReviewKD against its reference: mdistiller `mdistiller/distillers/ReviewKD.py` at commit
a08d46f10d6102bd6e3f258ca5ac880b020ea259 (github.com/megvii-research/mdistiller).

The fixture `fixtures/reviewkd_mdistiller.json` was written by a throwaway script (not in this
repository) that ran that file's own `hcl_loss` and `ABF` and the fusion loop of its
`ReviewKD.forward_train` in float64 on small fixed inputs: three stage maps and the pooled
embedding (as a 1x1 map) per network, with a teacher map larger than the student's at the first
stage and smaller at the second, so both resizes are covered. It holds the inputs, the ABF
weights (mdistiller's parameter names, shallow to deep), the fused maps, the HCL of each stage,
their sum, and the HCL of a fixed transform of the teacher maps. Here the same weights are
copied into our ABFs and everything must agree to float64 rounding; then the gating contract
(base.py) and the warm-up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sakd.distillers import create_distiller
from sakd.distillers.reviewkd import ReviewKD, as_map, hcl, hcl_per_sample

FIXTURE = Path(__file__).parent / "fixtures" / "reviewkd_mdistiller.json"
MDISTILLER_COMMIT = "a08d46f10d6102bd6e3f258ca5ac880b020ea259"
# mdistiller's ABF submodule names -> ours
RENAME = {"conv1.": "reduce.", "conv2.": "project.", "att_conv.": "attention."}
EXACT = {"rtol": 1e-12, "atol": 1e-14}


def _tensor(record: dict) -> torch.Tensor:
    dtype = getattr(torch, record["dtype"])
    return torch.tensor(record["values"], dtype=dtype).reshape(record["shape"])


@pytest.fixture(scope="module")
def ref() -> dict:
    raw = json.loads(FIXTURE.read_text())
    assert raw["mdistiller_commit"] == MDISTILLER_COMMIT
    return {
        "feats_s": [_tensor(r) for r in raw["feats_s"]],
        "feats_t": [_tensor(r) for r in raw["feats_t"]],
        "abf_state": [{k: _tensor(v) for k, v in s.items()} for s in raw["abf_state"]],
        "fused": [_tensor(r) for r in raw["fused"]],
        **{k: _tensor(raw[k]) for k in ("hcl_per_stage", "hcl_total", "hcl_alone")},
    }


def _features(ref: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Our feature lists: a stem (not a ReviewKD spot) in front of the reference's stages."""
    b = ref["feats_s"][0].shape[0]
    stem = torch.zeros(b, 1, 4, 4, dtype=torch.float64)
    return [stem, *ref["feats_s"]], [stem, *ref["feats_t"]]


def _with_reference_weights(ref: dict) -> ReviewKD:
    fs, ft = _features(ref)
    d = create_distiller("reviewkd", fs, ft).double().train()
    for abf, state in zip(d.abfs, ref["abf_state"], strict=True):
        renamed = {}
        for key, value in state.items():
            prefix = next(p for p in RENAME if key.startswith(p))
            renamed[RENAME[prefix] + key.removeprefix(prefix)] = value
        abf.load_state_dict(renamed, strict=True)
    return d


def test_hcl_equals_mdistiller(ref: dict) -> None:
    for t, expected in zip(ref["feats_t"], ref["hcl_alone"], strict=True):
        t = as_map(t)
        torch.testing.assert_close(hcl(0.5 * t.roll(1, 0) + 0.1, t), expected, **EXACT)


def test_abf_fusion_with_their_weights_equals_mdistiller(ref: dict) -> None:
    d = _with_reference_weights(ref)
    assert d.spots == [1, 2, 3, 4]
    sizes = [tuple(as_map(t).shape[2:]) for t in ref["feats_t"]]
    fused = d.fuse(ref["feats_s"], sizes)
    for ours, theirs in zip(fused, ref["fused"], strict=True):
        torch.testing.assert_close(ours, theirs, **EXACT)


def test_per_spot_losses_equal_mdistiller_stages_and_sum(ref: dict) -> None:
    d = _with_reference_weights(ref)
    losses = d(*_features(ref))
    torch.testing.assert_close(losses, ref["hcl_per_stage"], **EXACT)
    torch.testing.assert_close(losses.sum(), ref["hcl_total"], **EXACT)  # beta2 = 1: the sum


def test_mask_all_ones_is_the_ungated_loss(ref: dict) -> None:
    d = _with_reference_weights(ref)
    fs, ft = _features(ref)
    ones = torch.ones(fs[0].shape[0], len(d.spots), dtype=torch.float64)
    torch.testing.assert_close(d(fs, ft, mask=ones), d(fs, ft), rtol=0, atol=0)


def test_gate_is_the_gated_mean_of_per_sample_hcl(ref: dict) -> None:
    d = _with_reference_weights(ref)
    fs, ft = _features(ref)
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]],
                        dtype=torch.float64)
    out = d(fs, ft, mask=mask)
    for k, (fused, t) in enumerate(zip(ref["fused"], ref["feats_t"], strict=True)):
        per_sample = hcl_per_sample(fused, as_map(t))
        torch.testing.assert_close(per_sample.mean(), ref["hcl_per_stage"][k], **EXACT)
        expected = (per_sample * mask[:, k]).sum() / mask.shape[0]
        torch.testing.assert_close(out[k], expected, **EXACT)


def test_zero_column_is_exact_zero_without_nan_or_gradient(ref: dict) -> None:
    d = _with_reference_weights(ref)
    fs, ft = _features(ref)
    fs = [f.clone().requires_grad_(True) for f in fs]
    b = fs[0].shape[0]
    for k in range(len(d.spots)):
        mask = torch.ones(b, len(d.spots), dtype=torch.float64)
        mask[:, k] = 0
        out = d(fs, ft, mask=mask)
        assert torch.isfinite(out).all() and out[k].item() == 0.0
        inputs = [*fs, *d.student_parameters()]
        grads = torch.autograd.grad(out[k], inputs, allow_unused=True)
        assert all(g is None or (torch.isfinite(g).all() and not g.any()) for g in grads)
        assert all(o != 0 for j, o in enumerate(out.tolist()) if j != k)
    zeros = d(fs, ft, mask=torch.zeros(b, len(d.spots), dtype=torch.float64))
    assert torch.equal(zeros, torch.zeros(len(d.spots), dtype=torch.float64))


def test_warm_up_scales_the_losses_as_mdistiller(ref: dict) -> None:
    """mdistiller: min(epoch / 20, 1) with epochs from 1; ours counts from 0."""
    d = _with_reference_weights(ref)
    fs, ft = _features(ref)
    full = d(fs, ft)
    for epoch, factor in ((0, 1 / 20), (9, 10 / 20), (19, 1.0), (200, 1.0)):
        d.start_epoch(epoch)
        torch.testing.assert_close(d(fs, ft), full * factor, **EXACT)
    no_warmup = create_distiller("reviewkd", fs, ft, warmup_epochs=0)
    no_warmup.start_epoch(0)
    assert no_warmup.ramp.item() == 1.0
    assert "ramp" not in d.state_dict()  # derived from the epoch, set again after a resume
