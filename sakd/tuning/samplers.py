"""Optuna samplers by name (`sensitivity.sampler`).

A factory builds the sampler for ONE trial, seeded from the study seed and the number of the
trial it will sample: parallel workers (processes or machines) then never draw the same point,
and a single-worker study replays exactly. QMC is the exception: its low-discrepancy sequence
needs one fixed seed (the position in the sequence comes from the study itself).
Optuna is imported inside the factories so that validating params.yaml stays fast.
"""

from __future__ import annotations

import warnings
from typing import Any

from sakd.registry import Registry

SAMPLERS: Registry[Any] = Registry("sampler")


def startup_trials(n_trials: int) -> int:
    """Random trials before a model-based sampler takes over: a third of a small study."""
    return max(2, min(10, n_trials // 3))


@SAMPLERS.register("tpe")
def _tpe(seed: int, trial_number: int, n_trials: int):
    from optuna.samplers import TPESampler

    # constant_liar (Optuna's default) keeps parallel workers away from each other's points.
    return TPESampler(seed=seed + trial_number, n_startup_trials=startup_trials(n_trials))


@SAMPLERS.register("random")
def _random(seed: int, trial_number: int, n_trials: int):
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed + trial_number)


@SAMPLERS.register("qmc")
def _qmc(seed: int, trial_number: int, n_trials: int):
    from optuna.samplers import QMCSampler, RandomSampler

    return QMCSampler(
        seed=seed, scramble=True, independent_sampler=RandomSampler(seed=seed + trial_number),
        warn_independent_sampling=False,  # the schedule is categorical: sampled at random
    )


@SAMPLERS.register("gp")
def _gp(seed: int, trial_number: int, n_trials: int):
    from optuna.samplers import GPSampler

    return GPSampler(seed=seed + trial_number, n_startup_trials=startup_trials(n_trials))


def list_samplers() -> list[str]:
    return SAMPLERS.names()


def create_sampler(name: str, seed: int, trial_number: int, n_trials: int):
    """The sampler that draws trial `trial_number` of a study of `n_trials`."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():  # QMC and GP are stable in use, "experimental" in name
        warnings.simplefilter("ignore", ExperimentalWarning)
        return SAMPLERS.create(name, seed, trial_number, n_trials)
