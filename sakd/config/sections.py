"""The sections of params.yaml that say what runs and how it trains.

Paper values live in configs/*.yaml presets; the defaults here are the paper's where a default
makes sense.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from sakd.config.base import (
    ConfigModel,
    Count,
    DatasetName,
    Decay,
    Device,
    DistillerName,
    Epochs,
    Fraction,
    LearningRate,
    ModelName,
    RelativeRoot,
    RouterLrScheduleName,
    Seed,
    StrategyName,
    TauScheduleName,
    Temperature,
    Weight,
    Workers,
    unique,
)
from sakd.config.errors import ConfigError, Problem, config_error, join_key


class GlyphsConfig(ConfigModel):
    """How the generated `glyphs` benchmark is drawn (docs/benchmark.md)."""

    train_per_class: Annotated[int, Field(ge=2, le=100_000)] = 80  # before the val split
    test_per_class: Annotated[int, Field(ge=1, le=100_000)] = 50
    generation_seed: Seed = 0  # the images themselves (split_seed only picks the val rows)


class DataConfig(ConfigModel):
    """Which dataset, where it lives, and how it is split and loaded."""

    dataset: DatasetName = "digits"
    root: RelativeRoot = "data"  # inside the repository: DVC tracks it
    split_seed: Seed = 0  # the fixed stratified splits: val (all datasets), test (digits)
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25  # digits only
    # held out of the training data for validation (stratified, fixed by split_seed): tuning,
    # pruning and best-epoch selection read it; the official test split stays the test split
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    imagenet_path: str | None = None  # imagenet: an existing ImageFolder tree (train/, val/)
    workers: Workers = 4  # streamed datasets (imagenet): DataLoader worker processes
    glyphs: GlyphsConfig = GlyphsConfig()  # glyphs only: how it is generated

    def dataset_options(self) -> dict[str, Any]:
        """The chosen dataset's own options (what fetch_dataset / build_loaders take)."""
        keys = DATASET_OPTION_KEYS.get(self.dataset, {})
        return {option: _lookup(self, key) for option, key in keys.items()}

    @model_serializer(mode="wrap")
    def _only_used_sections(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out the options of datasets not in use: they shape no run, so a run's params
        hash (and MLflow params) stay what they were before such a section existed."""
        data = handler(self)
        for name in SECTION_OF_DATASET:
            if name != self.dataset:
                data.pop(name, None)
        return data


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


SECTION_OF_DATASET = ("glyphs",)
"""data.<name> sections that belong to one dataset (dumped only when it is the one used)."""


DATASET_OPTION_KEYS: dict[str, dict[str, str]] = {
    "digits": {"test_fraction": "test_fraction", "split_seed": "split_seed"},
    "imagenet": {"path": "imagenet_path"},
    "glyphs": {option: f"glyphs.{option}" for option in GlyphsConfig.model_fields},
}
"""Per dataset: its loader option -> the data.* key that sets it."""


class Schedule(ConfigModel):
    """SGD with a multi-step learning-rate decay (the paper: 240 epochs, x0.1 at 150/180/210)."""

    epochs: Epochs = 240
    batch_size: Annotated[int, Field(ge=2, le=1_000_000)] = 64
    lr: LearningRate = 0.05
    lr_by_arch: dict[ModelName, LearningRate] = Field(
        default_factory=lambda: {"mobilenetv2": 0.01, "shufflenetv1": 0.01}
    )
    momentum: Fraction = 0.9
    weight_decay: Decay = 5e-4
    milestones: list[Epochs] = Field(default_factory=lambda: [150, 180, 210])
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 0.1

    def lr_for(self, arch: str) -> float:
        """The initial learning rate of `arch` (MobileNetV2/ShuffleNetV1 use 0.01 in the paper)."""
        return self.lr_by_arch.get(arch, self.lr)

    @model_validator(mode="after")
    def _milestones_inside(self) -> Schedule:
        if self.milestones != sorted(set(self.milestones)) or any(
            m >= self.epochs for m in self.milestones
        ):
            raise ConfigError("milestones", f"must be strictly increasing epochs in (0, epochs="
                              f"{self.epochs}), got {self.milestones}")
        return self


class PretrainConfig(Schedule):
    """Supervised training of every teacher and of every student alone (the paper's S row)."""

    seed: Seed = 0


class Pair(ConfigModel):
    teacher: ModelName
    student: ModelName

    @property
    def name(self) -> str:
        return f"{self.teacher}-{self.student}"


class TauConfig(ConfigModel):
    """Gumbel-softmax temperature: decays from tau0 to tau_min over the run (paper: from 5)."""

    schedule: TauScheduleName = "exponential"
    tau0: Temperature = 5.0
    tau_min: Temperature = 0.5
    per: Literal["epoch", "step"] = "epoch"

    @model_validator(mode="after")
    def _decays(self) -> TauConfig:
        if self.tau_min > self.tau0:
            raise ConfigError("tau_min", f"must be <= tau0 ({self.tau0}), got {self.tau_min}")
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
    policy_init: Literal["neutral", "distill", "auto"] = "neutral"  # auto: +10 on same family
    routing_loss: Literal["paper", "reference"] = "paper"
    # routing_loss reference, teacher_loss all: {default: g, <distiller>: g}; a number = default
    gamma: dict[str, Gamma] = Field(default_factory=lambda: {"default": 1.0})
    teacher_trainable: Literal["frozen", "scratch", "pretrained"] = "frozen"
    teacher_loss: Literal["own_ce", "all"] = "own_ce"  # a trained teacher learns from: ...
    router_lr_ratio: Annotated[float, Field(gt=0, le=1e3)] = 0.5
    # the router's lr per epoch (sakd.spots.router_lr): follow_student | authors_trainable_teacher
    router_lr_schedule: RouterLrScheduleName = "follow_student"
    router_weight_decay: Decay = 1e-3
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # distill.options.crd...
    decision_grid: Count = 32  # validation images in the Fig. 5-style decision grid artifact

    hash_neutral_defaults: ClassVar[dict[str, Any]] = {"router_lr_schedule": "follow_student"}

    _check_options = field_validator("options")(_distiller_options)
    _gamma_mapping = field_validator("gamma", mode="before")(_gamma_mapping)
    _gamma_keys = field_validator("gamma")(_gamma_keys)

    def beta2_for(self, distiller: str) -> float:
        from sakd.distillers import default_beta

        return self.beta2.get(distiller, default_beta(distiller))

    def gamma_for(self, distiller: str) -> float:
        """gamma of `distiller`: its own entry, else `default` (else 1, the authors' value for
        every distiller they do not list)."""
        return self.gamma.get(distiller, self.gamma.get("default", 1.0))

    def options_for(self, distiller: str) -> BaseModel:
        """`distiller`'s declared options: params' values over the declared defaults."""
        from sakd.distillers.options import options_model

        return options_model(distiller).model_validate(self.options.get(distiller, {}))


def _non_empty(what: str) -> Any:
    def check(names: list[Any]) -> list[Any]:
        if not names:
            raise ValueError(f"list at least one {what}")
        return names

    return check


class RunsConfig(ConfigModel):
    """What runs: pretrain list and distill matrix (pairs x distillers x strategies x seeds).

    Kept apart from the training settings so adding a distiller re-runs only the new stages.
    """

    pretrain: list[ModelName] = Field(default_factory=list)
    pairs: list[Pair] = Field(default_factory=list)
    distillers: list[DistillerName] = Field(default_factory=lambda: ["kd"])
    strategies: list[StrategyName] = Field(default_factory=lambda: ["adaptive", "always"])
    seeds: list[Seed] = Field(default_factory=lambda: [0])

    _pretrain = field_validator("pretrain")(lambda v: unique("architectures", _non_empty(
        "architecture to pretrain")(v)))
    _pairs = field_validator("pairs")(_non_empty("{teacher, student} pair"))
    _distillers = field_validator("distillers")(_non_empty("distiller"))
    _strategies = field_validator("strategies")(_non_empty("strategy"))
    _seeds = field_validator("seeds")(_non_empty("seed"))

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


class RuntimeConfig(ConfigModel):
    """Where and how tensors run. `auto` picks CUDA when present."""

    device: Device = "auto"  # auto | cpu | cuda | cuda:N | mps
    channels_last: bool = False  # NHWC: faster, but less accurate on CPU (docs/precision.md)
    autocast: bool = False  # fp32 as the paper; True: bf16 on CUDA (a speed option)
    compile: bool = False
    deterministic: bool = True
    threads: Annotated[int, Field(ge=0, le=4096)] = 0  # CPU threads; 0 = torch's default
    # the launch-bound fast path (docs/bench.md); off by default: not faster on CPU
    capture: bool = False  # torch.compile of the whole distillation step (CUDA graphs on CUDA)
    fused_optimizer: bool = False  # fused SGD on CUDA, foreach (multi-tensor) SGD elsewhere
    nproc: Annotated[int, Field(ge=1, le=1024)] = 1  # > 1: pretrain/distill relaunch via torchrun

    @model_validator(mode="after")
    def _one_compile(self) -> RuntimeConfig:
        if self.capture and self.compile:
            raise ConfigError("capture", "capture compiles the whole distillation step; "
                              "set runtime.compile: false with it (each stage compiled twice)")
        return self


class TrackingConfig(ConfigModel):
    """MLflow. uri None = sqlite:///<repo>/mlflow.db; the MLFLOW_TRACKING_URI env var wins."""

    uri: str | None = None
    experiment_prefix: Annotated[str, Field(min_length=1)] = "sakd"
    system_metrics: bool = False  # MLflow's CPU/memory/GPU sampling per run (a thread; slower)
    timeout_s: Annotated[float, Field(gt=0)] = 60.0  # a silent HTTP server: give up (seconds)
