"""The vision transformers against timm's VisionTransformer (the reference: parameter count,
tensor shapes, and the same function with the same weights), and the spot contract at every
input size the project's datasets have.

timm comes with the `reference` extra (`.ci/run` installs it); under CI=true a missing timm
fails these tests instead of skipping them, as the PostgreSQL tests do.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest
import torch

from sakd.models import create_model, feature_shapes
from sakd.models.vit import VisionTransformer

CONFIGS = {  # name: (embed_dim, depth, num_heads), all mlp_ratio 4, patch 4 at 32x32
    "vit_tiny": (192, 12, 3),
    "vit_nano": (96, 6, 3),
}


def _timm() -> ModuleType:
    try:
        return importlib.import_module("timm")
    except ImportError as error:
        message = f"timm is the reference of the ViT tests: pip install -e '.[reference]' ({error})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the ViT reference tests: {message}")
        pytest.skip(message)


def _reference(name: str, num_classes: int = 100) -> torch.nn.Module:
    dim, depth, heads = CONFIGS[name]
    vit = _timm().models.vision_transformer.VisionTransformer
    return vit(img_size=32, patch_size=4, in_chans=3, num_classes=num_classes, embed_dim=dim,
               depth=depth, num_heads=heads, mlp_ratio=4.0, qkv_bias=True, class_token=False,
               global_pool="avg")


def _our_state_from(reference: torch.nn.Module, ours: VisionTransformer) -> dict:
    """timm's weights under our names: blocks i of group g, fc_norm -> the pooling stage's
    norm, the (1, N, C) position table as a (1, C, H, W) map (tokens in row-major order)."""
    ref = reference.state_dict()
    groups = len(ours.stages) - 3
    per_group = len(reference.blocks) // groups
    state = {"stages.0.proj.weight": ref["patch_embed.proj.weight"],
             "stages.0.proj.bias": ref["patch_embed.proj.bias"],
             "stages.0.pos_embed": _grid(ref["pos_embed"], ours.stages[0].pos_embed.shape)}
    for key, value in ref.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            g, b = divmod(int(index), per_group)
            rest = rest.replace("mlp.fc1", "mlp.0").replace("mlp.fc2", "mlp.2")
            state[f"stages.{g + 1}.blocks.{b}.{rest}"] = value
    last = len(ours.stages) - 1
    for part in ("weight", "bias"):
        state[f"stages.{last - 1}.norm.{part}"] = ref[f"fc_norm.{part}"]
        state[f"stages.{last}.{part}"] = ref[f"head.{part}"]
    return state


def _grid(table: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return table.transpose(1, 2).reshape(shape)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parameter_count_and_tensors_equal_timms(name: str) -> None:
    reference, ours = _reference(name), create_model(name, num_classes=100)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    state = _our_state_from(reference, ours)
    assert sorted(state) == sorted(ours.state_dict())  # every tensor has its counterpart
    assert all(state[k].shape == v.shape for k, v in ours.state_dict().items())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_weights_compute_timms_features_and_logits(name: str) -> None:
    """Loaded with timm's weights, our spots are timm's block-group outputs (as NCHW maps) and
    our logits timm's: the same architecture, not just the same parameter count."""
    torch.manual_seed(0)
    reference, ours = _reference(name).eval(), create_model(name, num_classes=100).eval()
    ours.load_state_dict(_our_state_from(reference, ours))
    x = torch.randn(2, 3, 32, 32)
    depth = CONFIGS[name][1]
    with torch.no_grad():
        features, logits = ours(x, return_features=True)
        ends = [depth // 3 - 1, 2 * depth // 3 - 1, depth - 1]
        expected = reference.forward_intermediates(x, indices=ends, output_fmt="NCHW",
                                                   intermediates_only=True)
        expected_logits = reference(x)
    for ours_map, ref_map in zip(features[1:4], expected, strict=True):
        assert torch.allclose(ours_map, ref_map, atol=1e-5)
    assert torch.allclose(logits, expected_logits, atol=1e-5)


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_spot_is_an_eight_by_eight_token_grid_at_any_input(name: str, size: int) -> None:
    """digits 8x8, glyphs 16x16, CIFAR 32x32, tiny-ImageNet 64x64: the same spots."""
    dim = CONFIGS[name][0]
    shapes = feature_shapes(create_model(name, num_classes=10), (3, size, size))
    assert shapes == [(dim, 8, 8)] * 4 + [(dim,)]


def test_other_grids_are_family_options() -> None:
    model = create_model("vit_nano", num_classes=10, img_size=64, patch_size=16)
    assert feature_shapes(model, (3, 64, 64))[0] == (96, 4, 4)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        create_model("vit_nano", num_classes=10, img_size=30, patch_size=4)
    with pytest.raises(ValueError, match="equal block groups"):
        VisionTransformer(10, dim=96, depth=4, heads=3)


def test_stem_resamples_small_inputs_to_the_design_size() -> None:
    """An 8x8 image is first upsampled to 32x32: the stem equals the patch conv on that."""
    model = create_model("vit_nano", num_classes=10).eval()
    x = torch.randn(2, 3, 8, 8)
    up = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    stem = model.stages[0]
    with torch.no_grad():
        assert torch.allclose(stem(x), stem.proj(up) + stem.pos_embed)


def test_maps_are_signed_so_adapters_into_them_have_no_relu() -> None:
    vit, resnet = create_model("vit_nano", 10), create_model("resnet20", 10)
    assert not vit.relu_maps and resnet.relu_maps
    with torch.no_grad():
        features, _ = vit(torch.randn(2, 3, 32, 32), return_features=True)
    assert all((f < 0).any() for f in features[1:4])


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.slow),  # ~20 s export
                                 "torchscript", "pt2"])
def test_a_vit_student_exports_and_matches_pytorch(tmp_path, fmt: str) -> None:
    """`sakd export` and the compression stage export every student: the resampling stem and
    the attention trace into each format, verified on a batch of another size (16x16 glyphs)."""
    from sakd.deploy.export import export_model

    pytest.importorskip("onnxruntime") if fmt == "onnx" else None
    torch.manual_seed(0)
    out = export_model(create_model("vit_nano", num_classes=39), (3, 16, 16), fmt,
                       tmp_path / f"vit.{fmt}")
    assert out.path.is_file() and out.max_abs_diff <= out.atol
