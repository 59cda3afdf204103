"""The sections of params.yaml every stage may read: the data, and the supervised schedule that
pretraining runs and distillation extends.

Paper values live in configs/*.yaml presets; the defaults here are the paper's where a default
makes sense.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from sakd.schema.base import (
    ConfigModel,
    DatasetName,
    Decay,
    Epochs,
    Fraction,
    LearningRate,
    ModelName,
    OptimizerName,
    RelativeRoot,
    Seed,
    Workers,
)
from sakd.schema.errors import ConfigError


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


class OptimizerRecipe(ConfigModel):
    """An architecture's own optimiser in place of the schedule's SGD (lr, momentum,
    weight_decay): vision transformers train with AdamW and a warm-up. The schedule's
    milestones and lr_decay still apply, after `warmup_epochs` of linear warm-up."""

    name: OptimizerName
    lr: LearningRate
    weight_decay: Decay = 0.0
    momentum: Fraction = 0.9  # sgd only
    warmup_epochs: Annotated[int, Field(ge=0, le=100_000)] = 0


def _transformer_recipes() -> dict[str, OptimizerRecipe]:
    """DeiT's recipe (AdamW, weight decay 0.05, linear warm-up) for the zoo's ViTs; the lr is
    the one measured on glyphs at batch 64 (docs/modern.md)."""
    vit = OptimizerRecipe(name="adamw", lr=1e-3, weight_decay=0.05, warmup_epochs=5)
    return {"vit_tiny": vit, "vit_nano": vit}


class Schedule(ConfigModel):
    """SGD with a multi-step learning-rate decay (the paper: 240 epochs, x0.1 at 150/180/210);
    an architecture listed in `optimizer_by_arch` trains with its own optimiser instead."""

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
    optimizer_by_arch: dict[ModelName, OptimizerRecipe] = Field(
        default_factory=_transformer_recipes)

    hash_neutral_defaults: ClassVar[dict[str, Any]] = {
        "optimizer_by_arch": {k: v.model_dump() for k, v in _transformer_recipes().items()}}

    def lr_for(self, arch: str) -> float:
        """The initial learning rate of `arch` (MobileNetV2/ShuffleNetV1 use 0.01 in the paper)."""
        return self.optimizer_for(arch).lr

    def optimizer_for(self, arch: str) -> OptimizerRecipe:
        """How `arch` is optimised: its `optimizer_by_arch` recipe, else the schedule's SGD at
        `lr_for` (the one home of this rule: pretraining and distillation both ask it)."""
        recipe = self.optimizer_by_arch.get(arch)
        if recipe is not None:
            return recipe
        return OptimizerRecipe(name="sgd", lr=self.lr_by_arch.get(arch, self.lr),
                               momentum=self.momentum, weight_decay=self.weight_decay)

    @model_validator(mode="after")
    def _one_lr_per_arch(self) -> Schedule:
        both = sorted(set(self.lr_by_arch) & set(self.optimizer_by_arch))
        if both:
            raise ConfigError("lr_by_arch", f"{', '.join(both)} also in optimizer_by_arch: set "
                              "its lr there (optimizer_by_arch.<arch>.lr)")
        return self

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
