"""Names params.yaml takes from the distill side's registries (distillers, strategies, tau
schedules and units, policy inits, routing and teacher losses, router lr schedules).

Each is checked against its registry when validated, so a new registered component is a valid
name without editing the schema. They live apart from sakd.schema because checking them imports
distiller and spot code: only the stages that distill validate them.
"""

from __future__ import annotations

from typing import Annotated

from sakd.schema.base import registered_name, registry_name


def tau_schedules() -> list[str]:
    """The tau schedules in the order they are registered (the sensitivity study's default
    search list, whose order Optuna's categorical choices follow)."""
    from sakd.spots.tau import TAU_SCHEDULES

    return TAU_SCHEDULES.names(sort=False)


# sakd.tuning's registries, mirrored so that validating params never imports sakd.tuning (the
# layering forbids config -> tuning); tests/test_config_values.py keeps them equal.
PRUNER_NAMES = ("hyperband", "median", "none", "successive_halving")
SAMPLER_NAMES = ("gp", "qmc", "random", "tpe")

DistillerName = registered_name("distiller", "sakd.distillers", "list_distillers")
StrategyName = registered_name("strategy", "sakd.spots", "list_strategies")
TauScheduleName = Annotated[str, registry_name("tau schedule", tau_schedules)]
TauUnit = registered_name("tau unit", "sakd.spots.tau", "TAU_UNITS")
PolicyInitName = registered_name("policy init", "sakd.spots.policy", "list_policy_init_choices")
RoutingLossName = registered_name("routing loss", "sakd.spots", "list_routing_losses")
RouterLrScheduleName = registered_name("router lr schedule", "sakd.spots",
                                       "list_router_lr_schedules")
TeacherMode = registered_name("teacher mode", "sakd.train.teacher_loss", "TEACHER_TRAINABLE")
TeacherLossName = registered_name("teacher loss", "sakd.train.teacher_loss",
                                  "list_teacher_losses")
PrunerName = Annotated[str, registry_name("pruner", lambda: PRUNER_NAMES)]
SamplerName = Annotated[str, registry_name("sampler", lambda: SAMPLER_NAMES)]
