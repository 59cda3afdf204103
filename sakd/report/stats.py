"""Paired differences over seeds with a 95% t-interval, and the verdict a reader can quote.

Two strategies run with the same seed share the data order, the initialisation of the student
and the teacher, so their difference per seed removes most of the seed-to-seed spread; the
interval is the Student t-interval of the mean paired difference (df = n - 1). With n = 3 the
t quantile is 4.30: only differences several times the per-seed spread are detectable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

CONFIDENCE = 0.95
METHOD = "Student t-interval of the mean paired difference (paired by seed, df = n − 1)"


@dataclass(frozen=True)
class PairedDifference:
    """mean(a - b) over the seeds both ran; low/high: the 95% interval (None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def detectable(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided Student t quantile (scipy: a dependency of scikit-learn, imported late)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, df))


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], confidence: float = CONFIDENCE
) -> PairedDifference | None:
    """a - b over the seeds present in both (None when they share no seed)."""
    seeds = sorted(a.keys() & b.keys())
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    mean = math.fsum(diffs) / n
    if n < 2:
        return PairedDifference(mean, None, None, n)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    return PairedDifference(mean, mean - half, mean + half, n)


def verdict(diff: PairedDifference | None, a: str, b: str) -> str:
    """Plain words: which is better, or that the seeds cannot tell them apart."""
    if diff is None:
        return f"no seed ran both {a} and {b}"
    if diff.low is None:
        return f"n={diff.n}: no interval (run >= 2 seeds, 3 as in the paper)"
    if not diff.detectable:
        return f"no detectable difference at n={diff.n}"
    better, worse = (a, b) if diff.mean > 0 else (b, a)
    return f"{better} better than {worse} (95% CI excludes 0, n={diff.n})"


def summary_fields(diff: PairedDifference) -> dict[str, float | int | None]:
    """The interval fields of a metrics/summary.json entry (DESIGN.md "Outputs")."""
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 4)

    return {"delta": r(diff.mean), "delta_ci_low": r(diff.low), "delta_ci_high": r(diff.high),
            "seeds": diff.n}
