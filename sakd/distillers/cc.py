"""CC: correlation congruence on learned embeddings of the pooled features."""

from __future__ import annotations

import torch

from sakd.distillers import functional as L
from sakd.distillers.adapters import LinearEmbed, flat_dim
from sakd.distillers.base import resolve_spots
from sakd.distillers.factory import register_distiller
from sakd.distillers.kinds import RelationalDistiller


@register_distiller("cc")
class CC(RelationalDistiller):
    """CC on the pooled embedding (features[-1]): both nets' features go through their own
    Linear embedding to `feat_dim` (128, the benchmark default), then `functional.cc`.

    Both embeddings train with the student (the benchmark's setting). The SAKD authors' code
    detaches the teacher-side embedding, so it stays at its initialisation:
    `train_teacher_embed=False` reproduces that (its parameters are then frozen and not
    reported by student_parameters()).
    """

    spot_rule = "embedding"
    default_beta = 0.02

    def __init__(self, spots: list[int], embed_s: LinearEmbed, embed_t: LinearEmbed) -> None:
        super().__init__(spots)
        self.embed_s, self.embed_t = embed_s, embed_t

    @classmethod
    def from_features(
        cls,
        feats_s: list[torch.Tensor],
        feats_t: list[torch.Tensor],
        *,
        feat_dim: int = 128,
        train_teacher_embed: bool = True,
    ) -> CC:
        spots = resolve_spots(cls.spot_rule, len(feats_s))
        embed_s = LinearEmbed(flat_dim(feats_s[spots[0]]), feat_dim)
        embed_t = LinearEmbed(flat_dim(feats_t[spots[0]]), feat_dim)
        embed_t.requires_grad_(train_teacher_embed)
        return cls(spots, embed_s, embed_t)

    def subset_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return L.cc_masked(self.embed_s(f_s), self.embed_t(f_t), gate)
