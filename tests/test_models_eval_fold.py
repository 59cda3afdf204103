"""BN-folded eval views: the same function as the network, always current, never a weight grad."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sakd.build import build_distill_step
from sakd.config import DistillConfig
from sakd.distillers import create_distiller
from sakd.models import EvalFoldedNet, create_model


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so a wrong fold cannot hide."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def _seeded_view(name: str = "resnet8") -> tuple[nn.Module, EvalFoldedNet]:
    """A seeded network with non-trivial BN statistics, and its refreshed folded view."""
    torch.manual_seed(0)
    net = _randomise_bn(create_model(name, 10))
    view = EvalFoldedNet(net)
    view.refresh()
    return net, view


def _assert_same_function(net, view, x, rtol=1e-5):
    net.eval()
    with torch.no_grad():
        feats, logits = net(x, return_features=True)
        feats_v, logits_v = view(x, return_features=True)
    for a, b in zip([*feats, logits], [*feats_v, logits_v], strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=rtol * float(a.abs().max()))


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_2", "vgg8", "mobilenetv2", "shufflenetv1"])
def test_view_computes_the_networks_eval_function(name):
    net, view = _seeded_view(name)
    assert view.num_folds > 0
    _assert_same_function(net, view, torch.randn(2, 3, 32, 32))
    assert list(net.state_dict()) == list(create_model(name, 10).state_dict())  # net untouched


def test_view_follows_weight_updates_bn_statistics_and_loaded_checkpoints():
    net, view = _seeded_view()
    x = torch.randn(4, 3, 16, 16)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net.train()
    nn.functional.cross_entropy(net(x), torch.arange(4)).backward()  # also updates BN stats
    opt.step()
    view.refresh()
    _assert_same_function(net, view, x)
    other = _randomise_bn(create_model("resnet8", 10))
    net.load_state_dict(other.state_dict())
    view.refresh()
    _assert_same_function(net, view, x)


def test_view_follows_bn_statistics_changed_by_train_forwards_alone():
    """Train-mode forwards update running_mean/var in place without bumping their versions."""
    net, view = _seeded_view()
    x = torch.randn(4, 3, 16, 16)
    _assert_same_function(net, view, x)  # the view has run once with the old statistics
    net.train()
    with torch.no_grad():
        for _ in range(3):  # no optimiser step: only the BN statistics change
            net(torch.randn(8, 3, 16, 16) * 2 + 1)
    view.refresh()
    _assert_same_function(net, view, x)


def test_no_gradient_reaches_the_networks_weights_through_a_view():
    net, view = _seeded_view()
    net.eval()
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    grad_view = torch.autograd.grad(view(x).sum(), x)[0]
    assert all(p.grad is None for p in net.parameters())
    ref = copy.deepcopy(net).requires_grad_(False)
    grad_ref = torch.autograd.grad(ref(x).sum(), x)[0]
    torch.testing.assert_close(grad_view, grad_ref, rtol=1e-4, atol=1e-6)


def _step(fold: bool):
    torch.manual_seed(0)
    teacher = _randomise_bn(create_model("resnet14", 5))
    student = create_model("resnet8", 5)
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 5
    with torch.no_grad():
        feats_s = student.eval()(x[:2], return_features=True)[0]
        feats_t = teacher.eval()(x[:2], return_features=True)[0]
    student.train()
    step = build_distill_step(
        student, teacher, create_distiller("at", feats_s, feats_t), "adaptive", x[:2],
        DistillConfig(), tau=2.0, generator=torch.Generator().manual_seed(4), fold_batchnorm=fold,
    )
    return step, x, y


def test_folded_step_trains_like_the_unfolded_one():
    plain, x, y = _step(fold=False)
    folded, _, _ = _step(fold=True)
    assert set(folded.modules_to_checkpoint()) == set(plain.modules_to_checkpoint())
    for _ in range(3):  # later steps use the refreshed folds of the updated student
        a, b = plain(x, y), folded(x, y)
        for key in ("loss", "routing", "p_distill"):
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    for p, q in zip(plain.router_parameters(), folded.router_parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    for p, q in zip(plain.student.parameters(), folded.student.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
