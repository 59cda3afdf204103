"""The `sensitivity` section: the Optuna study over beta3 and the tau schedule (Fig. 4)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sakd.config.names import (
    DistillerName,
    PrunerName,
    SamplerName,
    TauScheduleName,
    tau_schedules,
)
from sakd.config.sections import DistillConfig, RunsConfig, TauConfig
from sakd.schema.base import ConfigModel, Count, Epochs, ModelName, Seed, StorageUrl, unique
from sakd.schema.errors import ConfigError
from sakd.schema.sections import Pair

Bound = Annotated[float, Field(ge=-1e6, le=1e6)]
BaselineSeeds = Annotated[int, Field(ge=0, le=100)]
SEED_MAX = 2**32 - 1
Positive = Annotated[float, Field(gt=0, le=1e6)]


class FloatRange(ConfigModel):
    """A continuous search range; `log` samples it evenly on a log scale (beta3).

    null in params.yaml (no low/high) means "not searched": the distill value is used.
    """

    low: Bound | None = None
    high: Bound | None = None
    log: bool = False

    @property
    def active(self) -> bool:
        return self.low is not None

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if (self.low is None) != (self.high is None):
            raise ConfigError("high" if self.high is None else "low",
                              "give both low and high (or null to keep the distill value)")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ConfigError(
                "high", f"must be > low ({self.low}), got {self.high}: the range is empty or "
                "inverted (to fix a value, set the key to null: the distill value is used)"
            )
        if self.log and self.low is not None and not self.low > 0:
            raise ConfigError("low", f"must be > 0 for a log range, got {self.low}")
        return self


def _schedules(names: list[str] | None) -> list[str] | None:
    if names is not None and not names:
        raise ValueError("list at least one tau schedule (or null to keep distill's)")
    return unique("schedules", names)


class SearchSpaceConfig(ConfigModel):
    """What the Optuna search varies; a key set to null keeps the distill config's value."""

    beta3: FloatRange = Field(default_factory=lambda: FloatRange(low=0.1, high=10.0, log=True))
    tau0: FloatRange = Field(default_factory=lambda: FloatRange(low=1.0, high=10.0))
    tau_min: FloatRange = Field(default_factory=lambda: FloatRange(low=0.1, high=1.0))
    schedule: list[TauScheduleName] | None = Field(default_factory=tau_schedules)

    _schedule = field_validator("schedule")(_schedules)

    @model_validator(mode="after")
    def _decays(self) -> SearchSpaceConfig:
        """Every sampled schedule keeps the tau bounds: the lowest tau0 and tau_min > 0, the
        highest tau_min <= the lowest tau0 (sakd.spots.tau.tau_bounds_problem)."""
        from sakd.spots.tau import tau_bounds_problem

        if self.beta3.active and self.beta3.low < 0:
            raise ConfigError("beta3.low", f"must be >= 0, got {self.beta3.low}")
        tau0, tau_min = self.tau0, self.tau_min
        low0 = tau0.low if tau0.active else None
        problem = tau_bounds_problem(
            None, tau_min.low, names=("tau0.low", "tau_min.low")
        ) or tau_bounds_problem(
            low0, tau_min.high, names=("tau0.low", "tau_min.high")
        )
        if problem:
            raise ConfigError(*problem)
        return self

    def searched(self) -> list[str]:
        """Names of the hyper-parameters this space varies, in a fixed order."""
        ranges = [k for k in ("beta3", "tau0", "tau_min") if getattr(self, k).active]
        return ranges + (["schedule"] if self.schedule else [])


def _values(values: list[float] | None) -> list[float] | None:
    if values is not None and not values:
        raise ValueError("list at least one value (or null to not sweep it)")
    return values


class GridConfig(ConfigModel):
    """Fig. 4-style sweeps: each listed value is run with every other hyper-parameter at its
    distill value (one hyper-parameter at a time, not the Cartesian product)."""

    beta3: list[Annotated[float, Field(ge=0, le=1e6)]] | None = Field(
        default_factory=lambda: [0.1, 0.5, 1.0, 2.0, 5.0])
    tau0: list[Positive] | None = Field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0])
    tau_min: list[Positive] | None = None
    schedule: list[TauScheduleName] | None = None

    _numbers = field_validator("beta3", "tau0", "tau_min")(_values)
    _schedule = field_validator("schedule")(_schedules)

    def swept(self) -> list[str]:
        return [k for k in ("beta3", "tau0", "tau_min", "schedule") if getattr(self, k)]


class TunePair(ConfigModel):
    """The teacher -> student pair the study distills; null (both unset): runs.pairs[0]."""

    teacher: ModelName | None = None
    student: ModelName | None = None

    @model_validator(mode="after")
    def _both_or_none(self) -> TunePair:
        if (self.teacher is None) != (self.student is None):
            raise ConfigError("student" if self.student is None else "teacher",
                              "give both teacher and student (or null: the first of runs.pairs)")
        return self


class PrunerConfig(ConfigModel):
    """Stop unpromising search trials on their per-epoch validation top-1 (a grid runs every
    point in full)."""

    kind: PrunerName = "median"  # median | successive_halving | hyperband | none
    n_startup_trials: Count = 3  # median: finished trials before any pruning
    n_warmup_steps: Count = 1  # median: epochs a trial always runs before it may be pruned


class SensitivityConfig(ConfigModel):
    """The Optuna study over beta3 and the tau schedule (Fig. 4): objective = validation top-1
    of a shortened adaptive distillation of `pair` with `distiller`."""

    mode: Literal["search", "grid"] = "search"
    pair: TunePair = Field(default_factory=TunePair)  # null: first of runs.pairs
    distiller: DistillerName = "kd"
    epochs: Epochs = 2  # per trial (the LR milestones of distill are scaled to it)
    n_trials: Annotated[int, Field(ge=1, le=1_000_000)] = 6  # search: finished trials in total
    seed: Seed = 0  # training seed of every trial; samplers are seeded from it
    sampler: SamplerName = "tpe"
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    search: SearchSpaceConfig = Field(default_factory=SearchSpaceConfig)
    grid: GridConfig = Field(default_factory=GridConfig)
    storage: StorageUrl = "sqlite:///optuna.db"  # SAKD_OPTUNA_STORAGE or --storage override it
    study_name: str | None = None  # null: derived from dataset, pair, distiller and settings
    workers: Annotated[int, Field(ge=1, le=1024)] = 1  # processes on this machine
    # `always` trained with seeds seed, seed+1, ...: Fig. 4's dashed line (the mean) and, from
    # 2 seeds on, its noise band (mean +- 1 sample sd); 0: no baseline
    baseline_seeds: BaselineSeeds = 3

    @model_validator(mode="before")
    @classmethod
    def _renamed_baseline(cls, data: object) -> object:
        """The old `baseline: bool` would otherwise be a bare "unknown key": say what replaced
        it, so an old params.yaml is fixed in one edit."""
        if isinstance(data, dict) and "baseline" in data:
            raise ConfigError("baseline", "replaced by baseline_seeds: how many seeds the "
                              "`always` baseline is trained with (0: none, 1: the line alone, "
                              ">= 2: the line and its noise band over seeds; default 3)")
        return data

    @field_validator("study_name")
    @classmethod
    def _named(cls, name: str | None) -> str | None:
        if name is not None and not name.strip():
            raise ValueError("must not be empty (null derives a name)")
        return name

    @model_validator(mode="after")
    def _varies_something(self) -> SensitivityConfig:
        if self.mode == "search" and not self.search.searched():
            raise ConfigError("search", "search at least one of beta3, tau0, tau_min, schedule")
        if self.mode == "grid" and not self.grid.swept():
            raise ConfigError("grid", "list values for at least one of beta3, tau0, tau_min, "
                              "schedule")
        if self.seed + max(self.baseline_seeds - 1, 0) > SEED_MAX:
            raise ConfigError("baseline_seeds", f"seed ({self.seed}) + baseline_seeds - 1 "
                              f"must be <= {SEED_MAX}, got {self.seed + self.baseline_seeds - 1}")
        return self

    def baseline_seed_list(self) -> list[int]:
        """The seeds of the `always` baseline: the trials' seed first, so its first run is the
        same-seed comparison the single-seed baseline used to be."""
        return [self.seed + k for k in range(self.baseline_seeds)]

    def resolved_pair(self, runs: RunsConfig) -> Pair:
        if self.pair.teacher is None or self.pair.student is None:
            return runs.pairs[0]
        return Pair(teacher=self.pair.teacher, student=self.pair.student)

    def check_against(self, runs: RunsConfig, distill: DistillConfig) -> None:
        """Cross-section rules: the teacher is pretrained; every trial's tau schedule decays."""
        problems = [(f"sensitivity.{k}", m) for k, m in self._against(runs, distill)]
        if problems:
            raise ConfigError("", problems=problems)

    def _against(self, runs: RunsConfig, distill: DistillConfig) -> list[tuple[str, str]]:
        problems = []
        if self.pair.teacher is not None and self.pair.teacher not in runs.pretrain:
            problems.append(("pair.teacher",
                             f"{self.pair.teacher!r} is not in runs.pretrain {runs.pretrain}"))
        return problems + [p for p in self._tau_against(distill.tau) if p]

    def _tau_against(self, fixed: TauConfig) -> list[tuple[str, str] | None]:
        """A tuned tau0 (or tau_min) runs with distill's tau_min (or tau0): the tau bounds."""
        from sakd.spots.tau import tau_bounds_problem

        def tuned_tau0(key: str, value: float) -> tuple[str, str] | None:
            return tau_bounds_problem(value, fixed.tau_min, fault="tau0",
                                      names=(key, "distill.tau.tau_min"))

        def tuned_tau_min(key: str, value: float) -> tuple[str, str] | None:
            return tau_bounds_problem(fixed.tau0, value, names=("distill.tau.tau0", key))

        if self.mode == "search":
            s = self.search
            return [tuned_tau0("search.tau0.low", s.tau0.low)
                    if s.tau0.active and not s.tau_min.active else None,
                    tuned_tau_min("search.tau_min.high", s.tau_min.high)
                    if s.tau_min.active and not s.tau0.active else None]
        return ([tuned_tau0(f"grid.tau0[{i}]", v) for i, v in enumerate(self.grid.tau0 or [])]
                + [tuned_tau_min(f"grid.tau_min[{i}]", v)
                   for i, v in enumerate(self.grid.tau_min or [])])
