"""The distiller zoo: registry and factory, spots and betas (Tables I-II), golden values of every
distiller's gated per-spot losses, gating edge cases, gradient flow, student_parameters, FT's
paraphraser pretraining and CRD's sampling and memory bank."""

from __future__ import annotations

import math

import pytest
import test_distillers_reference as ref
import torch
from torch import nn

from sakd.distillers import (
    create_distiller,
    default_beta,
    distiller_options,
    list_distillers,
    resolve_spots,
)
from sakd.registry import UnknownNameError

B = 4
NAMES = ["at", "cc", "crd", "dkd", "fitnet", "ft", "kd", "nst", "pkt", "reviewkd", "rkd", "sp",
         "vid"]
TABLE_II = {"fitnet": 1, "at": 1000, "sp": 3000, "cc": 0.02, "vid": 1, "rkd": 1, "pkt": 30000,
            "ft": 200, "nst": 50, "crd": 0.8, "kd": 0, "dkd": 0,
            "reviewkd": 1}  # not in Table II: mdistiller's REVIEWKD_WEIGHT
FEATURE_METHODS = [n for n in NAMES if n not in ("kd", "dkd")]  # dkd: the logit spot only
LABELS = torch.arange(24) % 3  # a tiny "training set": 24 samples, 3 classes
INDEX = torch.tensor([0, 5, 10, 17])


pytestmark = pytest.mark.usefixtures("one_thread")


def _randn(*shape: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def student_feats(seed: int = 0, dtype=torch.float64) -> list[torch.Tensor]:
    """[stem, block1, block2, block3, embedding], CRD-benchmark layout."""
    shapes = [(B, 4, 8, 8), (B, 4, 8, 8), (B, 6, 4, 4), (B, 8, 2, 2), (B, 8)]
    return [_randn(*s, seed=seed + i, dtype=dtype) for i, s in enumerate(shapes)]


def teacher_feats(seed: int = 100, dtype=torch.float64) -> list[torch.Tensor]:
    """A wider teacher whose block1 map is twice the student's size."""
    shapes = [(B, 6, 16, 16), (B, 6, 16, 16), (B, 12, 4, 4), (B, 16, 2, 2), (B, 16)]
    return [_randn(*s, seed=seed + i, dtype=dtype) for i, s in enumerate(shapes)]


def build(name: str, feats_s, feats_t, **kw):
    if name == "crd":
        kw = {"labels": LABELS, **kw}
    return create_distiller(name, feats_s, feats_t, **kw).double()


def mask_for(distiller, pattern=(1.0, 0.0, 1.0, 1.0)) -> torch.Tensor:
    return torch.tensor(pattern, dtype=torch.float64)[:, None].repeat(1, len(distiller.spots))


# ---------------------------------------------------------------------- registry and factory
def test_names_betas_and_unknown_name() -> None:
    assert list_distillers() == NAMES
    assert {n: default_beta(n) for n in NAMES} == pytest.approx(TABLE_II)
    with pytest.raises(UnknownNameError, match="valid: at, cc, crd"):
        create_distiller("hint", student_feats(), teacher_feats())
    with pytest.raises(UnknownNameError, match="fitnet"):
        default_beta("fitnets")


@pytest.mark.parametrize("name, spots5, spots6", [
    ("fitnet", [2], [2]), ("at", [1, 2, 3], [1, 2, 3, 4]), ("nst", [1, 2, 3], [1, 2, 3, 4]),
    ("vid", [1, 2, 3], [1, 2, 3, 4]), ("sp", [3], [4]), ("ft", [3], [4]), ("cc", [4], [5]),
    ("rkd", [4], [5]), ("pkt", [4], [5]), ("crd", [4], [5]), ("kd", [], []), ("dkd", [], []),
    ("reviewkd", [1, 2, 3, 4], [1, 2, 3, 4, 5]),
])
def test_spots_follow_table_one(name: str, spots5: list[int], spots6: list[int]) -> None:
    assert build(name, student_feats(), teacher_feats()).spots == spots5
    extra = (B, 8, 2, 2)  # a sixth feature: one more block before the embedding
    s6 = [*student_feats()[:-1], _randn(*extra, seed=50), student_feats()[-1]]
    t6 = [*teacher_feats()[:-1], _randn(*extra, seed=51), teacher_feats()[-1]]
    assert build(name, s6, t6).spots == spots6


def test_options_that_do_not_apply_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"'at' does not take option\(s\) nce_k; it accepts: p"):
        create_distiller("at", student_feats(), teacher_feats(), nce_k=10)
    with pytest.raises(ValueError, match="accepts: none"):
        create_distiller("sp", student_feats(), teacher_feats(), feat_dim=64)
    assert "labels" in distiller_options("crd") and distiller_options("kd") == []
    assert build("rkd", student_feats(), teacher_feats(), w_dist=1.0).w_dist == 1.0


def test_bad_pairs_fail_early() -> None:
    with pytest.raises(ValueError, match="same"):
        create_distiller("at", student_feats()[:4], teacher_feats())
    with pytest.raises(ValueError, match=r"feature maps \[B, C, H, W\]"):
        create_distiller("at", [f.flatten(1) for f in student_feats()], teacher_feats())
    with pytest.raises(ValueError, match="spot rule 'hint'"):
        create_distiller("fitnet", student_feats()[:2], teacher_feats()[:2])


def test_wrong_mask_shape_is_rejected() -> None:
    d = build("at", student_feats(), teacher_feats())
    with pytest.raises(ValueError, match=r"\[4, 3\]"):
        d(student_feats(), teacher_feats(), mask=torch.ones(B, 1))


# ---------------------------------------------------------------------- golden values
def _per_spot_elementwise(sample_ref, d, fs, ft, mask):
    out = []
    for k, i in enumerate(d.spots):
        per = [sample_ref(a, b) for a, b in zip(ref.as_lists(fs[i]), ref.as_lists(ft[i]),
                                                strict=True)]
        out.append(ref.gated(per, mask[:, k].tolist()))
    return out


def _pool_to_student(fs, ft):
    """Reference pooling for these fixtures: the teacher's block1 is 2x the student's."""
    return [
        torch.tensor([ref.block_pool(x, 2) for x in ref.as_lists(f)], dtype=torch.float64)
        if f.dim() == 4 and f.shape[2] == 2 * s.shape[2] else f
        for s, f in zip(fs, ft, strict=True)
    ]


@pytest.mark.parametrize("name, sample_ref", [("at", ref.at_sample), ("nst", ref.nst_sample)])
def test_at_and_nst_golden(name: str, sample_ref) -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build(name, fs, ft)
    mask = mask_for(d)
    mask[0, 1] = 0.0  # spots are gated independently
    expected = _per_spot_elementwise(sample_ref, d, fs, _pool_to_student(fs, ft), mask)
    assert d(fs, ft, mask=mask).tolist() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name, loop_ref", [("sp", ref.sp), ("rkd", ref.rkd), ("pkt", ref.pkt)])
def test_relational_distillers_golden(name: str, loop_ref) -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build(name, fs, ft)
    mask = mask_for(d)
    (i,) = d.spots
    expected = ref.subset_times_fraction(loop_ref, ref.as_lists(fs[i]), ref.as_lists(ft[i]),
                                         mask[:, 0].tolist())
    assert d(fs, ft, mask=mask).tolist() == pytest.approx([expected], rel=1e-9)


def _homogeneous_pair(positive: bool = False):
    fs, ft = student_feats(seed=0), student_feats(seed=200)
    if positive:
        fs, ft = [f.abs() for f in fs], [f.abs() for f in ft]
    return fs, ft


def _identity_(conv: nn.Module) -> None:
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.weight.shape[0]).view_as(conv.weight))
        if conv.bias is not None:
            conv.bias.zero_()


def test_fitnet_golden_with_identity_regressor() -> None:
    fs, ft = _homogeneous_pair()
    d = build("fitnet", fs, ft).eval()  # BN with its initial running stats (0, 1)
    _identity_(d.regressor.conv)
    scale = 1 / math.sqrt(1 + d.regressor.bn.eps)
    regressed = [[max(v * scale, 0.0) for v in ref.flatten(x)] for x in ref.as_lists(fs[2])]
    per = [ref.fitnet_sample(a, ref.flatten(b))
           for a, b in zip(regressed, ref.as_lists(ft[2]), strict=True)]
    mask = mask_for(d)
    assert d(fs, ft, mask=mask).tolist() == pytest.approx([ref.gated(per, mask[:, 0].tolist())])


def test_vid_golden_with_identity_regressor() -> None:
    fs, ft = _homogeneous_pair(positive=True)  # ReLU(x) = x: the regressor is the identity
    d = build("vid", fs, ft)
    for r in d.regressors:
        for conv in r.regressor:
            if isinstance(conv, nn.Conv2d):
                _identity_(conv)
    var = 5.0  # softplus(log_scale) + eps starts at init_pred_var
    mask = mask_for(d)
    expected = []
    for k, i in enumerate(d.spots):
        per = [ref.mean([0.5 * ((a - b) ** 2 / var + math.log(var))
                         for a, b in zip(ref.flatten(x), ref.flatten(y), strict=True)])
               for x, y in zip(ref.as_lists(fs[i]), ref.as_lists(ft[i]), strict=True)]
        expected.append(ref.gated(per, mask[:, k].tolist()))
    assert d(fs, ft, mask=mask).tolist() == pytest.approx(expected, rel=1e-6)


def test_cc_golden_with_identity_embeddings() -> None:
    fs, ft = _homogeneous_pair()
    d = build("cc", fs, ft, feat_dim=8)
    _identity_(d.embed_s.linear)
    _identity_(d.embed_t.linear)
    mask = mask_for(d, (1.0, 1.0, 0.0, 1.0))
    expected = ref.subset_times_fraction(ref.cc, ref.as_lists(fs[4]), ref.as_lists(ft[4]),
                                         mask[:, 0].tolist())
    assert d(fs, ft, mask=mask).tolist() == pytest.approx([expected], rel=1e-9)


def test_ft_golden_on_its_factors() -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build("ft", fs, ft).eval()
    mask = mask_for(d)
    with torch.no_grad():
        factor_s = d.translator(fs[3])
        factor_t = d.paraphraser.encoder(ft[3])
    per = [ref.ft_sample(a, b) for a, b in zip(ref.as_lists(factor_s), ref.as_lists(factor_t),
                                               strict=True)]
    assert factor_s.shape[1] == factor_t.shape[1] == 8  # rate 0.5 of the teacher's 16 channels
    assert d(fs, ft, mask=mask).tolist() == pytest.approx([ref.gated(per, mask[:, 0].tolist())])


def _crd_reference(memory_s, memory_t, v_s, v_t, contrast, mask, n_data, T=0.07):
    """NCE of CRD by loops: both anchor directions, Z from the selected anchors."""
    eps = 1e-7
    k = len(contrast[0]) - 1
    noise = k / n_data

    def raw(memory, v):
        return [[math.exp(ref.dot(memory[j], v[i]) / T) for j in contrast[i]]
                for i in range(len(v))]

    total = 0.0
    for out in (raw(memory_t, v_s), raw(memory_s, v_t)):
        chosen = [row for row, m in zip(out, mask, strict=True) if m]
        z = ref.mean([x for row in chosen for x in row]) * n_data
        for row, m in zip(out, mask, strict=True):
            if m:
                p = [x / z for x in row]
                total -= math.log(p[0] / (p[0] + noise + eps))
                total -= sum(math.log(noise / (x + noise + eps)) for x in p[1:])
    return total / len(mask)


def test_crd_golden_and_memory_update() -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build("crd", fs, ft, feat_dim=8, nce_k=5)
    _identity_(d.embed_s.linear)
    d.embed_t.linear.weight.data.zero_()
    d.embed_t.linear.weight.data[:, :8] = torch.eye(8)  # v_t: the first 8 dims, normalised
    d.embed_t.linear.bias.data.zero_()
    contrast = torch.stack([INDEX, *[torch.tensor([3, 1, 2, 4])] * 5], dim=1)
    mask = mask_for(d)
    v_s = [ref.normalize(x) for x in ref.as_lists(fs[4])]
    v_t = [ref.normalize(x[:8]) for x in ref.as_lists(ft[4])]
    mem_s, mem_t = ref.as_lists(d.memory.memory_s), ref.as_lists(d.memory.memory_t)
    expected = _crd_reference(mem_s, mem_t, v_s, v_t, contrast.tolist(), mask[:, 0].tolist(),
                              len(LABELS))

    loss = d(fs, ft, mask=mask, index=INDEX, contrast_index=contrast)
    assert loss.tolist() == pytest.approx([expected], rel=1e-9)

    for bank, old, v in ((d.memory.memory_s, mem_s, v_s), (d.memory.memory_t, mem_t, v_t)):
        for row in range(len(LABELS)):
            got = bank[row].tolist()
            if row in INDEX.tolist() and mask[INDEX.tolist().index(row), 0] == 1:
                i = INDEX.tolist().index(row)
                want = ref.normalize([0.5 * a + 0.5 * b for a, b in zip(old[row], v[i],
                                                                         strict=True)])
            else:
                want = old[row]  # unselected or not in the batch: untouched
            assert got == pytest.approx(want, rel=1e-12)


def test_kd_has_no_feature_spot() -> None:
    d = build("kd", student_feats(), teacher_feats())
    out = d(student_feats(), teacher_feats(), mask=torch.ones(B, 0))
    assert out.shape == (0,) and list(d.student_parameters()) == []


# ---------------------------------------------------------------------- gating edge cases
def _forward(d, fs, ft, mask):
    return d(fs, ft, mask=mask, index=INDEX if d.needs_index else None)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_empty_mask_is_exact_zero_without_gradient(name: str) -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build(name, fs, ft)
    fs = [f.clone().requires_grad_(True) for f in fs]
    out = _forward(d, fs, ft, torch.zeros(B, len(d.spots), dtype=torch.float64))
    assert torch.equal(out, torch.zeros(len(d.spots), dtype=torch.float64))
    out.sum().backward()
    grads = [f.grad for f in fs if f.grad is not None]
    grads += [p.grad for p in d.student_parameters() if p.grad is not None]
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_full_mask_equals_ungated_loss(name: str) -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build(name, fs, ft).eval()  # eval: CRD's memory stays put between the two calls
    ones = torch.ones(B, len(d.spots), dtype=torch.float64)
    torch.manual_seed(0)
    gated = _forward(d, fs, ft, ones)
    torch.manual_seed(0)
    ungated = _forward(d, fs, ft, None)
    assert gated.shape == (len(d.spots),)
    torch.testing.assert_close(gated, ungated, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_gradients_reach_student_and_distiller_never_teacher(name: str) -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build(name, fs, ft)
    fs = [f.clone().requires_grad_(True) for f in fs]
    ft = [f.clone().requires_grad_(True) for f in ft]
    _forward(d, fs, ft, mask_for(d)).sum().backward()
    assert all(ft_i.grad is None for ft_i in ft)
    for i in d.spots:
        assert fs[i].grad is not None and fs[i].grad.abs().sum() > 0
    for p in d.student_parameters():
        assert p.grad is not None


# ---------------------------------------------------------------------- student_parameters
def _ids(params) -> set[int]:
    return {id(p) for p in params}


def test_student_parameters_are_the_learned_parts() -> None:
    fs, ft = student_feats(), teacher_feats()
    for name in ("at", "nst", "sp", "rkd", "pkt", "kd", "dkd"):
        assert list(build(name, fs, ft).student_parameters()) == []
    fitnet = build("fitnet", fs, ft)
    assert _ids(fitnet.student_parameters()) == _ids(fitnet.regressor.parameters())
    vid = build("vid", fs, ft)
    assert _ids(vid.student_parameters()) == _ids(vid.regressors.parameters())
    assert len(vid.regressors) == 3
    for name in ("cc", "crd"):  # both embeddings train with the student
        d = build(name, fs, ft)
        assert _ids(d.student_parameters()) == _ids(
            [*d.embed_s.parameters(), *d.embed_t.parameters()])
    cc_quirk = build("cc", fs, ft, train_teacher_embed=False)
    assert _ids(cc_quirk.student_parameters()) == _ids(cc_quirk.embed_s.parameters())
    ft_d = build("ft", fs, ft)
    assert _ids(ft_d.student_parameters()) == _ids(ft_d.translator.parameters())
    review = build("reviewkd", fs, ft)  # every ABF trains with the student
    assert _ids(review.student_parameters()) == _ids(review.abfs.parameters())
    assert [abf.attention is None for abf in review.abfs] == [False, False, False, True]
    crd = build("crd", fs, ft)
    assert not any(p.requires_grad for p in crd.memory.buffers())


# ---------------------------------------------------------------------- FT pretraining
class TinyTeacher(nn.Module):
    """A fixed two-block net with the SpotNet calling convention."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 8, 3, stride=2, padding=1)

    def forward(self, x, return_features=False):
        f0 = torch.relu(self.a(x))
        f1 = torch.relu(self.b(f0))
        f2 = f1.mean((2, 3))
        return [f0, f1, f2], f2


def test_ft_prepare_pretrains_then_freezes_the_paraphraser() -> None:
    torch.manual_seed(0)
    teacher = TinyTeacher().eval()
    batches = [torch.randn(8, 3, 8, 8) for _ in range(2)]
    with torch.no_grad():
        feats_t, _ = teacher(batches[0])
    feats_s = [torch.randn(8, 4, 8, 8), torch.randn(8, 4, 4, 4), torch.randn(8, 4)]
    d = create_distiller("ft", feats_s, feats_t, pretrain_epochs=15, pretrain_lr=0.05)
    assert d.spots == [1]

    def reconstruction() -> float:
        with torch.no_grad():
            f = teacher(batches[0])[0][1]
            return torch.mean((d.paraphraser(f) - f) ** 2).item()

    before = reconstruction()
    translator = [p.clone() for p in d.translator.parameters()]
    d.prepare(teacher, [(x, torch.zeros(8)) for x in batches])  # (inputs, targets) batches
    assert reconstruction() < 0.5 * before
    assert not any(p.requires_grad for p in d.paraphraser.parameters())
    assert _ids(d.student_parameters()) == _ids(d.translator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(translator, d.translator.parameters(),
                                                 strict=True))
    assert not teacher.training
    with pytest.raises(TypeError, match="re-iterable"):
        d.prepare(teacher, iter(batches))

    # a resumed run (state dict of a prepared FT) does not pretrain again
    resumed = create_distiller("ft", feats_s, feats_t, pretrain_epochs=15, pretrain_lr=0.05)
    resumed.load_state_dict(d.state_dict())
    pretrained = [p.clone() for p in resumed.paraphraser.parameters()]
    resumed.prepare(teacher, batches)
    assert all(torch.equal(a, b) for a, b in zip(pretrained, resumed.paraphraser.parameters(),
                                                 strict=True))


# ---------------------------------------------------------------------- CRD specifics
def test_crd_negatives_come_from_other_classes_and_cover_them() -> None:
    d = build("crd", student_feats(), teacher_feats(), nce_k=16)
    assert d.sampler.k == 16  # 24 samples, 8 per class: the pool of negatives is 16
    torch.manual_seed(0)
    seen: set[int] = set()
    for _ in range(20):
        idx = d.sampler(INDEX)
        assert torch.equal(idx[:, 0], INDEX) and idx.shape == (B, 17)
        negatives = idx[:, 1:]
        assert (LABELS[negatives] != LABELS[INDEX][:, None]).all()
        seen |= set(negatives[0].tolist())
    assert seen == {i for i in range(24) if LABELS[i] != LABELS[INDEX[0]]}


def test_crd_k_is_capped_at_the_smallest_negative_pool(caplog) -> None:
    assert build("crd", student_feats(), teacher_feats()).sampler.k == 16  # 16384 capped
    assert "nce_k=16384 capped to 16" in caplog.text
    assert build("crd", student_feats(), teacher_feats(), nce_k=9).sampler.k == 9
    with pytest.raises(ValueError, match="nce_k must be >= 1"):
        build("crd", student_feats(), teacher_feats(), nce_k=0)
    with pytest.raises(ValueError, match="labels"):
        create_distiller("crd", student_feats(), teacher_feats())
    with pytest.raises(ValueError, match="num_samples=10"):
        build("crd", student_feats(), teacher_feats(), num_samples=10)
    with pytest.raises(ValueError, match="two classes"):
        build("crd", student_feats(), teacher_feats(), labels=torch.zeros(24))
    d = build("crd", student_feats(), teacher_feats())
    with pytest.raises(ValueError, match="index"):
        d(student_feats(), teacher_feats())


def test_crd_z_is_set_once_from_the_first_non_empty_selection() -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build("crd", fs, ft)
    d(fs, ft, mask=torch.zeros(B, 1, dtype=torch.float64), index=INDEX)
    assert d.memory.z_s.item() < 0 and d.memory.z_t.item() < 0  # still unset
    d(fs, ft, mask=mask_for(d), index=INDEX)
    z = (d.memory.z_s.item(), d.memory.z_t.item())
    assert min(z) > 0
    d(student_feats(seed=7), ft, index=INDEX)
    assert (d.memory.z_s.item(), d.memory.z_t.item()) == z


def test_crd_memory_is_not_updated_in_eval_mode() -> None:
    fs, ft = student_feats(), teacher_feats()
    d = build("crd", fs, ft).eval()
    before = d.memory.memory_s.clone()
    d(fs, ft, index=INDEX)
    assert torch.equal(before, d.memory.memory_s)


def test_resolve_spots_rules() -> None:
    assert resolve_spots("blocks", 6) == [1, 2, 3, 4]
    assert resolve_spots("blocks_and_embedding", 5) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown spot rule"):
        resolve_spots("everywhere", 5)


def test_forward_rejects_per_batch_inputs_the_method_does_not_take() -> None:
    fs, ft = student_feats(), teacher_feats()
    with pytest.raises(ValueError, match=r"input.*contrast_index; it accepts: none"):
        build("at", fs, ft)(fs, ft, contrast_index=torch.zeros(B, 3, dtype=torch.long))
