"""The sections of params.yaml that say what is distilled and how: the runs matrix, the SAKD
settings and the tau schedule. Their names are checked against the distill-side registries
(sakd.config.names), so only the stages that distill validate them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sakd.config.names import (
    DistillerName,
    PolicyInitName,
    RouterLrScheduleName,
    RoutingLossName,
    StrategyName,
    TauScheduleName,
    TauUnit,
    TeacherLossName,
    TeacherMode,
)
from sakd.schema.base import ConfigModel, Count, Decay, Seed, Temperature, Weight, non_empty
from sakd.schema.errors import ConfigError, Problem, config_error, join_key
from sakd.schema.sections import Pair, Schedule
from sakd.schema.stages import PretrainRuns


class TauConfig(ConfigModel):
    """Gumbel-softmax temperature: decays from tau0 to tau_min over the run (paper: from 5)."""

    schedule: TauScheduleName = "exponential"
    tau0: Temperature = 5.0
    tau_min: Temperature = 0.5
    per: TauUnit = "epoch"

    @model_validator(mode="after")
    def _decays(self) -> TauConfig:
        from sakd.spots.tau import tau_bounds_problem

        problem = tau_bounds_problem(self.tau0, self.tau_min)
        if problem:
            raise ConfigError(*problem)
        return self


Gamma = Annotated[float, Field(gt=0, le=1e6)]
"""The authors' routing-loss (and co-trained CE) factor: 2 for some distillers, else 1."""


def _gamma_mapping(value: Any) -> Any:
    """A single number (the older form) is the default of every distiller."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"default": value}
    return value


def _gamma_keys(gamma: dict[str, float]) -> dict[str, float]:
    from sakd.distillers import list_distillers

    valid = ["default", *list_distillers()]
    problems: list[Problem] = [(k, f"unknown key; valid: {', '.join(valid)}")
                               for k in gamma if k not in valid]
    if problems:
        raise ConfigError("", problems=problems)
    return gamma


def _distiller_options(options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each distiller's options checked against its declared Options (defaults filled in)."""
    from sakd.distillers import list_distillers
    from sakd.distillers.options import options_model

    problems: list[Problem] = []
    checked = {}
    for name, values in options.items():
        if name not in list_distillers():
            problems.append((name, f"unknown distiller; valid: {', '.join(list_distillers())}"))
            continue
        model = options_model(name)
        try:
            checked[name] = model.model_validate(values).model_dump()
        except ValidationError as err:
            problems += config_error(err, model, name).problems
    if problems:
        raise ConfigError("", problems=problems)
    return checked


class DistillConfig(Schedule):
    """How every distillation run trains: the schedule and SAKD's settings (Eq. 7)."""

    beta1: Weight = 1.0  # weight of KD (KL) at the logit spot
    beta2: dict[DistillerName, Weight] = Field(default_factory=dict)  # default Table II
    beta3: Weight = 1.0  # weight of the routing loss
    kd_T: Temperature = 4.0
    tau: TauConfig = Field(default_factory=TauConfig)
    policy_init: PolicyInitName = "neutral"  # auto: +10 on same family
    routing_loss: RoutingLossName = "paper"
    # routing_loss reference, teacher_loss all: {default: g, <distiller>: g}; a number = default
    gamma: dict[str, Gamma] = Field(default_factory=lambda: {"default": 1.0})
    teacher_trainable: TeacherMode = "frozen"
    teacher_loss: TeacherLossName = "own_ce"  # a trained teacher learns from: ...
    router_lr_ratio: Annotated[float, Field(gt=0, le=1e3)] = 0.5
    # the router's lr per epoch (sakd.spots.router_lr): follow_student | authors_trainable_teacher
    router_lr_schedule: RouterLrScheduleName = "follow_student"
    router_weight_decay: Decay = 1e-3
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # distill.options.crd...
    decision_grid: Count = 32  # validation images in the Fig. 5-style decision grid artifact

    hash_neutral_defaults: ClassVar[dict[str, Any]] = {
        **Schedule.hash_neutral_defaults, "router_lr_schedule": "follow_student"}

    _check_options = field_validator("options")(_distiller_options)
    _gamma_mapping = field_validator("gamma", mode="before")(_gamma_mapping)
    _gamma_keys = field_validator("gamma")(_gamma_keys)

    def beta2_for(self, distiller: Any) -> float:
        """beta2 of a distiller (a registered name, or a Distiller or its class): its
        distill.beta2 entry, else its Table II default. The one home of the rule (the builder
        asks it for the run's distiller)."""
        from sakd.distillers import default_beta

        if isinstance(distiller, str):
            return self.beta2.get(distiller, default_beta(distiller))
        return self.beta2.get(distiller.name, float(distiller.default_beta))

    def gamma_for(self, distiller: str) -> float:
        """gamma of `distiller`: its own entry, else `default` (else 1, the authors' value for
        every distiller they do not list)."""
        return self.gamma.get(distiller, self.gamma.get("default", 1.0))

    def options_for(self, distiller: str) -> BaseModel:
        """`distiller`'s declared options: params' values over the declared defaults."""
        from sakd.distillers.options import options_model

        return options_model(distiller).model_validate(self.options.get(distiller, {}))


class RunsConfig(PretrainRuns):
    """What runs: pretrain list and distill matrix (pairs x distillers x strategies x seeds).

    Kept apart from the training settings so adding a distiller re-runs only the new stages.
    """

    model_config = ConfigDict(extra="forbid")  # the whole section: every key is known here
    pairs: list[Pair] = Field(default_factory=list)
    distillers: list[DistillerName] = Field(default_factory=lambda: ["kd"])
    strategies: list[StrategyName] = Field(default_factory=lambda: ["adaptive", "always"])
    seeds: list[Seed] = Field(default_factory=lambda: [0])

    _pairs = field_validator("pairs")(non_empty("{teacher, student} pair"))
    _distillers = field_validator("distillers")(non_empty("distiller"))
    _strategies = field_validator("strategies")(non_empty("strategy"))
    _seeds = field_validator("seeds")(non_empty("seed"))

    @model_validator(mode="after")
    def _pairs_pretrained(self) -> RunsConfig:
        problems = [
            (join_key(f"pairs[{i}]", role), f"{arch!r} is not in runs.pretrain {self.pretrain}: "
             f"the {role} must be pretrained (teachers) or trained alone (students: the "
             "paper's S row)")
            for i, pair in enumerate(self.pairs)
            for role, arch in (("teacher", pair.teacher), ("student", pair.student))
            if arch not in self.pretrain
        ]
        if problems:
            raise ConfigError("", problems=problems)
        return self
