"""FT: factor transfer. A paraphraser (autoencoder of the teacher's last block map) is
pretrained before distillation and frozen; a translator maps the student map to factors."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import pairwise
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from sakd.distillers.base import ElementwiseDistiller
from sakd.distillers.factory import register_distiller
from sakd.distillers.options import DistillerOptions
from sakd.distillers.target import teacher_target
from sakd.layers import flatten_samples, match_spatial

log = logging.getLogger(__name__)


def factor_map(f: torch.Tensor) -> torch.Tensor:
    """FT's factor normalisation: normalize_L2(mean_c f_c^2), flattened to [B, H*W]."""
    return F.normalize(flatten_samples(f.pow(2).mean(1)), dim=1)


def ft_per_sample(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    """mean_hw |phi(F_s) - phi(F_t)| per sample, shape [B]."""
    factor_s, factor_t = match_spatial(factor_s, teacher_target(factor_t))
    return (factor_map(factor_s) - factor_map(factor_t)).abs().mean(1)


def ft(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    """L = mean_{i,hw} |phi(F_s) - phi(F_t)|, phi(F) = normalize(mean_c F_c^2).

    RepDistiller `FactorTransfer` defaults p1 = 2, p2 = 1 (L1 between the normalised factors).
    """
    return ft_per_sample(factor_s, factor_t).mean()


def _conv_stack(conv: type[nn.Module], widths: list[int], use_bn: bool) -> nn.Sequential:
    """3x3 'same' convs (or transposed convs) through `widths`, each -> [BN] -> LeakyReLU(0.1)."""
    layers: list[nn.Module] = []
    for c_in, c_out in pairwise(widths):
        layers.append(conv(c_in, c_out, 3, 1, 1))
        if use_bn:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


class Paraphraser(nn.Module):
    """Autoencoder of the teacher map: C -> C -> kC -> kC (factors) -> kC -> C -> C (no BN)."""

    def __init__(self, channels: int, rate: float = 0.5, use_bn: bool = False) -> None:
        super().__init__()
        factor = int(channels * rate)
        self.encoder = _conv_stack(nn.Conv2d, [channels, channels, factor, factor], use_bn)
        self.decoder = _conv_stack(
            nn.ConvTranspose2d, [factor, factor, channels, channels], use_bn
        )

    def forward(self, f_t: torch.Tensor) -> torch.Tensor:
        """Reconstruction of f_t (used only while pretraining)."""
        return self.decoder(self.encoder(f_t))


class Translator(nn.Module):
    """Student map -> factors: C_s -> C_s -> kC_t -> kC_t 3x3 convs with BN."""

    def __init__(self, s_channels: int, t_channels: int, rate: float = 0.5) -> None:
        super().__init__()
        factor = int(t_channels * rate)
        self.encoder = _conv_stack(nn.Conv2d, [s_channels, s_channels, factor, factor], True)

    def forward(self, f_s: torch.Tensor) -> torch.Tensor:
        return self.encoder(f_s)


def _inputs(batch: object) -> torch.Tensor:
    """A loader batch is an input tensor or a tuple/list whose first item is the input."""
    return batch[0] if isinstance(batch, list | tuple) else batch  # type: ignore[return-value]


@register_distiller("ft")
class FT(ElementwiseDistiller):
    """FT at the last block output (features[-2]): L1 between the normalised factors of the
    translator (student) and the frozen paraphraser's encoder (teacher), CRD-benchmark
    defaults (rate k = 0.5, p1 = 2, p2 = 1, paraphraser without BN, translator with BN).

    `prepare(teacher, batches)` pretrains the paraphraser to reconstruct the teacher map (MSE,
    SGD lr 0.01, momentum 0.9, weight decay 5e-4, `pretrain_epochs` = 30 as in the FT paper and
    the authors' code), then freezes it: it never appears in student_parameters(). The gated
    loss of an empty selection is 0 (the authors' code keeps the full-batch loss there: a bug
    not reproduced). The translator (with BatchNorm) runs on the whole batch; only its loss is
    gated (as in the authors' code, which runs it on the full batch and indexes afterwards).
    """

    spot_rule = "last_block"
    default_beta = 200.0
    needs_maps = True

    class Options(DistillerOptions):
        """params.yaml `distill.options.ft`: epochs of paraphraser pretraining (FT paper: 30)."""

        pretrain_epochs: Annotated[int, Field(ge=0, le=100_000)] = 30

    def __init__(
        self,
        spots: list[int],
        paraphraser: Paraphraser,
        translator: Translator,
        pretrain_epochs: int = 30,
        pretrain_lr: float = 0.01,
        pretrain_weight_decay: float = 5e-4,
    ) -> None:
        super().__init__(spots)
        if pretrain_epochs < 0:
            raise ValueError(f"ft: pretrain_epochs must be >= 0, got {pretrain_epochs}")
        self.paraphraser = paraphraser.requires_grad_(False)
        # saved with the state dict: a resumed run does not pretrain the paraphraser again
        self.register_buffer("prepared", torch.zeros((), dtype=torch.bool))
        self.translator = translator
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.pretrain_weight_decay = pretrain_weight_decay

    @classmethod
    def from_spots(
        cls, spots: list[int], at_s: list[torch.Tensor], at_t: list[torch.Tensor], *,
        rate: float = 0.5, pretrain_epochs: int = 30, pretrain_lr: float = 0.01,
        pretrain_weight_decay: float = 5e-4,
    ) -> FT:
        s_channels, t_channels = at_s[0].shape[1], at_t[0].shape[1]
        return cls(
            spots,
            Paraphraser(t_channels, rate),
            Translator(s_channels, t_channels, rate),
            pretrain_epochs,
            pretrain_lr,
            pretrain_weight_decay,
        )

    def per_sample(self, k: int, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            factor_t = self.paraphraser.encoder(f_t)
        return ft_per_sample(self.translator(f_s), factor_t)

    def prepare(self, teacher: nn.Module, batches: Iterable[torch.Tensor]) -> None:
        """Pretrain the paraphraser on the teacher's map, then freeze it.

        `batches` is iterated once per epoch, so it must be re-iterable (a DataLoader or a
        list), not a one-shot iterator. The teacher is used in eval mode under no_grad. A no-op
        once done, including after loading the state dict of a prepared FT.
        """
        if self.pretrain_epochs > 1 and isinstance(batches, Iterator):
            raise TypeError("ft.prepare needs re-iterable batches (a DataLoader or a list) to "
                            f"run {self.pretrain_epochs} epochs; got a one-shot iterator")
        if bool(self.prepared):
            return
        device = next(self.paraphraser.parameters()).device
        teacher_was_training = teacher.training
        teacher.eval()
        self.paraphraser.requires_grad_(True).train()
        optimizer = torch.optim.SGD(self.paraphraser.parameters(), lr=self.pretrain_lr,
                                    momentum=0.9, weight_decay=self.pretrain_weight_decay)
        try:
            for epoch in range(self.pretrain_epochs):
                total, count = torch.zeros((), device=device), 0
                for batch in batches:
                    x = _inputs(batch).to(device)
                    with torch.no_grad():
                        f_t = teacher(x, return_features=True)[0][self.spots[0]]
                    loss = F.mse_loss(self.paraphraser(f_t), f_t)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.detach() * x.shape[0]
                    count += x.shape[0]
                mean = (total / max(count, 1)).item()  # one sync per epoch, for the summary
                log.info("ft paraphraser epoch %d/%d: reconstruction mse %.5f",
                         epoch + 1, self.pretrain_epochs, mean)
        finally:
            self.paraphraser.requires_grad_(False)
            teacher.train(teacher_was_training)
        self.prepared.fill_(True)
