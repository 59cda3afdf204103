"""What `sakd bench` times (BenchConfig) and the figures it returns (BenchResult: the
JSON document of `sakd bench --json`).

Where tensors run is params.yaml's runtime section, the same schema (sakd.schema.RuntimeConfig:
its keys, types, checks and help), so a benchmarked setting is one a run can use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, make_dataclass
from typing import Any

import torch

from sakd.schema import TIMING_KEYS, TIMING_RUNTIME, RuntimeConfig, validate
from sakd.spots import list_strategies

DEFAULT_STRATEGIES = ("never", "always", "adaptive")
CIFAR_TRAIN_IMAGES = 50_000

_BenchRuntime = make_dataclass(  # the runtime part: TIMING_KEYS, at TIMING_RUNTIME's values
    "_BenchRuntime",
    [(key, type(getattr(TIMING_RUNTIME, key)), field(default=getattr(TIMING_RUNTIME, key)))
     for key in TIMING_KEYS],
    frozen=True,
)


@dataclass(frozen=True)
class BenchConfig(_BenchRuntime):  # type: ignore[misc,valid-type]
    """What to time, and where (sakd.schema.TIMING_KEYS: the runtime section's keys, with
    TIMING_RUNTIME's defaults). `epoch_images`: None = 50,000 on CUDA (a CIFAR-100 epoch),
    else 10 batches; 0 skips the epoch measurement."""

    teacher: str = "resnet56"
    student: str = "resnet20"
    distiller: str = "at"
    batch_size: int = 64
    input_size: int = 32
    num_classes: int = 100
    steps: int = 20
    warmup: int = 3
    fold_batchnorm: bool = True  # eval-mode passes on BN-folded views (DistillStep)
    concurrent: int = 1  # processes running this benchmark at once on the device
    epoch_images: int | None = None
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    seed: int = 0

    def __post_init__(self) -> None:
        validate(RuntimeConfig, self.runtime())  # the runtime section's own checks
        for key, low in (("batch_size", 2), ("input_size", 4), ("num_classes", 2),
                         ("steps", 1), ("warmup", 0), ("seed", 0), ("concurrent", 1)):
            if getattr(self, key) < low:
                raise ValueError(f"bench {key} must be >= {low}, got {getattr(self, key)}")
        if self.epoch_images is not None and self.epoch_images < 0:
            raise ValueError(f"bench epoch_images must be >= 0, got {self.epoch_images}")
        if not self.strategies:
            raise ValueError("bench needs at least one strategy")
        unknown = [s for s in self.strategies if s not in list_strategies()]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; valid: "
                             f"{', '.join(list_strategies())}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"bench strategies repeat a name: {list(self.strategies)}")

    def runtime(self) -> dict[str, Any]:
        """The runtime section this benchmark runs with (its TIMING_KEYS)."""
        return {key: getattr(self, key) for key in TIMING_KEYS}

    def images_per_epoch(self, device: torch.device) -> int:
        if self.epoch_images is not None:
            return self.epoch_images
        return CIFAR_TRAIN_IMAGES if device.type == "cuda" else 10 * self.batch_size


@dataclass
class StrategyResult:
    """One strategy's figures (JSON keys)."""

    median_step_s: float
    images_per_s: float
    peak_mem_mb: float  # peak of the process (CPU) or of allocated tensors (CUDA)
    step_mem_mb: float | None  # of which the step itself added (see PeakMemory)
    min_step_s: float
    p90_step_s: float
    steps: int
    epoch_s: float | None = None  # wall time of the whole epoch
    epoch_images_per_s: float | None = None
    epoch_median_s: float | None = None  # batches x median batch time: robust to load bursts


@dataclass
class BenchResult:
    config: BenchConfig
    strategies: dict[str, StrategyResult]
    machine: dict[str, Any]
    peak_mem_kind: str
    epoch_images: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio_adaptive_always(self) -> float | None:
        s = self.strategies
        if "adaptive" in s and "always" in s:
            return s["adaptive"].median_step_s / s["always"].median_step_s
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: one object per strategy, the ratio, config and machine."""
        out: dict[str, Any] = {name: asdict(r) for name, r in self.strategies.items()}
        out["ratio_adaptive_always"] = self.ratio_adaptive_always
        out["peak_mem_kind"] = self.peak_mem_kind
        out["epoch_images"] = self.epoch_images
        out["config"] = {**asdict(self.config), "strategies": list(self.config.strategies)}
        out["machine"] = self.machine
        return out
