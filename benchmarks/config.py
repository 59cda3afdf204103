"""What `sakd bench` times (BenchConfig) and the figures it returns (BenchResult: the
JSON document of `sakd bench --json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from sakd.spots import list_strategies

DEFAULT_STRATEGIES = ("never", "always", "adaptive")
CIFAR_TRAIN_IMAGES = 50_000


@dataclass(frozen=True)
class BenchConfig:
    """What to time. `epoch_images`: None = 50,000 on CUDA (a CIFAR-100 epoch), else 10
    batches; 0 skips the epoch measurement."""

    teacher: str = "resnet56"
    student: str = "resnet20"
    distiller: str = "at"
    batch_size: int = 64
    input_size: int = 32
    num_classes: int = 100
    steps: int = 20
    warmup: int = 3
    device: str = "auto"  # auto = CUDA when present
    threads: int = 0  # torch CPU threads; 0 = leave torch's setting
    channels_last: bool = True  # faster on CPU and GPU (docs/bench.md)
    autocast: bool = True  # bf16, CUDA only
    compile: bool = False
    fold_batchnorm: bool = True  # eval-mode passes on BN-folded views (DistillStep)
    capture: bool = False  # the whole step compiled (CUDA graphs on CUDA): sakd.train.capture
    fused_optimizer: bool = False  # fused SGD on CUDA, foreach SGD on CPU
    concurrent: int = 1  # processes running this benchmark at once on the device
    epoch_images: int | None = None
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    seed: int = 0

    def __post_init__(self) -> None:
        for key, low in (("batch_size", 2), ("input_size", 4), ("num_classes", 2),
                         ("steps", 1), ("warmup", 0), ("threads", 0), ("seed", 0),
                         ("concurrent", 1)):
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
        if self.capture and self.compile:
            raise ValueError("bench --capture compiles the whole step; drop --compile with it")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"bench strategies repeat a name: {list(self.strategies)}")

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
