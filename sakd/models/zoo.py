"""The model registry: params.yaml names an architecture by a plain string.

Each family module registers its factories with `@register_model(name)`; a factory takes
`num_classes` (plus family options) and returns a `SpotNet`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from sakd.models.base import SpotNet
from sakd.registry import Registry

MODELS: Registry[SpotNet] = Registry("model")


def register_model(name: str) -> Callable[[Callable[..., SpotNet]], Callable[..., SpotNet]]:
    """Decorator: make a factory `f(num_classes, **kw) -> SpotNet` available as `name`."""
    return MODELS.register(name)


def create_model(name: str, num_classes: int, **kw) -> SpotNet:
    """Build a fresh, initialised network. Unknown names raise UnknownNameError (lists them)."""
    factory = MODELS.get(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    model = factory(num_classes=num_classes, **kw)
    model.arch = name  # the registry name, for decisions per pair (policy_init: auto)
    return model


def model_family(name: str) -> str:
    """The family of a registered architecture: the zoo module that defines it (resnet_cifar,
    wrn, vgg, ...). Same family = the authors' "homogeneous" pairs."""
    return MODELS.get(name).__module__.rsplit(".", 1)[-1]


def list_models() -> list[str]:
    """All registered architecture names, sorted."""
    return MODELS.names()


def feature_shapes(
    model: SpotNet, input_shape: Sequence[int] = (3, 32, 32)
) -> list[tuple[int, ...]]:
    """Shapes (without the batch dim) of every feature for inputs of `input_shape` (C, H, W).

    Probes with a batch of 2 in eval mode under no_grad (BN statistics stay untouched) on the
    model's own device and dtype, then restores the model's train/eval mode.
    """
    param = next(model.parameters())
    probe = torch.zeros(2, *input_shape, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            features, _ = model(probe, return_features=True)
    finally:
        model.train(was_training)
    return [tuple(f.shape[1:]) for f in features]
