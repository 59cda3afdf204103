"""The distillation step with the real model zoo and every distiller (small inputs, CPU)."""

from __future__ import annotations

import copy

import pytest
import torch

from sakd.build import build_distill_step
from sakd.config import DistillConfig
from sakd.distillers import create_distiller, list_distillers
from sakd.models import create_model

CLASSES, B, N_DATA = 10, 8, 32


def _options(name: str) -> dict:
    if name == "crd":  # a tiny memory bank: 32 training samples, 8 negatives
        return {"labels": torch.arange(N_DATA) % CLASSES, "nce_k": 8}
    return {}


def _build(teacher_name: str, student_name: str, distiller_name: str, strategy: str, size=8):
    torch.manual_seed(0)
    teacher, student = create_model(teacher_name, CLASSES), create_model(student_name, CLASSES)
    x = torch.randn(B, 3, size, size)
    y, index = torch.arange(B) % CLASSES, torch.arange(B) * 3
    with torch.no_grad():
        feats_s, _ = student.eval()(x[:2], return_features=True)
        feats_t, _ = teacher.eval()(x[:2], return_features=True)
    distiller = create_distiller(distiller_name, feats_s, feats_t, **_options(distiller_name))
    step = build_distill_step(
        student, teacher, distiller, strategy, x[:2], DistillConfig(lr=0.01), generator=None
    )
    return step, x, y, index


@pytest.mark.parametrize("name", list_distillers())
def test_every_distiller_runs_sakd_and_leaves_the_teacher_alone(name):
    step, x, y, index = _build("resnet14", "resnet8", name, "adaptive")
    teacher_before = copy.deepcopy(step.teacher.state_dict())
    policy_before = step.policy.linear.weight.clone()
    stats = step(x, y, index)
    num_spots = len(step.distiller.spots)
    assert len(step.spot_names) == num_spots + 1 and step.spot_names[-1] == "logits"
    assert all(torch.isfinite(v).all() for v in stats.values())
    assert stats["p_distill"].shape == (num_spots + 1,)
    assert all(torch.equal(v, teacher_before[k]) for k, v in step.teacher.state_dict().items())
    assert not torch.equal(step.policy.linear.weight, policy_before)


def test_heterogeneous_pair_routes_through_strided_adapters():
    step, x, y, index = _build("vgg8", "mobilenetv2", "at", "adaptive", size=16)
    kinds = {type(a[0]).__name__ for a in [*step.routing.to_teacher, *step.routing.to_student]}
    assert kinds == {"Conv2d", "ConvTranspose2d"}
    stats = step(x, y, index)
    assert torch.isfinite(stats["loss"]) and torch.isfinite(stats["routing"])
    for adapters in (step.routing.to_teacher, step.routing.to_student):
        assert all(p.grad is not None for p in adapters.parameters())


@pytest.mark.parametrize("name", ["at", "rkd", "crd"])
def test_always_and_never_on_zoo_models(name):
    step, x, y, index = _build("resnet14", "resnet8", name, "always")
    stats = step(x, y, index)
    assert torch.equal(stats["p_distill"], torch.ones(len(step.spot_names)))
    assert stats["distill"] > 0
    step, x, y, index = _build("resnet14", "resnet8", name, "never")
    stats = step(x, y, index)
    assert torch.equal(stats["loss"], stats["ce"])
