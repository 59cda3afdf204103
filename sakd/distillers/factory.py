"""The distiller registry: params.yaml names a method by a plain string.

    distiller = create_distiller("crd", feats_s, feats_t, labels=train_labels)

`feats_s` / `feats_t` are example feature lists from a probe forward of the student and the
teacher; every shape a method needs (channels, map sizes, embedding widths) is read off them.

Options: each method accepts exactly its own keyword options (`distiller_options(name)`); an
option that does not apply to the chosen method raises a ValueError naming the accepted ones,
so a misspelt or misplaced setting never passes silently. A caller that holds settings for
several methods passes only `distiller_options(name)` of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from sakd.distillers.base import Distiller, resolve_spots
from sakd.registry import Registry

DISTILLERS: Registry[Distiller] = Registry("distiller")


def register_distiller(name: str) -> Callable[[type[Distiller]], type[Distiller]]:
    """Class decorator: make a Distiller subclass available as `name` (sets `cls.name`)."""

    def decorator(cls: type[Distiller]) -> type[Distiller]:
        cls.name = name
        DISTILLERS.register(name)(cls)
        return cls

    return decorator


def list_distillers() -> list[str]:
    """All registered method names, sorted."""
    return DISTILLERS.names()


def default_beta(name: str) -> float:
    """beta2 of Table II for a method (the weight of its feature loss; 0 for plain KD)."""
    return float(_distiller_class(name).default_beta)


def distiller_options(name: str) -> list[str]:
    """The keyword options `create_distiller(name, ...)` accepts, sorted."""
    cls = _distiller_class(name)
    # the first builder in the chain from_features -> from_spots -> __init__ that does not
    # just pass **options on declares them
    for builder in (cls.from_features, cls.from_spots, cls.__init__):
        params = inspect.signature(builder).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return sorted(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def create_distiller(
    name: str, feats_s: list[torch.Tensor], feats_t: list[torch.Tensor], **options
) -> Distiller:
    """Build method `name` for a student/teacher pair, on the device of the example features."""
    cls = _distiller_class(name)
    _check_features(cls, feats_s, feats_t)
    unknown = sorted(set(options) - set(distiller_options(name)))
    if unknown:
        accepted = ", ".join(distiller_options(name)) or "none"
        raise ValueError(f"distiller {name!r} does not take option(s) {', '.join(unknown)}; "
                         f"it accepts: {accepted}")
    return cls.from_features(feats_s, feats_t, **options).to(feats_s[0].device)


def _distiller_class(name: str) -> type[Distiller]:
    return DISTILLERS.get(name)  # type: ignore[return-value]


def _check_features(
    cls: type[Distiller], feats_s: list[torch.Tensor], feats_t: list[torch.Tensor]
) -> None:
    """Fail early when the pair cannot host the method's spots (Table I)."""
    if not feats_s or len(feats_s) != len(feats_t):
        raise ValueError(f"{cls.name}: student and teacher must have the same (non-zero) number "
                         f"of features, got {len(feats_s)} and {len(feats_t)}")
    spots = resolve_spots(cls.spot_rule, len(feats_s))
    if cls.spot_rule != "none" and (not spots or not all(0 <= i < len(feats_s) for i in spots)):
        raise ValueError(f"{cls.name}: spot rule {cls.spot_rule!r} gives spots {spots}, which a "
                         f"network with {len(feats_s)} features does not have")
    if cls.needs_maps:
        for i in spots:
            for side, f in (("student", feats_s[i]), ("teacher", feats_t[i])):
                if f.dim() != 4:
                    raise ValueError(f"{cls.name}: needs feature maps [B, C, H, W] at feature "
                                     f"{i}; the {side}'s has shape {list(f.shape)}")
