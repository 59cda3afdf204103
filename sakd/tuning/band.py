"""Fig. 4's noise floor: the `always` baseline trained with several seeds, as a mean and a band.

One baseline run shows where standard distillation lands for one seed; it cannot say whether a
trial 0.3 points above it is better or just luckier. Training the same configuration with n
seeds gives its spread: a trial outside mean ± 1 sample standard deviation differs by more
than seed noise, one inside it does not, and the report says which is which.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Side = Literal["above", "below", "inside"]


@dataclass(frozen=True)
class NoiseBand:
    """The baseline's validation top-1 (%) per seed, in seed order."""

    seeds: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values or len(self.seeds) != len(self.values):
            raise ValueError(f"a baseline needs one value per seed, got seeds {self.seeds} "
                             f"and values {self.values}")
        if not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"baseline values must be finite, got {self.values}")

    @classmethod
    def from_values(cls, by_seed: Mapping[int, float]) -> NoiseBand:
        """From {seed: value} (any order): sorted by seed so the same runs give the same band."""
        seeds = tuple(sorted(by_seed))
        return cls(seeds, tuple(float(by_seed[s]) for s in seeds))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def std(self) -> float | None:
        """The sample standard deviation (n - 1); None for one seed, where it is undefined."""
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def low(self) -> float | None:
        return None if self.std is None else self.mean - self.std

    @property
    def high(self) -> float | None:
        return None if self.std is None else self.mean + self.std

    def side(self, value: float) -> Side | None:
        """Where `value` lies against the band; None when there is no band (one seed)."""
        if self.low is None or self.high is None:
            return None
        if value > self.high:
            return "above"
        return "below" if value < self.low else "inside"

    def label(self) -> str:
        """The legend entry of Fig. 4's dashed line: what it is, over how many seeds."""
        if self.std is None:
            return (f"standard distillation (always), 1 seed: {self.mean:.2f}% "
                    "(no band: the spread needs >= 2 seeds)")
        return (f"standard distillation (always), mean ± sd over {self.n} seeds: "
                f"{self.mean:.2f} ± {self.std:.2f}%")
