"""The two shapes of loss a distiller can have, and how each is gated (base.py's rules).

A method only says how to compute its loss at one spot; the loop over spots, the teacher
detach, the mask checks and the stacking into a [len(spots)] tensor live here once.
"""

from __future__ import annotations

import torch

from sakd.distillers.base import Distiller
from sakd.distillers.gating import gated_mean, spot_gate


class ElementwiseDistiller(Distiller):
    """A loss that is a batch mean of per-sample terms: gated by sum_i m_i * l_i / B."""

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        """Loss of each sample at the k-th spot of `self.spots`, shape [B]."""
        raise NotImplementedError

    def forward(
        self,
        feats_s: list[torch.Tensor],
        feats_t: list[torch.Tensor],
        mask: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mask = self.checked_mask(feats_s, feats_t, mask)
        losses = [
            gated_mean(self.per_sample(k, feats_s[i], feats_t[i].detach()), spot_gate(mask, k))
            for k, i in enumerate(self.spots)
        ]
        return self.stack_losses(losses, feats_s[-1])


class RelationalDistiller(Distiller):
    """A loss over pairs (or triples) of samples: computed on the selected subset, times n/B."""

    relational = True

    def subset_loss(
        self, k: int, f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        """Loss of the subset selected by `gate` (None: all) at the k-th spot, times n/B."""
        raise NotImplementedError

    def forward(
        self,
        feats_s: list[torch.Tensor],
        feats_t: list[torch.Tensor],
        mask: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mask = self.checked_mask(feats_s, feats_t, mask)
        losses = [
            self.subset_loss(k, feats_s[i], feats_t[i].detach(), spot_gate(mask, k))
            for k, i in enumerate(self.spots)
        ]
        return self.stack_losses(losses, feats_s[-1])
