"""Every teacher->student pair of Tables III-VI builds every distiller from a probe forward and
takes one gated forward + backward + SGD step on the CPU (batch 4, small inputs)."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch

from sakd.distillers import create_distiller, default_beta, list_distillers
from sakd.models import create_model

PAIRS = [
    ("resnet56", "resnet20"), ("resnet110", "resnet32"), ("resnet110", "resnet20"),
    ("resnet32x4", "resnet8x4"), ("vgg13", "vgg8"), ("wrn_40_2", "wrn_16_2"),
    ("vgg13", "mobilenetv2"), ("resnet50", "mobilenetv2"), ("resnet50", "vgg8"),
    ("resnet32x4", "resnet32"), ("wrn_40_2", "shufflenetv1"), ("resnet34", "resnet18"),
]
BATCH = 4
MASK = torch.tensor([1.0, 1.0, 0.0, 1.0])  # sample 2 is never distilled
INDEX = torch.tensor([3, 8, 13, 21])
LABELS = torch.arange(24) % 4  # a tiny "training set" for CRD's memory bank
# Inputs small enough to be fast, large enough that no spot map collapses to 1x1 (where the
# normalised attention/factor maps of AT and FT are constant): 16x16 unless listed.
INPUT_SIZE = {"mobilenetv2": 32, "resnet18": 64, "resnet34": 64}
# Adapters with BatchNorm (FitNet's regressor, FT's translator, ReviewKD's ABFs) normalise over
# the whole batch, so an unselected sample still shapes the selected ones' loss through the
# batch statistics.
BATCH_COUPLED = {"fitnet", "ft", "reviewkd"}


pytestmark = pytest.mark.usefixtures("one_thread")


@functools.cache
def _model(name: str, role: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    if role == "teacher":
        model.eval().requires_grad_(False)
    return model


def _options(name: str) -> dict:
    return {"labels": LABELS, "nce_k": 8} if name == "crd" else {}


@pytest.mark.parametrize("teacher_name, student_name", PAIRS, ids=[f"{t}-{s}" for t, s in PAIRS])
def test_pair_builds_every_distiller_and_steps(teacher_name: str, student_name: str) -> None:
    teacher, student = _model(teacher_name, "teacher"), _model(student_name, "student")
    student.train().zero_grad(set_to_none=True)
    size = max(INPUT_SIZE.get(teacher_name, 16), INPUT_SIZE.get(student_name, 16))
    x = torch.randn(BATCH, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats_t, _ = teacher(x, return_features=True)
    feats_s, _ = student(x, return_features=True)
    probe = [f.detach() for f in feats_s]
    distillers = {n: create_distiller(n, probe, feats_t, **_options(n)) for n in list_distillers()}

    # The losses see leaf copies of the student features, so each spot's own gradient can be
    # checked (the student's BatchNorm would mix samples on the way further back).
    leaves = [f.detach().requires_grad_(True) for f in feats_s]
    total = leaves[-1].sum() * 0
    for name, d in distillers.items():
        mask = MASK[:, None].repeat(1, len(d.spots))
        losses = d(leaves, feats_t, mask=mask, index=INDEX)
        assert losses.shape == (len(d.spots),), name
        assert torch.isfinite(losses).all(), name
        if d.spots:
            grads = torch.autograd.grad(losses.sum(), [leaves[i] for i in d.spots],
                                        retain_graph=True)
            assert all(torch.isfinite(g).all() for g in grads), name
            assert any(g.abs().sum() > 0 for g in grads), name
            if name not in BATCH_COUPLED:
                assert all(g[2].abs().sum() == 0 for g in grads), f"{name}: unselected sample"
        total = total + default_beta(name) * losses.sum()

    params = itertools.chain(student.parameters(),
                             *(d.student_parameters() for d in distillers.values()))
    optimizer = torch.optim.SGD(params, lr=1e-3)
    total.backward()
    used = [(f, leaf.grad) for f, leaf in zip(feats_s, leaves, strict=True)
            if leaf.grad is not None]
    torch.autograd.backward(*zip(*used, strict=True))  # on into the student
    optimizer.step()
    stem = list(student.stages[0].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stem)
    assert all(p.grad is None for p in teacher.parameters())
