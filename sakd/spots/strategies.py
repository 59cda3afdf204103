"""Distillation strategies: which samples are distilled at which spots (Table VII).

A strategy turns the policy's hard decisions (or nothing) into the distill mask d [B, S+1]:
one 0/1 column per candidate spot, the logit spot last. `uses_policy` says whether the step
must run the policy, the routing pass and the routing loss; `needs_teacher` whether the teacher
forward is needed for the student's losses at all.

- adaptive: SAKD, d = the policy's decisions.
- always:   standard distillation, every spot for every sample ("Stan.").
- anti:     the complement of the policy's decisions; the policy, routing pass and routing
            loss are unchanged (REFERENCE-NOTES, "anti").
- random:   each sample and spot independently with p = 0.5, redrawn every step.
- never:    no distillation ("S" rows); the teacher is not run.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from sakd.registry import Registry


class Strategy:
    """Base class. Subclasses implement `distill_mask`."""

    name: ClassVar[str]
    uses_policy: ClassVar[bool] = False
    needs_teacher: ClassVar[bool] = True

    def distill_mask(
        self,
        decisions: torch.Tensor | None,
        shape: tuple[int, int],
        device: torch.device,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Float 0/1 mask of `shape` = (B, S+1); `decisions` (detached) when uses_policy."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


STRATEGIES: Registry[Strategy] = Registry("strategy")


def _register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES.register(cls.name)(cls)
    return cls


def _require(decisions: torch.Tensor | None, name: str) -> torch.Tensor:
    if decisions is None:
        raise ValueError(f"strategy {name!r} needs the policy's decisions")
    return decisions


@_register
class Adaptive(Strategy):
    name = "adaptive"
    uses_policy = True

    def distill_mask(self, decisions, shape, device, generator=None):
        return _require(decisions, self.name)


@_register
class Anti(Strategy):
    name = "anti"
    uses_policy = True

    def distill_mask(self, decisions, shape, device, generator=None):
        return 1.0 - _require(decisions, self.name)


@_register
class Always(Strategy):
    name = "always"

    def distill_mask(self, decisions, shape, device, generator=None):
        return torch.ones(shape, device=device)


@_register
class Random(Strategy):
    name = "random"
    probability: ClassVar[float] = 0.5

    def distill_mask(self, decisions, shape, device, generator=None):
        draw = torch.rand(shape, generator=generator, device=device)
        return (draw < self.probability).float()


@_register
class Never(Strategy):
    name = "never"
    needs_teacher = False

    def distill_mask(self, decisions, shape, device, generator=None):
        return torch.zeros(shape, device=device)


def create_strategy(name: str) -> Strategy:
    """A strategy by name; unknown names raise UnknownNameError listing the valid ones."""
    return STRATEGIES.create(name)


def list_strategies() -> list[str]:
    return STRATEGIES.names()
