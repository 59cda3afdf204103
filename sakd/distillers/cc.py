"""CC: correlation congruence on learned embeddings of the pooled features."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from sakd.distillers.base import RelationalDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.gating import pair_gate
from sakd.distillers.options import DistillerOptions
from sakd.layers import LinearEmbed, flat_dim, flatten_samples


def cc_masked(e_s: torch.Tensor, e_t: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """CC on the selected subset (consecutive pairs among the selected samples), times n/B.

    A subset with fewer than two samples has no pair and gives 0 (the reference yields NaN).
    """
    batch = e_s.shape[0]
    delta = (flatten_samples(e_s) - flatten_samples(e_t)).abs()  # e_t not detached: see `cc`
    if gate is None:
        if batch < 2:
            return delta.sum() * 0
        return (delta[:-1] * delta[1:]).sum(1).mean()
    gate = gate.to(delta.dtype)
    rank = gate.cumsum(0)  # 1-based rank of each selected sample among the selected ones
    consecutive = (rank[None, :] - rank[:, None] == 1).to(delta.dtype) * pair_gate(gate)
    total = (consecutive * (delta @ delta.t())).sum()
    n = gate.sum()
    return total * n / ((n - 1).clamp_min(1) * batch)  # = mean over n-1 pairs, times n/B


def cc(e_s: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
    """L = 1/(B-1) * sum_i <|e_s,i - e_t,i|, |e_s,i+1 - e_t,i+1|> over consecutive samples.

    This is the correlation-congruence code the CC authors sent to the CRD benchmark
    (RepDistiller `Correlation`), applied to the learned 128-d embeddings of both nets.
    Unlike every other loss, it keeps the gradient of `e_t`: e_t is the output of a learned
    teacher-side embedding that trains through this loss (the distiller detaches the teacher
    features before embedding them).
    """
    return cc_masked(e_s, e_t, None)


@register_distiller("cc")
class CC(RelationalDistiller):
    """CC on the pooled embedding (features[-1]): both nets' features go through their own
    Linear embedding to `feat_dim` (128, the benchmark default), then `cc`.

    Both embeddings train with the student by default: the paper wraps each distiller
    unchanged, and CC as published (and as the authors' own standard-distillation runs) trains
    both. The SAKD authors' code detaches the teacher-side embedding, so in their
    spot-adaptive runs it stays at its initialisation: `distill.options.cc.train_teacher_embed:
    false` reproduces that (its parameters are then frozen and not in student_parameters()).
    """

    spot_rule = "embedding"
    default_beta = 0.02

    class Options(DistillerOptions):
        """params.yaml `distill.options.cc`."""

        feat_dim: Annotated[int, Field(ge=1, le=65_536)] = 128  # the benchmark's embedding width
        train_teacher_embed: bool = True  # False: the SAKD authors' code (embedding never trains)

    def __init__(self, spots: list[int], embed_s: LinearEmbed, embed_t: LinearEmbed) -> None:
        super().__init__(spots)
        self.embed_s, self.embed_t = embed_s, embed_t

    @classmethod
    def from_spots(
        cls, spots: list[int], at_s: list[torch.Tensor], at_t: list[torch.Tensor], *,
        feat_dim: int = 128, train_teacher_embed: bool = True,
    ) -> CC:
        embed_s = LinearEmbed(flat_dim(at_s[0]), feat_dim)
        embed_t = LinearEmbed(flat_dim(at_t[0]), feat_dim)
        embed_t.requires_grad_(train_teacher_embed)
        return cls(spots, embed_s, embed_t)

    def subset_loss(
        self, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        return cc_masked(self.embed_s(f_s), self.embed_t(f_t), gate)
