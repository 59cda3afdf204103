"""Names params.yaml takes from the distill side's registries (distillers, strategies, tau
schedules and units, policy inits, routing and teacher losses, router lr schedules).

Each is checked against its registry when validated, so a new registered component is a valid
name without editing the schema. They live apart from sakd.schema because checking them imports
distiller and spot code: only the stages that distill validate them.
"""

from __future__ import annotations

from typing import Annotated

from sakd.schema.base import registry_name


def _distillers() -> list[str]:
    from sakd.distillers import list_distillers

    return list_distillers()


def _strategies() -> list[str]:
    from sakd.spots import list_strategies

    return list_strategies()


def tau_schedules() -> list[str]:
    """The tau schedules in the order they are registered (the sensitivity study's default
    search list, whose order Optuna's categorical choices follow)."""
    from sakd.spots.tau import TAU_SCHEDULES

    return TAU_SCHEDULES.names(sort=False)


def _tau_units() -> list[str]:
    from sakd.spots.tau import TAU_UNITS

    return list(TAU_UNITS)


def _policy_inits() -> list[str]:
    from sakd.spots.policy import list_policy_init_choices

    return list_policy_init_choices()


def _routing_losses() -> list[str]:
    from sakd.spots import list_routing_losses

    return list_routing_losses()


def _router_lr_schedules() -> list[str]:
    from sakd.spots import list_router_lr_schedules

    return list_router_lr_schedules()


def _teacher_modes() -> list[str]:
    from sakd.train.teacher_loss import TEACHER_TRAINABLE

    return list(TEACHER_TRAINABLE)


def _teacher_losses() -> list[str]:
    from sakd.train.teacher_loss import list_teacher_losses

    return list_teacher_losses()


# sakd.tuning's registries, mirrored so that validating params never imports sakd.tuning (the
# layering forbids config -> tuning); tests/test_config_values.py keeps them equal.
PRUNER_NAMES = ("hyperband", "median", "none", "successive_halving")
SAMPLER_NAMES = ("gp", "qmc", "random", "tpe")

DistillerName = Annotated[str, registry_name("distiller", _distillers)]
StrategyName = Annotated[str, registry_name("strategy", _strategies)]
TauScheduleName = Annotated[str, registry_name("tau schedule", tau_schedules)]
TauUnit = Annotated[str, registry_name("tau unit", _tau_units)]
PolicyInitName = Annotated[str, registry_name("policy init", _policy_inits)]
RoutingLossName = Annotated[str, registry_name("routing loss", _routing_losses)]
RouterLrScheduleName = Annotated[str, registry_name("router lr schedule", _router_lr_schedules)]
TeacherMode = Annotated[str, registry_name("teacher mode", _teacher_modes)]
TeacherLossName = Annotated[str, registry_name("teacher loss", _teacher_losses)]
PrunerName = Annotated[str, registry_name("pruner", lambda: PRUNER_NAMES)]
SamplerName = Annotated[str, registry_name("sampler", lambda: SAMPLER_NAMES)]
