"""Eval-mode views of a SpotNet with every BatchNorm that follows a convolution folded into it.

In eval mode a BatchNorm is a fixed per-channel affine map, so conv -> BN is one convolution
with scaled weights and a bias: the same function, without BN's pass over the activations
forwards and backwards. The routing pass runs both networks in eval mode with frozen weights,
and a frozen teacher's first forward is in eval mode too, so both use these views (measured
~10% of the routing pass on CPU: docs/bench.md).

A view shares every other module (so their weights and modes) with its network. The folded
convolutions are plain copies without autograd history: no gradient ever reaches the network's
weights through a view. `refresh()` recomputes them from the live conv and BN tensors when any
of those changed, so the view always matches its network. It notices changes by tensor version
counters (optimiser steps, load_state_dict); a train-mode forward updates running_mean/var in
place without bumping their versions (torch 2.14 CPU), so BN's num_batches_tracked, which every
such forward increments, is watched too. The check reads the versions of tensors collected when
the view is built (~0.5 us a tensor; reading them through the modules costs 20x more), so build
the view after moving the network to its device. Results equal the unfolded network's up to
float rounding. A stage torch.fx cannot trace runs unfolded.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from sakd.models.base import SpotNet

Fold = tuple[nn.Conv2d, nn.Conv2d, nn.BatchNorm2d]  # (folded copy, source conv, source BN)


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and bn.track_running_stats
        and bn.running_mean is not None
        and conv.out_channels == bn.num_features
    )


def fold_stage(stage: nn.Module) -> tuple[nn.Module, list[Fold]]:
    """A traced copy of `stage` with conv -> BN pairs replaced by folded convolutions.

    Valid in eval mode only. Returns the stage itself (and no folds) when it has nothing to
    fold or cannot be traced.
    """
    if not any(isinstance(m, nn.BatchNorm2d) for m in stage.modules()):
        return stage, []
    try:
        traced = fx.symbolic_trace(stage)  # leaf modules are shared, not copied
    except Exception:  # any tracing limitation: the unfolded stage is always correct
        return stage, []
    modules = dict(traced.named_modules())
    folds: list[Fold] = []
    for node in list(traced.graph.nodes):
        source = node.args[0] if node.op == "call_module" and node.args else None
        if not (isinstance(source, fx.Node) and source.op == "call_module"
                and len(source.users) == 1):
            continue
        conv, bn = modules.get(source.target), modules.get(node.target)  # folds are new
        if not _foldable(conv, bn):
            continue
        folded = _folded_copy(conv)
        name = f"folded_{len(folds)}"
        traced.add_submodule(name, folded)
        with traced.graph.inserting_after(node):
            replacement = traced.graph.call_module(name, source.args, source.kwargs)
        node.replace_all_uses_with(replacement)
        traced.graph.erase_node(node)
        traced.graph.erase_node(source)
        folds.append((folded, conv, bn))
    if not folds:
        return stage, []
    traced.graph.lint()
    traced.recompile()
    if getattr(stage, "_compiled_call_impl", None) is not None:
        traced.compile()  # the network was compiled in place (sakd.train.runtime)
    return traced, folds


def _folded_copy(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of conv (same layout, stride, groups ...) with a bias; values set by refresh."""
    with torch.no_grad():
        folded = copy.deepcopy(conv)
        if folded.bias is None:
            folded.bias = nn.Parameter(conv.weight.new_zeros(conv.out_channels))
    return folded.requires_grad_(False)


class EvalFoldedNet(SpotNet):
    """An eval-mode view of `net` (see the module docstring); call `refresh()` before use."""

    def __init__(self, net: SpotNet) -> None:
        super().__init__()
        stages, self._folds = [], []
        for stage in net.stages:
            folded, folds = fold_stage(stage)
            stages.append(folded)
            self._folds += folds
        self.stages = nn.ModuleList(stages)
        self._sources = [t for _, conv, bn in self._folds for t in _tensors(conv, bn)]
        self._seen: list[int] | None = None

    @property
    def num_folds(self) -> int:
        return len(self._folds)

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the folded weights (in place) if any source tensor changed since the last
        call. A captured step runs it eagerly (the version counters change every step): see
        sakd.train.capture."""
        versions = [t._version for t in self._sources]
        if versions == self._seen:
            return
        for folded, conv, bn in self._folds:
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale
            if bn.bias is not None:
                shift = shift + bn.bias
            if conv.bias is not None:
                shift = shift + conv.bias * scale
            folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype))
            folded.bias.copy_(shift)
        self._seen = [t._version for t in self._sources]


def _tensors(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> list[torch.Tensor]:
    """The tensors a fold is computed from, plus BN's batch counter (see the module docstring)."""
    candidates = (conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                  bn.num_batches_tracked)
    return [t for t in candidates if t is not None]
