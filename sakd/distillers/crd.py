"""CRD: contrastive representation distillation on the pooled embedding."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field

from sakd.distillers.base import Distiller
from sakd.distillers.contrast_memory import (
    ContrastMemory,
    NegativeSampler,
    max_negatives,
    nce_per_anchor,
)
from sakd.distillers.factory import register_distiller
from sakd.distillers.gating import gated_mean
from sakd.distillers.options import DistillerOptions
from sakd.layers import NormalizedEmbed, flat_dim

log = logging.getLogger(__name__)

DEFAULT_NCE_K = 16384


@register_distiller("crd")
class CRD(Distiller):
    """CRD at features[-1] with the CRD benchmark's CIFAR defaults: 128-d L2-normalised linear
    embeddings of both nets (both train with the student), 16,384 negatives drawn from other
    classes ("exact" mode), NCE temperature 0.07, memory momentum 0.5.

    Construction needs `labels`, the training-set label of every sample index the loader yields
    (`num_samples`, if given, must equal len(labels)). K (`nce_k`, default 16,384) is capped at
    the smallest pool of other-class samples, with a logged warning, so tiny datasets work;
    the K in use is `self.sampler.k`. forward needs `index`, the dataset indices of the batch.

    Gating: the NCE loss is per anchor (both directions) and masked per sample; only the
    selected samples' memory rows are updated (in training mode), and Z is set from the first
    non-empty selection.
    """

    spot_rule = "embedding"
    default_beta = 0.8
    needs_index = True
    batch_inputs = ("contrast_index",)

    class Options(DistillerOptions):
        """params.yaml `distill.options.crd` (the CRD paper's CIFAR settings)."""

        nce_k: Annotated[int, Field(ge=1, le=10_000_000)] = DEFAULT_NCE_K  # capped to the data
        feat_dim: Annotated[int, Field(ge=1, le=65_536)] = 128
        nce_t: Annotated[float, Field(gt=0, le=100)] = 0.07
        nce_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.5

    def __init__(
        self,
        spots: list[int],
        embed_s: NormalizedEmbed,
        embed_t: NormalizedEmbed,
        sampler: NegativeSampler,
        memory: ContrastMemory,
    ) -> None:
        super().__init__(spots)
        self.embed_s, self.embed_t = embed_s, embed_t
        self.sampler, self.memory = sampler, memory

    @classmethod
    def from_spots(
        cls, spots: list[int], at_s: list[torch.Tensor], at_t: list[torch.Tensor], *,
        labels: torch.Tensor | Sequence[int] | None = None, num_samples: int | None = None,
        feat_dim: int = 128, nce_k: int | None = None, nce_t: float = 0.07,
        nce_momentum: float = 0.5,
    ) -> CRD:
        if labels is None:
            raise ValueError("crd needs labels=<the training-set label of every sample>, to "
                             "draw negatives from other classes")
        labels = torch.as_tensor(labels).long().reshape(-1).cpu()
        if num_samples is not None and num_samples != labels.numel():
            raise ValueError(f"crd: num_samples={num_samples} but {labels.numel()} labels given")
        nce_k = _checked_k(nce_k, max_negatives(labels))
        return cls(
            spots,
            NormalizedEmbed(flat_dim(at_s[0]), feat_dim),
            NormalizedEmbed(flat_dim(at_t[0]), feat_dim),
            NegativeSampler(labels, nce_k),
            ContrastMemory(feat_dim, labels.numel(), nce_t, nce_momentum),
        )

    def spot_loss(
        self,
        k: int,
        f_s: torch.Tensor,
        f_t: torch.Tensor,
        gate: torch.Tensor | None,
        index: torch.Tensor | None = None,
        contrast_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Gated NCE loss (forward checks that `index` is given). `contrast_index` [B, K+1]
        (anchor first) overrides the sampler, e.g. for a loader that draws negatives itself."""
        v_s = self.embed_s(f_s)
        v_t = self.embed_t(f_t)
        if contrast_index is None:
            contrast_index = self.sampler(index)
        out_s, out_t = self.memory.scores(v_s, v_t, contrast_index, gate)
        n = self.memory.num_samples
        loss = gated_mean(nce_per_anchor(out_s, n) + nce_per_anchor(out_t, n), gate)
        if self.training:
            self.memory.update(index, v_s, v_t, gate)
        return loss


def _checked_k(nce_k: int | None, largest: int) -> int:
    """K capped at the smallest pool of other-class samples (a warning says when it bites)."""
    if largest < 1:
        raise ValueError("crd needs at least two classes in labels (negatives come from other "
                         "classes)")
    requested = DEFAULT_NCE_K if nce_k is None else nce_k
    if requested < 1:
        raise ValueError(f"crd: nce_k must be >= 1, got {nce_k}")
    if requested > largest:
        log.warning("crd: nce_k=%d capped to %d, the smallest pool of other-class samples in "
                    "this training set", requested, largest)
    return min(requested, largest)
