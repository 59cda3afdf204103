"""Typed, validated configuration: the schema of params.yaml.

Every section is a frozen dataclass; `load_params(dict)` checks unknown keys, types, values and
cross-references (a pair's teacher must be pretrained, names must exist in their registries) and
raises `ConfigError` naming the key. Paper values live in configs/*.yaml presets; the defaults
here are the paper's where a default makes sense.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sakd.configschema import ConfigError, from_dict, to_dict

Device = str  # "auto", "cpu", "cuda", "cuda:1", ...


def _check_choice(key: str, value: str, valid: list[str], what: str) -> None:
    if value not in valid:
        raise ConfigError(key, f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def _check_positive(key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(key, f"must be > 0, got {value}")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how it is split and loaded."""

    dataset: str = "digits"
    root: str = "data"
    split_seed: int = 0  # digits: the fixed stratified train/test split
    test_fraction: float = 0.25  # digits only
    imagenet_path: str | None = None  # imagenet: an existing ImageFolder tree (train/, val/)
    workers: int = 4  # streamed datasets (imagenet): DataLoader worker processes

    def check(self) -> None:
        from sakd.data import list_datasets

        _check_choice("dataset", self.dataset, list_datasets(), "dataset")
        if not 0 < self.test_fraction < 1:
            raise ConfigError("test_fraction", f"must be in (0, 1), got {self.test_fraction}")
        if self.workers < 0:
            raise ConfigError("workers", f"must be >= 0, got {self.workers}")


@dataclass(frozen=True)
class Schedule:
    """SGD with a multi-step learning-rate decay (the paper: 240 epochs, x0.1 at 150/180/210)."""

    epochs: int = 240
    batch_size: int = 64
    lr: float = 0.05
    lr_by_arch: dict[str, float] = field(
        default_factory=lambda: {"mobilenetv2": 0.01, "shufflenetv1": 0.01}
    )
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [150, 180, 210])
    lr_decay: float = 0.1

    def lr_for(self, arch: str) -> float:
        """The initial learning rate of `arch` (MobileNetV2/ShuffleNetV1 use 0.01 in the paper)."""
        return self.lr_by_arch.get(arch, self.lr)

    def check(self) -> None:
        from sakd.models import list_models

        if self.epochs < 1:
            raise ConfigError("epochs", f"must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ConfigError("batch_size", f"must be >= 2, got {self.batch_size}")
        _check_positive("lr", self.lr)
        for arch, lr in self.lr_by_arch.items():
            _check_choice(f"lr_by_arch.{arch}", arch, list_models(), "model")
            _check_positive(f"lr_by_arch.{arch}", lr)
        if not 0 <= self.momentum < 1:
            raise ConfigError("momentum", f"must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.milestones != sorted(set(self.milestones)) or any(
            not 0 < m < self.epochs for m in self.milestones
        ):
            raise ConfigError(
                "milestones",
                f"must be strictly increasing epochs in (0, epochs={self.epochs}), "
                f"got {self.milestones}",
            )
        if not 0 < self.lr_decay <= 1:
            raise ConfigError("lr_decay", f"must be in (0, 1], got {self.lr_decay}")


@dataclass(frozen=True)
class PretrainConfig(Schedule):
    """Supervised training of every teacher and of every student alone (the paper's S row)."""

    seed: int = 0


@dataclass(frozen=True)
class Pair:
    teacher: str
    student: str

    @property
    def name(self) -> str:
        return f"{self.teacher}-{self.student}"

    def check(self) -> None:
        from sakd.models import list_models

        _check_choice("teacher", self.teacher, list_models(), "model")
        _check_choice("student", self.student, list_models(), "model")


@dataclass(frozen=True)
class TauConfig:
    """Gumbel-softmax temperature: decays from tau0 to tau_min over the run (paper: from 5)."""

    schedule: str = "exponential"
    tau0: float = 5.0
    tau_min: float = 0.5
    per: Literal["epoch", "step"] = "epoch"

    def check(self) -> None:
        from sakd.spots import list_tau_schedules

        _check_choice("schedule", self.schedule, list_tau_schedules(), "tau schedule")
        _check_positive("tau0", self.tau0)
        _check_positive("tau_min", self.tau_min)
        if self.tau_min > self.tau0:
            raise ConfigError("tau_min", f"must be <= tau0 ({self.tau0}), got {self.tau_min}")


@dataclass(frozen=True)
class CRDConfig:
    """CRD (CIFAR settings of the CRD paper); nce_k is capped to the dataset size minus one."""

    nce_k: int = 16384
    feat_dim: int = 128
    nce_t: float = 0.07
    nce_momentum: float = 0.5

    def check(self) -> None:
        for key in ("nce_k", "feat_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be >= 1, got {getattr(self, key)}")
        _check_positive("nce_t", self.nce_t)
        if not 0 <= self.nce_momentum < 1:
            raise ConfigError("nce_momentum", f"must be in [0, 1), got {self.nce_momentum}")


@dataclass(frozen=True)
class FTConfig:
    """FT's paraphraser is pretrained on the teacher's map before distillation (30 epochs)."""

    pretrain_epochs: int = 30

    def check(self) -> None:
        if self.pretrain_epochs < 0:
            raise ConfigError("pretrain_epochs", f"must be >= 0, got {self.pretrain_epochs}")


@dataclass(frozen=True)
class DistillConfig(Schedule):
    """How every distillation run trains: the schedule and SAKD's settings (Eq. 7)."""

    beta1: float = 1.0  # weight of KD (KL) at the logit spot
    beta2: dict[str, float] = field(default_factory=dict)  # per distiller; default Table II
    beta3: float = 1.0  # weight of the routing loss
    kd_T: float = 4.0
    tau: TauConfig = field(default_factory=TauConfig)
    policy_init: Literal["neutral", "distill"] = "neutral"
    routing_loss: Literal["paper", "reference"] = "paper"
    gamma: float = 1.0  # routing_loss: reference only
    teacher_trainable: Literal["frozen", "scratch", "pretrained"] = "frozen"
    router_lr_ratio: float = 0.5
    router_weight_decay: float = 1e-3
    crd: CRDConfig = field(default_factory=CRDConfig)
    ft: FTConfig = field(default_factory=FTConfig)
    decision_grid: int = 32  # validation images in the Fig. 5-style decision grid artifact

    def beta2_for(self, distiller: str) -> float:
        from sakd.distillers import default_beta

        return self.beta2.get(distiller, default_beta(distiller))

    def check(self) -> None:
        super().check()
        from sakd.distillers import list_distillers

        for name, beta in self.beta2.items():
            _check_choice(f"beta2.{name}", name, list_distillers(), "distiller")
            if beta < 0:
                raise ConfigError(f"beta2.{name}", f"must be >= 0, got {beta}")
        for key in ("beta1", "beta3"):
            if getattr(self, key) < 0:
                raise ConfigError(key, f"must be >= 0, got {getattr(self, key)}")
        for key in ("kd_T", "gamma", "router_lr_ratio"):
            _check_positive(key, getattr(self, key))
        if self.decision_grid < 0:
            raise ConfigError("decision_grid", f"must be >= 0, got {self.decision_grid}")


@dataclass(frozen=True)
class RunsConfig:
    """What runs: pretrain list and distill matrix (pairs x distillers x strategies x seeds).

    Kept apart from the training settings so adding a distiller re-runs only the new stages.
    """

    pretrain: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    distillers: list[str] = field(default_factory=lambda: ["kd"])
    strategies: list[str] = field(default_factory=lambda: ["adaptive", "always"])
    seeds: list[int] = field(default_factory=lambda: [0])

    def check(self) -> None:
        from sakd.distillers import list_distillers
        from sakd.models import list_models
        from sakd.spots import list_strategies

        if not self.pretrain:
            raise ConfigError("pretrain", "list at least one architecture to pretrain")
        if len(set(self.pretrain)) != len(self.pretrain):
            raise ConfigError("pretrain", f"duplicate architectures in {self.pretrain}")
        if not self.pairs:
            raise ConfigError("pairs", "list at least one {teacher, student} pair")
        for key, names, valid, what in (
            ("pretrain", self.pretrain, list_models(), "model"),
            ("distillers", self.distillers, list_distillers(), "distiller"),
            ("strategies", self.strategies, list_strategies(), "strategy"),
        ):
            if not names:
                raise ConfigError(key, f"list at least one {what}")
            for i, name in enumerate(names):
                _check_choice(f"{key}[{i}]", name, valid, what)
        if not self.seeds:
            raise ConfigError("seeds", "list at least one seed")
        for i, pair in enumerate(self.pairs):
            for role in ("teacher", "student"):
                arch = getattr(pair, role)
                if arch not in self.pretrain:
                    raise ConfigError(
                        f"pairs[{i}].{role}",
                        f"{arch!r} is not in runs.pretrain {self.pretrain}: the {role} must be "
                        f"pretrained (teachers) or trained alone (students: the paper's S row)",
                    )


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how tensors run. `auto` picks CUDA when present."""

    device: Device = "auto"
    channels_last: bool = True  # measured faster on CPU (sakd bench) and preferred for bf16
    autocast: bool = True  # bf16 autocast on CUDA only; ignored on CPU
    compile: bool = False
    deterministic: bool = True
    threads: int = 0  # CPU threads for torch; 0 = torch's default (one per core)

    def check(self) -> None:
        if self.threads < 0:
            raise ConfigError("threads", f"must be >= 0, got {self.threads}")
        if self.device != "auto" and not self.device.startswith(("cpu", "cuda", "mps")):
            raise ConfigError("device", f"expected auto, cpu, cuda[:N] or mps, got {self.device!r}")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow. uri None = sqlite:///<repo>/mlflow.db; the MLFLOW_TRACKING_URI env var wins."""

    uri: str | None = None
    experiment_prefix: str = "sakd"


SCHEDULES_ALL = ["constant", "linear", "exponential", "cosine"]


@dataclass(frozen=True)
class FloatRange:
    """A continuous search range; `log` samples it evenly on a log scale (beta3).

    null in params.yaml (no low/high) means "not searched": the distill value is used.
    """

    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def active(self) -> bool:
        return self.low is not None

    def check(self) -> None:
        if (self.low is None) != (self.high is None):
            raise ConfigError("high" if self.high is None else "low",
                              "give both low and high (or null to keep the distill value)")
        if self.low is None or self.high is None:
            return
        if not self.low < self.high:
            raise ConfigError(
                "high", f"must be > low ({self.low}), got {self.high}: the range is empty or "
                "inverted (to fix a value, set the key to null: the distill value is used)"
            )
        if self.log and not self.low > 0:
            raise ConfigError("low", f"must be > 0 for a log range, got {self.low}")


def _check_schedule_names(key: str, names: list[str] | None) -> None:
    if names is None:
        return
    from sakd.spots import list_tau_schedules

    if not names:
        raise ConfigError(key, "list at least one tau schedule (or null to keep distill's)")
    if len(set(names)) != len(names):
        raise ConfigError(key, f"duplicate schedules in {names}")
    for i, name in enumerate(names):
        _check_choice(f"{key}[{i}]", name, list_tau_schedules(), "tau schedule")


@dataclass(frozen=True)
class SearchSpaceConfig:
    """What the Optuna search varies; a key set to null keeps the distill config's value."""

    beta3: FloatRange = field(default_factory=lambda: FloatRange(0.1, 10.0, log=True))
    tau0: FloatRange = field(default_factory=lambda: FloatRange(1.0, 10.0))
    tau_min: FloatRange = field(default_factory=lambda: FloatRange(0.1, 1.0))
    schedule: list[str] | None = field(default_factory=lambda: list(SCHEDULES_ALL))

    def check(self) -> None:
        for key in ("tau0", "tau_min"):
            rng = getattr(self, key)
            if rng.active and not rng.low > 0:
                raise ConfigError(f"{key}.low", f"a temperature must be > 0, got {rng.low}")
        if self.beta3.active and self.beta3.low < 0:
            raise ConfigError("beta3.low", f"must be >= 0, got {self.beta3.low}")
        _check_schedule_names("schedule", self.schedule)
        if self.tau0.active and self.tau_min.active and self.tau_min.high > self.tau0.low:
            raise ConfigError(
                "tau_min.high",
                f"must be <= tau0.low ({self.tau0.low}), got {self.tau_min.high}: every sampled "
                "schedule must decay (tau_min <= tau0)",
            )

    def searched(self) -> list[str]:
        """Names of the hyper-parameters this space varies, in a fixed order."""
        ranges = [k for k in ("beta3", "tau0", "tau_min") if getattr(self, k).active]
        return ranges + (["schedule"] if self.schedule else [])


@dataclass(frozen=True)
class GridConfig:
    """Fig. 4-style sweeps: each listed value is run with every other hyper-parameter at its
    distill value (one hyper-parameter at a time, not the Cartesian product)."""

    beta3: list[float] | None = field(default_factory=lambda: [0.1, 0.5, 1.0, 2.0, 5.0])
    tau0: list[float] | None = field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0])
    tau_min: list[float] | None = None
    schedule: list[str] | None = None

    def check(self) -> None:
        for key in ("beta3", "tau0", "tau_min"):
            values = getattr(self, key)
            if values is None:
                continue
            if not values:
                raise ConfigError(key, "list at least one value (or null to not sweep it)")
            low = 0.0 if key == "beta3" else None
            for i, v in enumerate(values):
                if (low is not None and v < low) or (low is None and not v > 0):
                    bound = ">= 0" if key == "beta3" else "> 0"
                    raise ConfigError(f"{key}[{i}]", f"must be {bound}, got {v}")
        _check_schedule_names("schedule", self.schedule)

    def swept(self) -> list[str]:
        return [k for k in ("beta3", "tau0", "tau_min", "schedule") if getattr(self, k)]


@dataclass(frozen=True)
class TunePair:
    """The teacher -> student pair the study distills; null (both unset): runs.pairs[0]."""

    teacher: str | None = None
    student: str | None = None

    def check(self) -> None:
        if (self.teacher is None) != (self.student is None):
            raise ConfigError("student" if self.student is None else "teacher",
                              "give both teacher and student (or null: the first of runs.pairs)")
        if self.teacher is not None and self.student is not None:
            Pair(self.teacher, self.student).check()


@dataclass(frozen=True)
class PrunerConfig:
    """Stop unpromising search trials on their per-epoch validation top-1 (a grid runs every
    point in full)."""

    kind: str = "median"  # median | successive_halving | hyperband | none
    n_startup_trials: int = 3  # median: finished trials before any pruning
    n_warmup_steps: int = 1  # median: epochs a trial always runs before it may be pruned

    def check(self) -> None:
        from sakd.tuning.pruners import list_pruners

        _check_choice("kind", self.kind, list_pruners(), "pruner")
        for key in ("n_startup_trials", "n_warmup_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(key, f"must be >= 0, got {getattr(self, key)}")


@dataclass(frozen=True)
class SensitivityConfig:
    """The Optuna study over beta3 and the tau schedule (Fig. 4): objective = validation top-1
    of a shortened adaptive distillation of `pair` with `distiller`."""

    mode: Literal["search", "grid"] = "search"
    pair: TunePair = field(default_factory=lambda: TunePair())  # null: first of runs.pairs
    distiller: str = "kd"
    epochs: int = 2  # per trial (the LR milestones of distill are scaled to it)
    n_trials: int = 6  # search: finished trials in total (complete, pruned or failed)
    seed: int = 0  # training seed of every trial; samplers are seeded from it
    sampler: str = "tpe"
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    search: SearchSpaceConfig = field(default_factory=SearchSpaceConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    storage: str = "sqlite:///optuna.db"  # SAKD_OPTUNA_STORAGE or --storage override it
    study_name: str | None = None  # null: derived from dataset, pair, distiller and settings
    workers: int = 1  # processes on this machine
    baseline: bool = True  # also train the `always` strategy once: Fig. 4's dashed line

    def check(self) -> None:
        from sakd.distillers import list_distillers
        from sakd.tuning.samplers import list_samplers
        from sakd.tuning.urls import check_storage_url

        _check_choice("distiller", self.distiller, list_distillers(), "distiller")
        _check_choice("sampler", self.sampler, list_samplers(), "sampler")
        for key in ("epochs", "n_trials", "workers"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be >= 1, got {getattr(self, key)}")
        if self.study_name is not None and not self.study_name.strip():
            raise ConfigError("study_name", "must not be empty (null derives a name)")
        problem = check_storage_url(self.storage)
        if problem:
            raise ConfigError("storage", problem)
        if self.mode == "search" and not self.search.searched():
            raise ConfigError("search", "search at least one of beta3, tau0, tau_min, schedule")
        if self.mode == "grid" and not self.grid.swept():
            raise ConfigError("grid", "list values for at least one of beta3, tau0, tau_min, "
                              "schedule")

    def resolved_pair(self, runs: RunsConfig) -> Pair:
        if self.pair.teacher is None or self.pair.student is None:
            return runs.pairs[0]
        return Pair(self.pair.teacher, self.pair.student)

    def check_against(self, runs: RunsConfig, distill: DistillConfig) -> None:
        """Cross-section rules: the teacher is pretrained; every trial's tau schedule decays."""
        try:
            self._check_against(runs, distill)
        except ConfigError as err:
            raise err.under("sensitivity") from None

    def _check_against(self, runs: RunsConfig, distill: DistillConfig) -> None:
        if self.pair.teacher is not None and self.pair.teacher not in runs.pretrain:
            raise ConfigError(
                "pair.teacher", f"{self.pair.teacher!r} is not in runs.pretrain {runs.pretrain}"
            )
        tau0, tau_min = distill.tau.tau0, distill.tau.tau_min
        if self.mode == "search":
            s = self.search
            if s.tau0.active and not s.tau_min.active and s.tau0.low < tau_min:
                raise ConfigError("search.tau0.low", f"must be >= distill.tau.tau_min "
                                  f"({tau_min}), got {s.tau0.low}")
            if s.tau_min.active and not s.tau0.active and s.tau_min.high > tau0:
                raise ConfigError("search.tau_min.high", f"must be <= distill.tau.tau0 "
                                  f"({tau0}), got {s.tau_min.high}")
        else:
            for i, v in enumerate(self.grid.tau0 or []):
                if v < tau_min:
                    raise ConfigError(f"grid.tau0[{i}]", f"must be >= distill.tau.tau_min "
                                      f"({tau_min}), got {v}")
            for i, v in enumerate(self.grid.tau_min or []):
                if v > tau0:
                    raise ConfigError(f"grid.tau_min[{i}]", f"must be <= distill.tau.tau0 "
                                      f"({tau0}), got {v}")


@dataclass(frozen=True)
class Params:
    """The whole params.yaml."""

    data: DataConfig = field(default_factory=DataConfig)
    runs: RunsConfig = field(default_factory=RunsConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sensitivity: SensitivityConfig = field(default_factory=lambda: SensitivityConfig())

    def check(self) -> None:
        self.sensitivity.check_against(self.runs, self.distill)


def load_params(data: dict[str, Any]) -> Params:
    """Validate a params.yaml mapping. Raises ConfigError naming the bad key."""
    return from_dict(Params, data)


def config_hash(*parts: Any) -> str:
    """A short stable hash of config objects (for run tags and resume safety)."""
    blob = json.dumps([to_dict(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
