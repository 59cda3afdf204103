"""The multi-path routing network (Eq. 3-4; Algorithm 1, lines 30-43).

Teacher and student run segment by segment between the branch spots (the distiller's spots).
At branch spot i, with per-sample decision w_i in {0, 1} (1 = teacher = distill):

    next student input = (1 - w_i) * f_s + w_i * H_ts(f_t)
    next teacher input = (1 - w_i) * H_st(f_s) + w_i * f_t

and the output mixes the two heads with the logit decision: (1 - w) logits_s + w logits_t.

Only the adapters (and, through w, the policy) learn from this pass: the networks' weights are
frozen while it runs (no weight gradient is computed for them) and both networks run in eval
mode (running BN statistics, none updated; Algorithm 1 line 32); every mode and requires_grad
flag is restored afterwards. Nothing trainable precedes the first branch spot, so that segment
runs without autograd, and the caller may hand in the teacher's output there from its own
eval-mode forward to skip recomputing it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from sakd.layers import build_adapter
from sakd.models.base import SpotNet


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode; restore each submodule's own mode on exit."""
    saved = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for m, training in saved:
            m.training = training


def example_features(nets: Sequence[SpotNet], x: torch.Tensor) -> list[list[torch.Tensor]]:
    """Features of each net for a probe batch `x`, in eval mode under no_grad (no BN update):
    what the policy, the adapters and the distillers are sized from."""
    with torch.no_grad(), eval_mode(*nets):
        return [net(x, return_features=True)[0] for net in nets]


@contextmanager
def frozen_weights(*modules: nn.Module) -> Iterator[None]:
    """Temporarily turn requires_grad off on every parameter (autograd records no weight use)."""
    saved = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def _per_sample(w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a [B] weight over a feature of any rank."""
    return w.view(-1, *([1] * (like.dim() - 1)))


def mix(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(1 - w) * a + w * b in one fused pass (torch.lerp), exactly a at w = 0 and b at w = 1;
    the gradients are those of the written-out form (1 - w, w, and b - a for w). Computed in
    the widest dtype of the three, as the written-out form would be (bf16 maps, float32 w)."""
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), w.dtype)
    return torch.lerp(a.to(dtype), b.to(dtype), w.to(dtype))


class RoutingNetwork(nn.Module):
    """The adapters of the routing network plus the segment-by-segment forward."""

    def __init__(self, spots: Sequence[int], to_teacher: Sequence[nn.Module],
                 to_student: Sequence[nn.Module]) -> None:
        super().__init__()
        spots = list(spots)
        if spots != sorted(set(spots)):
            raise ValueError(f"branch spots must be increasing feature indices, got {spots}")
        if not len(spots) == len(to_teacher) == len(to_student):
            raise ValueError("one H_st and one H_ts adapter per branch spot")
        self.spots = spots
        self.to_teacher = nn.ModuleList(to_teacher)  # H_st: student feature -> teacher input
        self.to_student = nn.ModuleList(to_student)  # H_ts: teacher feature -> student input

    @classmethod
    def from_examples(cls, spots: Sequence[int], feats_s: Sequence[torch.Tensor],
                      feats_t: Sequence[torch.Tensor], *,
                      relu: tuple[bool, bool] = (True, True)) -> RoutingNetwork:
        """Adapters sized from example features of both nets, on their device and dtype.
        `relu`: whether the adapters into (the student, the teacher) end with a ReLU (the nets'
        `relu_maps`: off into a vision transformer's signed maps)."""
        relu_s, relu_t = relu
        to_teacher = [build_adapter(feats_s[k].shape, feats_t[k].shape, relu_t) for k in spots]
        to_student = [build_adapter(feats_t[k].shape, feats_s[k].shape, relu_s) for k in spots]
        net = cls(spots, to_teacher, to_student)
        return net.to(device=feats_s[0].device, dtype=feats_s[0].dtype)

    def forward(
        self,
        student: SpotNet,
        teacher: SpotNet,
        x: torch.Tensor,
        w: torch.Tensor,
        teacher_first: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Routed logits for decisions w [B, len(spots) + 1] (logit decision last).

        `teacher_first`: the teacher's eval-mode output at the first branch spot (its logits if
        there is no branch spot) for this x, to reuse instead of recomputing.
        """
        with eval_mode(student, teacher), frozen_weights(student, teacher):
            return self._route(student, teacher, x, w, teacher_first)

    def _route(self, student, teacher, x, w, teacher_first):
        # segment i runs stages[starts[i]:stops[i]] and ends at branch spot i (or the logits)
        stops = [k + 1 for k in self.spots] + [len(student.stages)]
        starts = [0, *stops[:-1]]
        with torch.no_grad():  # nothing before the first branch spot can learn from this pass
            h_s = student.run_stages(x, 0, stops[0])
            h_t = teacher.run_stages(x, 0, stops[0]) if teacher_first is None else teacher_first
        for i, (h_st, h_ts) in enumerate(zip(self.to_teacher, self.to_student, strict=True)):
            w_s, w_t = _per_sample(w[:, i], h_s), _per_sample(w[:, i], h_t)
            in_s = mix(h_s, h_ts(h_t), w_s)
            in_t = mix(h_st(h_s), h_t, w_t)
            h_s = student.run_stages(in_s, starts[i + 1], stops[i + 1])
            h_t = teacher.run_stages(in_t, starts[i + 1], stops[i + 1])
        return mix(h_s, h_t, w[:, -1:])
