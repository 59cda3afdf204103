"""How a model runs on its device: memory format, torch.compile, bf16 autocast, fused optimisers.

One place for the runtime knobs so training stages and `sakd bench` place models the same way.
Measured on CPU (docs/bench.md): channels_last makes the CIFAR ResNets' steps ~15% faster;
torch.compile makes them slower (keep it off there; on CUDA, measure with `sakd bench`); bf16
autocast is applied on CUDA only.
"""

from __future__ import annotations

import torch
from torch import nn


def autocast_enabled(requested: bool, device: torch.device | str) -> bool:
    """bf16 autocast is applied on CUDA only (CPUs without bf16 units run it slower)."""
    return bool(requested) and torch.device(device).type == "cuda"


def place_model(
    model: nn.Module,
    device: torch.device | str,
    *,
    channels_last: bool = False,
    compile: bool = False,
) -> nn.Module:
    """Move `model` to `device` (channels_last for 4-D weights if asked); compile it in place.

    Compilation is per module in place (`nn.Module.compile`): parameters, state_dict keys and
    the module's identity are unchanged, so checkpoints and optimisers see the same model. A
    SpotNet has each of its stages compiled, which covers both the whole forward and the
    segment-by-segment runs of the routing network.
    """
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        allow_recompiles()
        stages = getattr(model, "stages", None)
        for part in stages if stages is not None else [model]:
            part.compile()
    return model


COMPILE_RECOMPILE_LIMIT = 64


def allow_recompiles() -> None:
    """Every stage that is an nn.Sequential shares one code object, so dynamo keeps one cache
    entry per stage, network and mode (train, eval, eval with frozen weights) under it; the
    default limit of 8 would silently send the later stages back to eager mode."""
    import torch._dynamo.config as dynamo_config

    limit = max(dynamo_config.recompile_limit, COMPILE_RECOMPILE_LIMIT)
    dynamo_config.recompile_limit = limit


FUSED_OPTIMIZER: dict[str, dict[str, bool]] = {"cuda": {"fused": True}}
"""Optimiser keyword arguments per device type for `runtime.fused_optimizer`: one fused kernel
per step on CUDA, else the multi-tensor (foreach) path: a few kernels instead of one per
parameter tensor."""


def optimizer_kwargs(fused: bool, device: torch.device | str) -> dict[str, bool]:
    """Keyword arguments for a torch optimiser: {} (torch's default) unless `fused`."""
    if not fused:
        return {}
    return FUSED_OPTIMIZER.get(torch.device(device).type, {"foreach": True})


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-D batch in channels_last layout when asked (other ranks are returned unchanged)."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python and torch; on CPU the run is then bit-reproducible."""
    import random

    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


def unique_parameters(*modules: nn.Module | None) -> list[nn.Parameter]:
    """The parameters of `modules` (None skipped), each once, in order (one optimiser must not
    step a shared parameter twice)."""
    params = [p for m in modules if m is not None for p in m.parameters()]
    return list({id(p): p for p in params}.values())
