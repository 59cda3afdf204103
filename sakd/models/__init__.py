"""The model zoo: block-structured networks (`SpotNet`) built by name.

    model = create_model("resnet20", num_classes=100)
    features, logits = model(x, return_features=True)

Importing this package registers every family (one module each).
"""

from sakd.models import (  # noqa: F401  (imported for their registrations)
    mobilenetv2,
    resnet_cifar,
    resnet_imagenet,
    shufflenetv1,
    vgg,
    vit,
    wrn,
)
from sakd.models.base import SpotNet, spot_name
from sakd.models.eval_fold import EvalFoldedNet
from sakd.models.zoo import MODELS, create_model, feature_shapes, list_models

__all__ = [
    "MODELS",
    "EvalFoldedNet",
    "SpotNet",
    "create_model",
    "feature_shapes",
    "list_models",
    "spot_name",
]
