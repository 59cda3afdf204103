"""Optuna pruners by name (`sensitivity.pruner.kind`): stop trials whose per-epoch validation
top-1 lags behind earlier trials at the same epoch."""

from __future__ import annotations

from typing import Any

from sakd.registry import Registry

PRUNERS: Registry[Any] = Registry("pruner")


@PRUNERS.register("median")
def _median(n_startup_trials: int, n_warmup_steps: int, epochs: int):
    from optuna.pruners import MedianPruner

    return MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)


@PRUNERS.register("successive_halving")
def _successive_halving(n_startup_trials: int, n_warmup_steps: int, epochs: int):
    from optuna.pruners import SuccessiveHalvingPruner

    return SuccessiveHalvingPruner(min_resource=max(1, n_warmup_steps), reduction_factor=2)


@PRUNERS.register("hyperband")
def _hyperband(n_startup_trials: int, n_warmup_steps: int, epochs: int):
    from optuna.pruners import HyperbandPruner

    return HyperbandPruner(
        min_resource=max(1, min(n_warmup_steps, epochs)), max_resource=epochs, reduction_factor=2
    )


@PRUNERS.register("none")
def _none(n_startup_trials: int, n_warmup_steps: int, epochs: int):
    from optuna.pruners import NopPruner

    return NopPruner()


def list_pruners() -> list[str]:
    return PRUNERS.names()


def create_pruner(kind: str, n_startup_trials: int, n_warmup_steps: int, epochs: int):
    """A pruner for trials of `epochs` epochs (steps = epochs)."""
    return PRUNERS.create(kind, n_startup_trials, n_warmup_steps, epochs)
