"""What the next trial samples: a search over declared ranges, or a Fig. 4 grid.

A plan gives the parameter distributions (passed to `study.ask`, so a claimed trial carries
its values from the start) and the sampler for the next trial, or None when the study has
all the trials it should. Both decisions happen under the study lock (see budget.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, PartialFixedSampler, RandomSampler
from optuna.trial import FrozenTrial

from sakd.config import GridConfig, Params, SearchSpaceConfig
from sakd.spots import list_tau_schedules
from sakd.tuning.hyperparams import HYPERPARAMS, NUMERIC, Value, base_values
from sakd.tuning.samplers import create_sampler


class TrialPlan(Protocol):
    mode: str

    def distributions(self) -> dict[str, BaseDistribution]: ...

    def next_sampler(self, counted: Sequence[FrozenTrial], number: int) -> BaseSampler | None:
        """The sampler for trial `number`, or None when the study is done."""
        ...


@dataclass(frozen=True)
class SearchPlan:
    """Up to `n_trials` trials drawn by `sampler` from the declared ranges."""

    space: SearchSpaceConfig
    n_trials: int
    sampler: str
    seed: int
    mode: str = "search"

    def distributions(self) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {}
        for name in NUMERIC:
            rng = getattr(self.space, name)
            if rng.active:
                out[name] = FloatDistribution(rng.low, rng.high, log=rng.log)
        if self.space.schedule:
            out["schedule"] = CategoricalDistribution(list(self.space.schedule))
        return out

    def next_sampler(self, counted: Sequence[FrozenTrial], number: int) -> BaseSampler | None:
        if len(counted) >= self.n_trials:
            return None
        return create_sampler(self.sampler, self.seed, number, self.n_trials)


def grid_points(grid: GridConfig, base: dict[str, Value]) -> list[dict[str, Value]]:
    """One point per listed value, every other hyper-parameter at `base` (Fig. 4's sweeps).

    Points are in declared order without repeats (the base point is shared by all sweeps).
    """
    points, seen = [], set()
    for axis in grid.swept():
        for value in getattr(grid, axis):
            point = {**base, axis: value if axis == "schedule" else float(value)}
            key = point_key(point)
            if key not in seen:
                seen.add(key)
                points.append(point)
    return points


def point_key(values: dict[str, Value]) -> tuple:
    return tuple(sorted((k, values[k]) for k in HYPERPARAMS if k in values))


@dataclass(frozen=True)
class GridPlan:
    """Every grid point once, in declared order; `n_trials` does not apply."""

    points: list[dict[str, Value]]
    seed: int
    mode: str = "grid"

    def distributions(self) -> dict[str, BaseDistribution]:
        # Float ranges may change between runs of a study; categorical choices may not, so
        # the schedule always offers every registered shape.
        out: dict[str, BaseDistribution] = {}
        for name in NUMERIC:
            values = [float(p[name]) for p in self.points]
            out[name] = FloatDistribution(min(values), max(values))
        out["schedule"] = CategoricalDistribution(list_tau_schedules())
        return out

    def next_sampler(self, counted: Sequence[FrozenTrial], number: int) -> BaseSampler | None:
        done = {point_key(t.params) for t in counted}
        for point in self.points:
            if point_key(point) not in done:
                with warnings.catch_warnings():  # "experimental" since Optuna 2.4
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    return PartialFixedSampler(point, RandomSampler(seed=self.seed + number))
        return None


def plan_for(params: Params) -> TrialPlan:
    """The plan that params.sensitivity declares (grid points around the distill values)."""
    s = params.sensitivity
    if s.mode == "grid":
        return GridPlan(grid_points(s.grid, base_values(params.distill)), s.seed)
    return SearchPlan(s.search, s.n_trials, s.sampler, s.seed)


def fixed_values(params: Params, plan: TrialPlan) -> dict[str, Value]:
    """The hyper-parameters the plan does not vary, at their distill values."""
    varied = plan.distributions()
    return {k: v for k, v in base_values(params.distill).items() if k not in varied}
