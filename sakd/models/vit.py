"""Vision transformers (DeiT-style, pre-norm) whose every spot is a token grid.

    vit_tiny  dim 192, depth 12, heads 3, mlp 4  (DeiT-Ti's shape)    ~5.4M params (100 classes)
    vit_nano  dim  96, depth  6, heads 3, mlp 4  (the student)        ~0.69M params

Patch 4 on a 32x32 image: an 8x8 grid of 64 tokens with a learned position embedding. There is
no class token; the head mean-pools the tokens, normalises (LayerNorm) and classifies, which is
timm's `VisionTransformer(class_token=False, global_pool='avg')` and keeps every intermediate
spot a token grid. Features, as the CIFAR ResNets' five so ViT and ResNet pairs line up:

    [patch embedding + position, blocks of group 1, group 2, group 3, pooled embedding]

each map a (B, dim, 8, 8) tensor: a stage turns the map into tokens, runs its blocks and turns
them back, so any contiguous segment runs on its own (the routing network's contract) and the
feature distillers and adapters see ordinary maps. The depth is split into three equal groups.

Input size: the token grid stays `img_size / patch_size` (8x8) for every input. The stem first
resamples the image to `img_size` (bilinear up, area average down), so each token covers
input/8 pixels a side: patch 1 for the 8x8 digits, 2 for the 16x16 glyphs, 8 for 64x64. One set
of weights and one position embedding serve every dataset, and every feature shape is the same
at any input size. Build with `img_size`/`patch_size` for another grid (224 and 16: 14x14).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sakd.models.base import SpotNet
from sakd.models.zoo import register_model

_INIT_STD = 0.02  # DeiT / timm: truncated normal for linear weights and the position embedding
_LN_EPS = 1e-6  # DeiT's LayerNorm epsilon (PyTorch's default is 1e-5)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def _grid(tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W) with the spatial size of `like`."""
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, *like.shape[2:])


class PatchEmbed(nn.Module):
    """Resample to img_size, non-overlapping patch projection, plus the learned positions."""

    def __init__(self, dim: int, img_size: int, patch_size: int, in_chans: int = 3) -> None:
        super().__init__()
        if patch_size < 1 or img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        self.img_size = img_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        grid = img_size // patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, grid, grid))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (self.img_size, self.img_size)
        if tuple(x.shape[2:]) != size:
            larger = x.shape[2] >= size[0] and x.shape[3] >= size[1]
            x = (F.adaptive_avg_pool2d(x, size) if larger
                 else F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return self.proj(x) + self.pos_embed


class Attention(nn.Module):
    """Multi-head self-attention: one qkv projection (with bias), scaled dot product, output
    projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, head_dim)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) (GELU)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BlockGroup(nn.Module):
    """A group of blocks that takes and returns a map (B, C, H, W): one spot of the network."""

    def __init__(self, blocks: list[Block]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _grid(self.blocks(_tokens(x)), x)


class TokenMeanPool(nn.Module):
    """Mean over the token grid, then LayerNorm: the pooled embedding (B, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=_LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.mean(dim=(2, 3)))


class VisionTransformer(SpotNet):
    """Stages: [PatchEmbed, BlockGroup x groups, TokenMeanPool, Linear head]."""

    relu_maps = False  # its maps are a signed residual stream, not post-ReLU activations

    def __init__(self, num_classes: int, dim: int, depth: int, heads: int, *,
                 mlp_ratio: float = 4.0, img_size: int = 32, patch_size: int = 4,
                 groups: int = 3) -> None:
        super().__init__()
        if groups < 1 or depth % groups:
            raise ValueError(f"depth {depth} must split into {groups} equal block groups")
        per_group = depth // groups
        stages: list[nn.Module] = [PatchEmbed(dim, img_size, patch_size)]
        stages += [BlockGroup([Block(dim, heads, mlp_ratio) for _ in range(per_group)])
                   for _ in range(groups)]
        stages += [TokenMeanPool(dim), nn.Linear(dim, num_classes)]
        self.stages = nn.ModuleList(stages)
        self._init_weights()

    def _init_weights(self) -> None:
        """DeiT's rule: linear weights and positions ~ TruncNormal(0, 0.02), biases 0,
        LayerNorm 1/0, the patch projection PyTorch's default."""
        nn.init.trunc_normal_(self.stages[0].pos_embed, std=_INIT_STD)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=_INIT_STD)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


_CONFIGS: dict[str, dict[str, int]] = {
    "vit_tiny": {"dim": 192, "depth": 12, "heads": 3},
    "vit_nano": {"dim": 96, "depth": 6, "heads": 3},
}


def _register(name: str, config: dict[str, int]) -> None:
    @register_model(name)
    def factory(num_classes: int, **kw) -> SpotNet:
        return VisionTransformer(num_classes, **config, **kw)

    factory.__name__ = name
    factory.__doc__ = f"Vision transformer {name}: {config}, mlp 4, patch 4 at 32x32."


for _name, _config in _CONFIGS.items():
    _register(_name, _config)
