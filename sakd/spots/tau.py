"""Gumbel-softmax temperature (tau) schedules: from tau0 down to tau_min over the run.

The paper starts tau at 5 and lets it "decay gradually" without saying how, so the shape is a
choice: constant (the authors' code: fixed at tau0), linear, exponential (geometric) or cosine.

A schedule is unit-agnostic: `make_tau_schedule(kind, tau0, tau_min, total)` returns
`tau(t)` for t = 0 .. total-1, with tau(0) = tau0 and tau(total-1) = tau_min (a one-point run stays
at tau0); t outside that range is clamped. The caller picks the unit (`per` in the config):
- per epoch (default): total = number of epochs, t = epoch index (0-based), set once per epoch;
- per step: total = epochs * steps_per_epoch, t = global iteration index (0-based).
`tau_total` computes `total` for either unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sakd.registry import Registry

TauShape = Callable[[float, float, float], float]
"""(progress in [0, 1], tau0, tau_min) -> tau."""

TAU_SCHEDULES: Registry[float] = Registry("tau schedule")
TAU_UNITS: dict[str, Callable[[int, int], int]] = {
    "epoch": lambda epochs, steps_per_epoch: epochs,
    "step": lambda epochs, steps_per_epoch: epochs * steps_per_epoch,
}
"""How many schedule points a run has, per update unit (`per` in the config)."""


@TAU_SCHEDULES.register("constant")
def _constant(progress: float, tau0: float, tau_min: float) -> float:
    return tau0


@TAU_SCHEDULES.register("linear")
def _linear(progress: float, tau0: float, tau_min: float) -> float:
    return tau0 + (tau_min - tau0) * progress


@TAU_SCHEDULES.register("exponential")
def _exponential(progress: float, tau0: float, tau_min: float) -> float:
    return tau0 * (tau_min / tau0) ** progress


@TAU_SCHEDULES.register("cosine")
def _cosine(progress: float, tau0: float, tau_min: float) -> float:
    return tau_min + 0.5 * (tau0 - tau_min) * (1.0 + math.cos(math.pi * progress))


def list_tau_schedules() -> list[str]:
    """Names accepted by `make_tau_schedule`."""
    return TAU_SCHEDULES.names()


def tau_bounds_problem(
    tau0: float | None, tau_min: float | None, *,
    names: tuple[str, str] = ("tau0", "tau_min"), fault: str = "tau_min",
) -> tuple[str, str] | None:
    """(the key at fault, why) when a schedule from `tau0` down to `tau_min` breaks the bounds,
    else None. The one home of the rule: both temperatures > 0 and tau_min <= tau0 (every
    schedule decays); make_tau_schedule, the distill.tau section and the sensitivity study's
    search space and grid (sakd.config) all ask it.

    A None temperature is not given: only the other one's sign is checked. `names` are the keys
    the message names; `fault` ("tau0" or "tau_min") is the one blamed for a rising schedule
    (the other is the fixed one).
    """
    name0, name_min = names
    for name, value in ((name0, tau0), (name_min, tau_min)):
        if value is not None and not value > 0:
            return name, f"must be > 0, got {value}"
    if tau0 is None or tau_min is None or tau_min <= tau0:
        return None
    if fault == "tau0":
        return name0, f"must be >= {name_min} ({tau_min}), got {tau0}"
    return name_min, f"must be <= {name0} ({tau0}), got {tau_min}"


def _check(tau0: float, tau_min: float, total: int) -> None:
    problem = tau_bounds_problem(tau0, tau_min)
    if problem:
        raise ValueError(" ".join(problem))
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"total (epochs or steps of the run) must be an int >= 1, got {total!r}")


def make_tau_schedule(kind: str, tau0: float, tau_min: float, total: int) -> Callable[[int], float]:
    """tau(t) for t = 0 .. total-1: tau0 at the first epoch/step, tau_min at the last.

    Every shape is monotone non-increasing. Unknown `kind` raises UnknownNameError listing the
    valid ones; tau_min > tau0, non-positive temperatures or total < 1 raise ValueError.
    """
    shape = TAU_SCHEDULES.get(kind)
    _check(tau0, tau_min, total)
    last = max(total - 1, 1)

    def tau(t: int) -> float:
        progress = min(max(t, 0), last) / last
        return float(shape(progress, tau0, tau_min))

    return tau


def tau_total(per: str, epochs: int, steps_per_epoch: int) -> int:
    """`total` for `make_tau_schedule` when tau is updated per epoch or per step."""
    if per not in TAU_UNITS:
        raise ValueError(f"tau schedule unit must be one of {', '.join(TAU_UNITS)}; got {per!r}")
    return TAU_UNITS[per](epochs, steps_per_epoch)


class TauClock:
    """Where tau is decayed during a run: the run's position on its schedule.

    Per epoch, `start_epoch` sets tau once per epoch; per step, `tick` gives the temperature of
    each iteration in turn. The position is recomputed from the epoch at every epoch start, so a
    resumed run continues on the same curve without storing anything.
    """

    def __init__(self, schedule: Callable[[int], float], per: str, steps_per_epoch: int) -> None:
        if per not in TAU_UNITS:
            raise ValueError(f"tau unit must be one of {', '.join(TAU_UNITS)}; got {per!r}")
        self.schedule, self.per, self.steps_per_epoch = schedule, per, steps_per_epoch
        self.t = 0

    @classmethod
    def constant(cls, tau: float) -> TauClock:
        """A fixed temperature (tests, benchmarks, the authors' code at 5)."""
        return cls(make_tau_schedule("constant", tau, tau, 1), "epoch", 1)

    @classmethod
    def scheduled(cls, kind: str, tau0: float, tau_min: float, per: str, epochs: int,
                  steps_per_epoch: int) -> TauClock:
        """A run's clock: schedule `kind` from tau0 to tau_min over its epochs (or steps)."""
        total = tau_total(per, epochs, steps_per_epoch)
        return cls(make_tau_schedule(kind, tau0, tau_min, total), per, steps_per_epoch)

    def start_epoch(self, epoch: int) -> float:
        """tau for the start of `epoch` (0-based)."""
        self.t = epoch * self.steps_per_epoch if self.per == "step" else epoch
        return self.schedule(self.t)

    def tick(self) -> float | None:
        """The next iteration's tau when tau moves per step; None when it moves per epoch."""
        if self.per != "step":
            return None
        tau = self.schedule(self.t)
        self.t += 1
        return tau
