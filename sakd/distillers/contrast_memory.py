"""CRD's non-parametric parts: negative sampling, the two memory banks and the NCE loss.

All of it runs on the device with no host sync: negatives are drawn with `torch.rand`, the
normalisation constant Z is set once with `torch.where`, memory rows are mask-blended.

In a data-parallel run (torchrun) each rank holds the whole bank: every update all-gathers the
batch's indices, embeddings and gates of all ranks (equal shares, so no padding), and Z is set
from the anchors of all ranks, so the banks stay identical across ranks.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

NCE_EPS = 1e-7


def _data_parallel() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_rows(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor's rows from every rank, concatenated in rank order (single process: as is)."""
    if not _data_parallel():
        return list(tensors)
    out = []
    for t in tensors:
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        out.append(torch.cat(parts))
    return out


def max_negatives(labels: torch.Tensor) -> int:
    """The size of the smallest pool of other-class samples: the largest valid K."""
    counts = torch.unique(labels, return_counts=True)[1]
    return int(labels.numel() - counts.max())


class NegativeSampler(nn.Module):
    """Draws K negatives per anchor uniformly (with replacement) from the training samples of
    the other classes: the benchmark's "exact" mode (positive = the anchor's own index).

    Samples are kept sorted by class; a draw r in [0, N - n_c) skips over the anchor's class
    block [start_c, start_c + n_c), so no rejection loop and no host sync is needed. The
    benchmark draws without replacement when K fits; with 16,384 of ~49,500 candidates the
    difference is a few repeated negatives.
    """

    def __init__(self, labels: torch.Tensor, k: int) -> None:
        super().__init__()
        labels = torch.as_tensor(labels).long().reshape(-1)
        _, class_of, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        self.k = k
        self.num_samples = labels.numel()
        # derived from the labels: rebuilt on construction, so kept out of checkpoints
        self.register_buffer("class_of", class_of, persistent=False)
        self.register_buffer("order", torch.argsort(class_of, stable=True), persistent=False)
        self.register_buffer("starts", starts, persistent=False)
        self.register_buffer("counts", counts, persistent=False)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """Contrast indices [B, K + 1]: column 0 the anchor itself, then K negatives."""
        c = self.class_of[index]
        pool = (self.num_samples - self.counts[c]).unsqueeze(1)
        r = (torch.rand(index.shape[0], self.k, device=index.device) * pool).long()
        r = torch.minimum(r, pool - 1)  # guards the float rounding of rand * pool
        start = self.starts[c].unsqueeze(1)
        position = r + (r >= start).long() * self.counts[c].unsqueeze(1)
        return torch.cat([index.unsqueeze(1), self.order[position]], dim=1)


class ContrastMemory(nn.Module):
    """Two memory banks of L2-normalised embeddings, one row per training sample.

    Student anchors are scored against the teacher bank and teacher anchors against the student
    bank: exp(<v, m> / T) / Z, Z fixed from the first batch as mean(exp) * N (benchmark's
    ContrastMemory). Rows of the selected samples are updated with momentum after each step.
    """

    def __init__(
        self, feat_dim: int, num_samples: int, temperature: float = 0.07, momentum: float = 0.5
    ) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.temperature = temperature
        self.momentum = momentum
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("memory_s", torch.rand(num_samples, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("memory_t", torch.rand(num_samples, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("z_s", torch.tensor(-1.0))  # < 0: not set yet
        self.register_buffer("z_t", torch.tensor(-1.0))

    def scores(
        self, v_s: torch.Tensor, v_t: torch.Tensor, contrast_index: torch.Tensor,
        gate: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised scores [B, K + 1] (positive first) of the student and teacher anchors."""
        out_s = self._exp_scores(self.memory_t, contrast_index, v_s)
        out_t = self._exp_scores(self.memory_s, contrast_index, v_t)
        return self._normalise(out_s, self.z_s, gate), self._normalise(out_t, self.z_t, gate)

    def _exp_scores(
        self, memory: torch.Tensor, contrast_index: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        rows = memory[contrast_index].to(v.dtype)  # [B, K + 1, D], a buffer: no gradient
        return torch.exp(torch.bmm(rows, v.unsqueeze(2)).squeeze(2) / self.temperature)

    def _normalise(
        self, out: torch.Tensor, z: torch.Tensor, gate: torch.Tensor | None
    ) -> torch.Tensor:
        with torch.no_grad():  # Z is a constant: set once, from the selected anchors only
            g = torch.ones_like(out[:, 0]) if gate is None else gate.to(out.dtype)
            total = torch.stack([(out * g[:, None]).sum(), g.sum()])
            if _data_parallel():
                dist.all_reduce(total)  # Z from the anchors of the global batch
            n = total[1]
            estimate = total[0] / (n.clamp_min(1) * out.shape[1])
            z.copy_(torch.where((z < 0) & (n > 0), estimate * self.num_samples, z))
        return out / torch.where(z > 0, z, torch.ones_like(z))

    @torch.no_grad()
    def update(
        self, index: torch.Tensor, v_s: torch.Tensor, v_t: torch.Tensor,
        gate: torch.Tensor | None,
    ) -> None:
        """Momentum update of the rows `index` (of all ranks' batches in a data-parallel run);
        rows of unselected samples stay unchanged."""
        if _data_parallel():
            gate = torch.ones_like(index, dtype=v_s.dtype) if gate is None else gate
            index, v_s, v_t, gate = _gather_rows(index, v_s.detach(), v_t.detach(), gate)
        for memory, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
            old = memory[index]
            new = F.normalize(old * self.momentum + v.detach() * (1 - self.momentum), dim=1)
            if gate is not None:
                g = gate.to(new.dtype).unsqueeze(1)
                new = g * new + (1 - g) * old
            memory.index_copy_(0, index, new.to(memory.dtype))


def nce_per_anchor(scores: torch.Tensor, num_samples: int) -> torch.Tensor:
    """NCE loss per anchor [B] (CRD Eq. 18): -log h(pos) - sum_k log(1 - h(neg_k)),
    h(x) = x / (x + K / N), with the benchmark's eps."""
    k_noise = (scores.shape[1] - 1) / num_samples  # K * Pn, Pn = 1 / N
    log_pos = torch.log(scores[:, 0] / (scores[:, 0] + k_noise + NCE_EPS))
    log_neg = torch.log(k_noise / (scores[:, 1:] + k_noise + NCE_EPS)).sum(1)
    return -(log_pos + log_neg)
