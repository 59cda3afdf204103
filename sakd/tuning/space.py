"""What a trial varies and how it is drawn: beta3 (Eq. 7) and the Gumbel temperature schedule
(tau0, tau_min, shape), as search ranges or Fig. 4 grid points from params.yaml.

Kept beside Optuna because: the space comes from params.yaml (not `trial.suggest_*` calls),
so a claimed trial carries its values from `study.ask`; a grid sweeps one hyper-parameter at
a time around the distill values (Optuna's GridSampler takes the Cartesian product); and the
sampler is seeded per trial (study seed + trial number), so parallel workers never draw the
same point while one worker replays exactly. Anything not varied keeps the distill value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna.pruners as P
import optuna.samplers as S
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial

from sakd.config import (
    DistillConfig,
    GridConfig,
    Params,
    SearchSpaceConfig,
    SensitivityConfig,
    replace,
)
from sakd.spots import list_tau_schedules

Value = float | str

# name -> (read from a DistillConfig, write into one)
_FIELDS: dict[str, tuple[Callable[[DistillConfig], Value],
                         Callable[[DistillConfig, Value], DistillConfig]]] = {
    "beta3": (lambda c: c.beta3, lambda c, v: replace(c, beta3=float(v))),
    "tau0": (lambda c: c.tau.tau0, lambda c, v: replace(c, tau=replace(c.tau, tau0=float(v)))),
    "tau_min": (lambda c: c.tau.tau_min,
                lambda c, v: replace(c, tau=replace(c.tau, tau_min=float(v)))),
    "schedule": (lambda c: c.tau.schedule,
                 lambda c, v: replace(c, tau=replace(c.tau, schedule=str(v)))),
}
HYPERPARAMS: tuple[str, ...] = tuple(_FIELDS)
NUMERIC: tuple[str, ...] = ("beta3", "tau0", "tau_min")
LABELS = {"beta3": "β3 (routing-loss weight)", "tau0": "τ0 (initial Gumbel temperature)",
          "tau_min": "τ_min (final Gumbel temperature)", "schedule": "τ schedule"}


def base_values(cfg: DistillConfig) -> dict[str, Value]:
    """The distill section's value of every tuned hyper-parameter (Fig. 4's fixed point)."""
    return {name: get(cfg) for name, (get, _) in _FIELDS.items()}


def scale_milestones(milestones: list[int], from_epochs: int, to_epochs: int) -> list[int]:
    """LR decay epochs of a `from_epochs` run moved to the same fractions of a shorter run."""
    scaled = {round(m * to_epochs / from_epochs) for m in milestones}
    return sorted(m for m in scaled if 0 < m < to_epochs)


def trial_config(base: DistillConfig, values: Mapping[str, Value], epochs: int) -> DistillConfig:
    """`base` with a trial's values and length; raises ConfigError on an invalid schedule."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise KeyError(f"unknown hyper-parameters {unknown}; tuned: {', '.join(HYPERPARAMS)}")
    cfg = base
    for name, value in values.items():
        cfg = _FIELDS[name][1](cfg, value)
    cfg.tau.check()  # tau_min <= tau0, known schedule
    return replace(cfg, epochs=epochs,
                   milestones=scale_milestones(base.milestones, base.epochs, epochs))


def _startup(n_trials: int) -> int:
    """Random trials before a model-based sampler takes over: a third of a small study."""
    return max(2, min(10, n_trials // 3))


# name -> (study seed + trial number, study seed, n_trials) -> the sampler of that one trial.
# QMC's sequence needs one fixed seed (its position comes from the study); the schedule is
# categorical, drawn by its independent sampler. TPE keeps Optuna's constant_liar default.
SAMPLERS: dict[str, Callable[[int, int, int], S.BaseSampler]] = {
    "tpe": lambda s, seed, n: S.TPESampler(seed=s, n_startup_trials=_startup(n)),
    "random": lambda s, seed, n: S.RandomSampler(seed=s),
    "qmc": lambda s, seed, n: S.QMCSampler(seed=seed, scramble=True,
                                           independent_sampler=S.RandomSampler(seed=s),
                                           warn_independent_sampling=False),
    "gp": lambda s, seed, n: S.GPSampler(seed=s, n_startup_trials=_startup(n)),
}
# name -> (pruner section, epochs per trial) -> an Optuna pruner over per-epoch val top-1
PRUNERS: dict[str, Callable[[Any, int], P.BasePruner]] = {
    "median": lambda p, epochs: P.MedianPruner(n_startup_trials=p.n_startup_trials,
                                               n_warmup_steps=p.n_warmup_steps),
    "successive_halving": lambda p, epochs: P.SuccessiveHalvingPruner(
        min_resource=max(1, p.n_warmup_steps), reduction_factor=2),
    "hyperband": lambda p, epochs: P.HyperbandPruner(
        min_resource=max(1, min(p.n_warmup_steps, epochs)), max_resource=epochs,
        reduction_factor=2),
    "none": lambda p, epochs: P.NopPruner(),
}


def create_sampler(name: str, seed: int, trial_number: int, n_trials: int) -> S.BaseSampler:
    """The sampler that draws trial `trial_number` of a study of `n_trials`."""
    with warnings.catch_warnings():  # QMC and GP are stable in use, "experimental" in name
        warnings.simplefilter("ignore", ExperimentalWarning)
        return SAMPLERS[name](seed + trial_number, seed, n_trials)


def create_pruner(s: SensitivityConfig) -> P.BasePruner:
    """The configured pruner (steps = epochs) for a search; a grid runs every point in full."""
    return PRUNERS[s.pruner.kind](s.pruner, s.epochs) if s.mode == "search" else P.NopPruner()


@dataclass(frozen=True)
class SearchPlan:
    """Up to `n_trials` trials drawn by `sampler` from the declared ranges."""

    space: SearchSpaceConfig
    n_trials: int
    sampler: str
    seed: int

    def distributions(self) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {
            name: FloatDistribution(rng.low, rng.high, log=rng.log)
            for name in NUMERIC if (rng := getattr(self.space, name)).active}
        if self.space.schedule:
            out["schedule"] = CategoricalDistribution(list(self.space.schedule))
        return out

    def next_sampler(self, counted: Sequence[FrozenTrial], number: int) -> S.BaseSampler | None:
        """The sampler for trial `number`, or None when the study is done."""
        if len(counted) >= self.n_trials:
            return None
        return create_sampler(self.sampler, self.seed, number, self.n_trials)


def grid_points(grid: GridConfig, base: dict[str, Value]) -> list[dict[str, Value]]:
    """One point per listed value, every other hyper-parameter at `base` (Fig. 4's sweeps), in
    declared order without repeats (the base point is shared by all sweeps)."""
    points: dict[tuple, dict[str, Value]] = {}
    for axis in grid.swept():
        for value in getattr(grid, axis):
            point = {**base, axis: value if axis == "schedule" else float(value)}
            points.setdefault(point_key(point), point)
    return list(points.values())


def point_key(values: Mapping[str, Value]) -> tuple:
    return tuple(sorted((k, values[k]) for k in HYPERPARAMS if k in values))


@dataclass(frozen=True)
class GridPlan:
    """Every grid point once, in declared order; `n_trials` does not apply."""

    points: list[dict[str, Value]]
    seed: int

    def distributions(self) -> dict[str, BaseDistribution]:
        # Float ranges may change between runs of a study; categorical choices may not, so
        # the schedule always offers every registered shape.
        out: dict[str, BaseDistribution] = {
            name: FloatDistribution(min(v := [float(p[name]) for p in self.points]), max(v))
            for name in NUMERIC}
        out["schedule"] = CategoricalDistribution(list_tau_schedules())
        return out

    def next_sampler(self, counted: Sequence[FrozenTrial], number: int) -> S.BaseSampler | None:
        done = {point_key(t.params) for t in counted}
        point = next((p for p in self.points if point_key(p) not in done), None)
        if point is None:
            return None
        with warnings.catch_warnings():  # "experimental" since Optuna 2.4
            warnings.simplefilter("ignore", ExperimentalWarning)
            return S.PartialFixedSampler(point, S.RandomSampler(seed=self.seed + number))


TrialPlan = SearchPlan | GridPlan


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
