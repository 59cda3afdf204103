"""Runtime knobs of the step (channels_last, autocast, compile) change speed, not results."""

from __future__ import annotations

import copy

import torch

from sakd.build import build_distill_step
from sakd.config import DistillConfig
from sakd.distillers import create_distiller
from sakd.models import create_model
from sakd.train.runtime import autocast_enabled, place_model, to_memory_format

CLASSES = 5


def _step(channels_last: bool = False, autocast: bool = False, distiller: str = "at"):
    torch.manual_seed(0)
    teacher = place_model(create_model("resnet14", CLASSES), "cpu", channels_last=channels_last)
    student = place_model(create_model("resnet8", CLASSES), "cpu", channels_last=channels_last)
    x = to_memory_format(torch.randn(8, 3, 8, 8), channels_last)
    y = torch.arange(8) % CLASSES
    with torch.no_grad():
        feats_s = student.eval()(x[:2], return_features=True)[0]
        feats_t = teacher.eval()(x[:2], return_features=True)[0]
    student.train()
    step = build_distill_step(
        student, teacher, create_distiller(distiller, feats_s, feats_t), "adaptive", x[:2],
        DistillConfig(weight_decay=0.0, router_weight_decay=0.0), tau=2.0,
        generator=torch.Generator().manual_seed(3), autocast=autocast,
        channels_last=channels_last,
    )
    return step, x, y


def _grads(step) -> list[torch.Tensor]:
    params = [*step.student.parameters(), *step.router_parameters()]
    return [p.grad.contiguous() for p in params if p.grad is not None]


def test_channels_last_step_gives_the_same_losses_and_gradients():
    plain, x, y = _step()
    fast, x_cl, _ = _step(channels_last=True)
    assert x_cl.is_contiguous(memory_format=torch.channels_last)
    conv = fast.routing.to_teacher[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    for _ in range(2):  # the second step also compares the first update
        a, b = plain(x, y), fast(x_cl, y)
        for key in ("loss", "ce", "kd", "distill", "routing", "p_distill"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
        grads_a, grads_b = _grads(plain), _grads(fast)
        assert len(grads_a) == len(grads_b) > 0
        for ga, gb in zip(grads_a, grads_b, strict=True):
            scale = float(ga.abs().max())  # float32 rounding differs with the layout
            torch.testing.assert_close(ga, gb, rtol=1e-3, atol=1e-3 * scale)


def test_autocast_keeps_losses_in_float32_and_close_to_full_precision():
    plain, x, y = _step()
    mixed, _, _ = _step(autocast=True)  # bf16 autocast also runs on the CPU, for this test
    a, b = plain(x, y), mixed(x, y)
    for key in ("loss", "routing"):
        assert b[key].dtype == torch.float32
        torch.testing.assert_close(a[key], b[key], rtol=0.05, atol=0.05)
    assert torch.equal(a["p_distill"], b["p_distill"])  # decisions come from float32 logits


def test_autocast_is_for_cuda_only():
    assert autocast_enabled(True, "cuda") and autocast_enabled(True, torch.device("cuda:1"))
    assert not autocast_enabled(True, "cpu") and not autocast_enabled(False, "cuda")


def test_place_model_keeps_the_module_its_parameters_and_checkpoint_keys():
    model = create_model("resnet8", CLASSES)
    keys, params = list(model.state_dict()), [id(p) for p in model.parameters()]
    placed = place_model(model, "cpu", channels_last=True, compile=True)
    assert placed is model and [id(p) for p in placed.parameters()] == params
    assert list(placed.state_dict()) == keys
    assert placed.stages[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    clone = copy.deepcopy(create_model("resnet8", CLASSES))
    clone.load_state_dict(placed.state_dict())  # a compiled model's checkpoint loads anywhere
