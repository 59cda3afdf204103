"""The model zoo: CRD-benchmark architectures as SpotNets (features, segments, any input size)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sakd.models import SpotNet, create_model, feature_shapes, list_models, spot_name
from sakd.registry import UnknownNameError

ALL_MODELS = [
    "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet8x4", "resnet32x4", "wrn_16_2", "wrn_40_2", "vgg8", "vgg13", "mobilenetv2",
    "shufflenetv1", "resnet50", "resnet18", "resnet34", "resnet8_half", "vit_tiny", "vit_nano",
]  # fmt: skip
LARGE_MODELS = {"resnet50", "resnet18", "resnet34", "resnet110", "vgg13", "wrn_40_2", "resnet32x4",
                "vit_tiny"}
SMALL_MODELS = [name for name in ALL_MODELS if name not in LARGE_MODELS]
IMAGENET_MODELS = ["resnet18", "resnet34"]

# Parameter counts at num_classes=100, derived by hand from the CRD benchmark's layer lists
# (HobbitLong/RepDistiller models/: resnet.py, wrn.py, vgg.py with BN, mobilenetv2.py
# mobile_half, ShuffleNetv1.py, resnetv2.py ResNet50) and torchvision's resnet18/34, never
# from our own models. Per family (C = 100, bn(c) = 2c):
#  - CIFAR ResNet 6n+2, widths f: 27 f0 + bn(f0); per basic block 9 cin c + 9 c^2 + 2 bn(c)
#    (+ cin c + bn(c) projection when stride 2 or cin != c); fc f3 C + C.
#    resnet20 = 278,324 and resnet56 = 861,620 as in the design spec; resnet110 1.74M and
#    resnet32x4 7.43M as in the CRD paper's table.
#  - WRN 6n+4 (pre-act): 432 stem conv; per block bn(cin) + 9 cin c + bn(c) + 9 c^2
#    (+ cin c shortcut conv when cin != c); final bn(64k); fc.  (CRD table: 0.70M / 2.26M)
#  - VGG-BN: per conv 9 cin c + c (bias) + bn(c); fc 512 C + C.  (3.96M / 9.46M)
#  - mobile_half (t = 6, width 0.5, last 1280): 0.81M.  ShuffleV1 (g = 3): 0.95M.
#  - ResNet50 (3x3 stem, bottleneck [3,4,6,3], fc 2048): torchvision's 25,557,032 at 1000
#    classes - 7x7 stem (9,408) - fc (2,049,000) + 3x3 stem (1,728) + fc (204,900).
#  - resnet18/34: torchvision 11,689,512 / 21,797,672 at 1000 classes - 900 x 513.
EXPECTED_PARAMS = {
    "resnet8": 83_892,
    "resnet14": 181_108,
    "resnet20": 278_324,
    "resnet32": 472_756,
    "resnet44": 667_188,
    "resnet56": 861_620,
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "wrn_16_2": 703_284,
    "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028,
    "vgg13": 9_462_180,
    "mobilenetv2": 812_836,
    "shufflenetv1": 949_258,
    "resnet50": 23_705_252,
    "resnet18": 11_227_812,
    "resnet34": 21_335_972,
    # not in the CRD zoo: resnet8 at widths (8, 8, 16, 32), by the CIFAR ResNet formula above
    "resnet8_half": 22_924,
    # not in the CRD zoo: the vision transformers (dim d, depth L, patch 4, 64 tokens, mlp 4d),
    # per block 2 LN (4d) + qkv (3d^2 + 3d) + proj (d^2 + d) + MLP (8d^2 + 5d) = 12d^2 + 13d;
    # patch conv 48d + d, positions 64d, final LN 2d, fc d C + C. timm's VisionTransformer on
    # the same configuration has the same count (tests/test_models_vit.py).
    "vit_tiny": 5_379_748,
    "vit_nano": 691_780,
}

# Feature shapes (C, H, W) at 32x32 inputs: the CRD benchmark's `feat` lists.
_RESNET = [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8), (64,)]
_RESNET_X4 = [(32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8), (256,)]
_RESNET_HALF = [(8, 32, 32), (8, 32, 32), (16, 16, 16), (32, 8, 8), (32,)]
_WRN_2 = [(16, 32, 32), (32, 32, 32), (64, 16, 16), (128, 8, 8), (128,)]
_VGG = [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 4, 4), (512,)]
_TORCHVISION_32 = [(64, 8, 8), (64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1), (512,)]
SHAPES_AT_32 = {
    **{f"resnet{d}": _RESNET for d in (8, 14, 20, 32, 44, 56, 110)},
    "resnet8x4": _RESNET_X4,
    "resnet32x4": _RESNET_X4,
    "resnet8_half": _RESNET_HALF,
    "wrn_16_2": _WRN_2,
    "wrn_40_2": _WRN_2,
    "vgg8": _VGG,
    "vgg13": _VGG,
    "mobilenetv2": [(16, 16, 16), (12, 16, 16), (16, 8, 8), (48, 4, 4), (160, 2, 2), (1280,)],
    "shufflenetv1": [(24, 32, 32), (240, 16, 16), (480, 8, 8), (960, 4, 4), (960,)],
    "resnet50": [(64, 32, 32), (256, 32, 32), (512, 16, 16), (1024, 8, 8), (2048, 4, 4), (2048,)],
    "resnet18": _TORCHVISION_32,
    "resnet34": _TORCHVISION_32,
    "vit_tiny": [(192, 8, 8)] * 4 + [(192,)],
    "vit_nano": [(96, 8, 8)] * 4 + [(96,)],
}


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def models() -> dict[str, SpotNet]:
    """One instance per name, built once (construction of the large ones dominates)."""
    torch.manual_seed(0)
    return {name: create_model(name, num_classes=100).eval() for name in ALL_MODELS}


def test_list_models_names_the_whole_zoo() -> None:
    assert sorted(list_models()) == sorted(ALL_MODELS)
    assert len(list_models()) == 21


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_model("resnet21", num_classes=10)
    message = str(info.value)
    assert "resnet21" in message
    assert all(name in message for name in ALL_MODELS)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_num_classes_fails_early(bad: object) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet8", num_classes=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_parameter_count_matches_crd_benchmark(name: str, models: dict[str, SpotNet]) -> None:
    assert _num_params(models[name]) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_features_follow_crd_convention_at_32(name: str, models: dict[str, SpotNet]) -> None:
    model = models[name]
    assert isinstance(model, SpotNet)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features, logits = model(x, return_features=True)
    assert [tuple(f.shape[1:]) for f in features] == SHAPES_AT_32[name]
    assert model.num_features == len(SHAPES_AT_32[name])
    assert logits.shape == (1, 100)
    # the classifier (last stage) maps the pooled embedding to the logits
    assert torch.allclose(model.stages[-1](features[-1]), logits)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_logits_equal_plain_forward(name: str, models: dict[str, SpotNet]) -> None:
    model = models[name]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, logits = model(x, return_features=True)
        assert torch.equal(model(x), logits)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_any_segment_split_composes_to_the_full_forward(
    name: str, models: dict[str, SpotNet]
) -> None:
    """Running stages [0, k) then [k, end) is the whole net; [0, k+1) yields feature k."""
    model = models[name]
    x = torch.randn(2, 3, 16, 16)
    end = len(model.stages)
    with torch.no_grad():
        features, logits = model(x, return_features=True)
        for k in range(end + 1):
            head = model.run_stages(x, 0, k)
            assert torch.allclose(model.run_stages(head, k, end), logits, atol=1e-5)
        for k, feature in enumerate(features):
            assert torch.allclose(model.run_stages(x, 0, k + 1), feature, atol=1e-5)
            # the routing network restarts from a (possibly mixed) feature at spot k
            assert torch.allclose(model.run_stages(feature, k + 1, end), logits, atol=1e-5)


@pytest.mark.parametrize("size", [8, 32, 64])
@pytest.mark.parametrize("name", SMALL_MODELS)
def test_small_models_train_on_any_input_size(name: str, size: int) -> None:
    """Train mode with a real batch: digits (8x8), CIFAR (32) and tiny-ImageNet (64)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=7).train()
    features, logits = model(torch.randn(2, 3, size, size), return_features=True)
    assert logits.shape == (2, 7)
    assert features[-1].dim() == 2  # the embedding is always pooled to a vector
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("size", [8, 64])
@pytest.mark.parametrize("name", sorted(LARGE_MODELS))
def test_large_models_run_on_small_and_large_inputs(
    name: str, size: int, models: dict[str, SpotNet]
) -> None:
    with torch.no_grad():
        logits = models[name](torch.randn(1, 3, size, size))
    assert logits.shape == (1, 100)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_imagenet_resnets_at_224(name: str, models: dict[str, SpotNet]) -> None:
    shapes = feature_shapes(models[name], (3, 224, 224))
    assert shapes == [(64, 56, 56), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7), (512,)]


def test_resnet18_is_torchvisions_architecture(models: dict[str, SpotNet]) -> None:
    """Same tensors in the same order and, loaded with torchvision's weights, the same outputs."""
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.resnet18(num_classes=100).eval()
    ours = create_model("resnet18", num_classes=100).eval()
    ref_state, our_state = reference.state_dict(), ours.state_dict()
    assert [v.shape for v in ref_state.values()] == [v.shape for v in our_state.values()]
    ours.load_state_dict(dict(zip(our_state, ref_state.values(), strict=True)))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_feature_shapes_probe_leaves_the_model_untouched() -> None:
    model = create_model("resnet8", num_classes=10).train()
    stats_before = [b.clone() for b in model.buffers()]
    assert feature_shapes(model, (3, 8, 8)) == [
        (16, 8, 8), (16, 8, 8), (32, 4, 4), (64, 2, 2), (64,)
    ]  # fmt: skip
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(stats_before, model.buffers(), strict=True))


def test_vgg_keeps_a_one_pixel_map_through_its_pools() -> None:
    shapes = feature_shapes(create_model("vgg8", num_classes=10), (3, 8, 8))
    assert shapes == [(64, 8, 8), (128, 4, 4), (256, 2, 2), (512, 1, 1), (512, 1, 1), (512,)]


def test_vgg_pools_before_last_group_for_64_inputs_like_crd() -> None:
    shapes = feature_shapes(create_model("vgg8", num_classes=10), (3, 64, 64))
    assert shapes[3:5] == [(512, 8, 8), (512, 4, 4)]


@pytest.mark.parametrize("name", ["resnet20", "wrn_16_2", "vgg8", "mobilenetv2"])
def test_crd_initialisation(name: str) -> None:
    """Convs ~ N(0, 2 / fan_out), BatchNorm weight 1 and bias 0 (CRD benchmark)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=100)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
        elif isinstance(module, nn.Conv2d) and module.weight.numel() >= 4096:
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            expected = (2.0 / fan_out) ** 0.5
            assert abs(module.weight.std().item() / expected - 1.0) < 0.1


def test_same_seed_builds_the_same_network() -> None:
    torch.manual_seed(3)
    first = create_model("resnet8", num_classes=10)
    torch.manual_seed(3)
    second = create_model("resnet8", num_classes=10)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_spot_names_follow_the_paper() -> None:
    model = create_model("resnet8", num_classes=10)
    names = [spot_name(k, model.num_features) for k in range(model.num_features + 1)]
    assert names == ["spot1", "spot2", "spot3", "spot4", "spot5", "logits"]
