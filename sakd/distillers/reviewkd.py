"""ReviewKD: knowledge review (Chen et al., "Distilling Knowledge via Knowledge Review", CVPR
2021), as in mdistiller's `mdistiller/distillers/ReviewKD.py`: the student's stage features are
fused deep to shallow by attention-based fusion (ABF) modules and each fused map is matched to
the teacher's feature of the same stage by the hierarchical context loss (HCL)."""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sakd.distillers.base import Distiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.gating import gated_mean
from sakd.distillers.options import DistillerOptions
from sakd.distillers.target import teacher_target
from sakd.layers import flatten_samples

HCL_LEVELS = (4, 2, 1)  # the pooled pyramid sizes of HCL (reference: [4, 2, 1])


def _mse_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return flatten_samples(a - b).pow(2).mean(1)


def hcl_per_sample(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """HCL of each sample, shape [B]: (mse + sum_j w_j mse(pool_j)) / (1 + sum_j w_j).

    mse at full resolution (weight 1) plus the adaptive-avg-pooled levels 4, 2, 1; a level is
    used only when it is smaller than the map's height (the reference reads the height only),
    and each level used halves the weight (1/2, 1/4, 1/8 on maps of 8x8 and up). Its batch
    mean is the reference's `hcl_loss` of one stage (every sample has as many elements)."""
    if f_s.shape != f_t.shape:
        raise ValueError(f"reviewkd: fused student map {list(f_s.shape)} and teacher map "
                         f"{list(f_t.shape)} differ (the ABF output must match the teacher)")
    f_t = teacher_target(f_t)
    loss, weight, total = _mse_per_sample(f_s, f_t), 1.0, 1.0
    for size in HCL_LEVELS:
        if size >= f_s.shape[2]:
            continue
        weight /= 2.0
        pooled_s = F.adaptive_avg_pool2d(f_s, (size, size))
        pooled_t = F.adaptive_avg_pool2d(f_t, (size, size))
        loss = loss + weight * _mse_per_sample(pooled_s, pooled_t)
        total += weight
    return loss / total


def hcl(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """HCL of one stage pair, batch mean (the reference sums this over the stages)."""
    return hcl_per_sample(f_s, f_t).mean()


def as_map(f: torch.Tensor) -> torch.Tensor:
    """A pooled embedding [B, C] as a 1x1 map [B, C, 1, 1] (the reference's deepest stage)."""
    return f[:, :, None, None] if f.dim() == 2 else f


class ABF(nn.Module):
    """Attention-based fusion of one stage: 1x1 conv + BN to `mid` channels; with a deeper
    residual, a 1x1 conv + sigmoid on both gives two attention maps that mix them; then the
    mix is resized (nearest) to the teacher's size and a 3x3 conv + BN gives the teacher's
    channels. Returns (output for the loss, residual for the next shallower stage)."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 fuse: bool) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1, bias=False),
                                    nn.BatchNorm2d(mid_channels))
        self.project = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.attention = nn.Sequential(nn.Conv2d(2 * mid_channels, 2, 1), nn.Sigmoid()) \
            if fuse else None
        nn.init.kaiming_uniform_(self.reduce[0].weight, a=1)  # the reference's initialisation
        nn.init.kaiming_uniform_(self.project[0].weight, a=1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None,
                out_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.reduce(x)
        if self.attention is not None:
            if residual is None:
                raise ValueError("reviewkd: a fusing ABF needs the deeper stage's residual")
            residual = _resize(residual, tuple(x.shape[2:]))
            weights = self.attention(torch.cat([x, residual], dim=1))
            x = x * weights[:, :1] + residual * weights[:, 1:]
        x = _resize(x, out_size)
        return self.project(x), x


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Nearest-neighbour resize to `size` (H, W), as the reference (a no-op at the same size)."""
    return x if tuple(x.shape[2:]) == tuple(size) else F.interpolate(x, size, mode="nearest")


@register_distiller("reviewkd")
class ReviewKD(Distiller):
    """ReviewKD at every block output and the pooled embedding (features[1:], the embedding as
    a 1x1 map), mdistiller's CIFAR settings: mid channels min(512, student embedding width),
    warm-up of 20 epochs, loss weight 1 (beta2: the per-spot losses are summed, as the
    reference sums HCL over the stages).

    The ABF chain needs every student feature at once (deep to shallow), so this distiller
    runs it in `spot_students` over the whole batch: the gate of a spot gates that stage's HCL term
    only (per sample, `sum_i m_i l_i / B`); the fusion still runs for every sample and stage,
    so a deeper stage's student feature also gets gradient from a shallower spot's loss
    through the residual. The ABFs have BatchNorm: an unselected sample still shapes the
    selected ones' loss through the batch statistics (as FitNet's regressor).

    Warm-up: the per-spot losses are multiplied by min((epoch + 1) / warmup_epochs, 1) (the
    reference's min(epoch / warmup, 1) with its epochs counted from 1), set by `start_epoch`;
    1 until the first call. Differences from mdistiller: the teacher's features are the
    post-activation stage outputs (mdistiller reads the pre-activation ones; this zoo does not
    expose them); maps are resized to the teacher's (H, W), not a square side.
    """

    spot_rule = "blocks_and_embedding"
    default_beta = 1.0  # mdistiller CFG.REVIEWKD.REVIEWKD_WEIGHT

    class Options(DistillerOptions):
        """params.yaml `distill.options.reviewkd` (mdistiller's CFG.REVIEWKD defaults)."""

        warmup_epochs: Annotated[int, Field(ge=0, le=100_000)] = 20
        max_mid_channels: Annotated[int, Field(ge=1, le=65_536)] = 512

    def __init__(self, spots: list[int], abfs: nn.ModuleList, warmup_epochs: int = 20) -> None:
        super().__init__(spots)
        if len(abfs) != len(spots):
            raise ValueError(f"reviewkd: {len(abfs)} ABF modules for {len(spots)} spots")
        if warmup_epochs < 0:
            raise ValueError(f"reviewkd: warmup_epochs must be >= 0, got {warmup_epochs}")
        self.abfs = abfs  # abfs[k] fuses the student feature at spots[k]
        self.warmup_epochs = warmup_epochs
        # derived from the epoch (set again on every start_epoch, also after a resume): a buffer
        # so a captured step reads the new value without recompiling, not saved
        self.register_buffer("ramp", torch.ones(()), persistent=False)

    @classmethod
    def from_spots(
        cls, spots: list[int], at_s: list[torch.Tensor], at_t: list[torch.Tensor], *,
        warmup_epochs: int = 20, max_mid_channels: int = 512,
    ) -> ReviewKD:
        at_s = [_checked_map(f, i, "student") for i, f in zip(spots, at_s, strict=True)]
        at_t = [_checked_map(f, i, "teacher") for i, f in zip(spots, at_t, strict=True)]
        mid = min(max_mid_channels, at_s[-1].shape[1])
        abfs = nn.ModuleList(
            ABF(s.shape[1], mid, t.shape[1], fuse=k < len(spots) - 1)
            for k, (s, t) in enumerate(zip(at_s, at_t, strict=True))
        )
        return cls(spots, abfs, warmup_epochs)

    def start_epoch(self, epoch: int) -> None:
        """Set the warm-up factor for `epoch` (counted from 0)."""
        ramp = 1.0 if self.warmup_epochs == 0 else min((epoch + 1) / self.warmup_epochs, 1.0)
        self.ramp.fill_(ramp)

    def fuse(self, feats_s: list[torch.Tensor], sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """The ABF outputs, one per spot (shallow to deep), from the student's features at the
        spots and the teacher's (H, W) there; the chain runs from the deepest spot up."""
        outputs: list[torch.Tensor] = []
        residual = None
        for k in reversed(range(len(self.spots))):
            out, residual = self.abfs[k](as_map(feats_s[k]), residual, sizes[k])
            outputs.append(out)
        return outputs[::-1]

    def spot_students(
        self, feats_s: list[torch.Tensor], feats_t: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The ABF outputs at the spots, each at the size of the teacher's map there."""
        sizes = [tuple(as_map(feats_t[i]).shape[2:]) for i in self.spots]
        return self.fuse([feats_s[i] for i in self.spots], sizes)

    def spot_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        """Gated HCL of the fused map `f_s` at spot k, times the warm-up factor."""
        return gated_mean(hcl_per_sample(f_s, as_map(f_t)), gate) * self.ramp.to(f_s.dtype)


def _checked_map(f: torch.Tensor, index: int, side: str) -> torch.Tensor:
    """A spot feature as a map; fail early on anything but [B, C, H, W] or [B, C]."""
    if f.dim() not in (2, 4):
        raise ValueError(f"reviewkd: needs feature maps [B, C, H, W] (or the pooled embedding "
                         f"[B, C]) at feature {index}; the {side}'s has shape {list(f.shape)}")
    return as_map(f)
