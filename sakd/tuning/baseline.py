"""Fig. 4's noise floor: the `always` baseline trained with several seeds, each seed once per
study however many workers start together, as a mean and a band.

Kept beside Optuna because it is no trial (the baseline must not use up the budget, be
sampled or be pruned) and Optuna has no notion of seed noise. One baseline run cannot say
whether a trial 0.3 points above it is better or just luckier; n seeds give its spread: a
trial outside mean ± 1 sample sd differs by more than seed noise, one inside it does not.

Per seed, a worker claims the run under the study lock (a study user attr naming it), trains it
outside the lock while a heartbeat stamps the claim, and stores the value under that seed's own
attr. Others move on to the next unclaimed seed, then to trials, and at the end wait for every
value; a claim whose worker is gone (workers.owner_gone) is taken over.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

import optuna

from sakd.tuning.workers import HEARTBEAT_S, STALE_AFTER_S, Heartbeat, WorkerId, owner_gone

BASELINE_ATTR = "baseline_always_top1"  # + "_seed<k>": that seed's value
CLAIM_ATTR = "baseline_always_claim"  # + "_seed<k>": {"host", "pid", "token", "beat"}
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


def value_attr(seed: int) -> str:
    """The study user attr holding the baseline's value for `seed`."""
    return f"{BASELINE_ATTR}_seed{seed}"


def claim_attr(seed: int) -> str:
    """The study user attr naming the worker that trains the baseline for `seed`."""
    return f"{CLAIM_ATTR}_seed{seed}"


def _try_claim(study: optuna.Study, lock: AbstractContextManager, me: WorkerId,
               stale_after_s: float, seed: int) -> tuple[float | None, bool]:
    """(stored value, whether this worker now owns the training), decided under the lock."""
    with lock:
        attrs = study.user_attrs
        if value_attr(seed) in attrs:
            return float(attrs[value_attr(seed)]), False
        claim = attrs.get(claim_attr(seed))
        if (isinstance(claim, dict) and claim.get("token") != me.token
                and isinstance(beat := claim.get("beat"), int | float)
                and not owner_gone(claim, beat, me, stale_after_s)):
            return None, False  # a live worker elsewhere trains it
        study.set_user_attr(claim_attr(seed), {**me.as_attr(), "beat": time.time()})
        return None, True


def baseline_once(
    study: optuna.Study, lock: AbstractContextManager, train: Callable[[], float], wait: bool,
    *, seed: int, me: WorkerId | None = None, poll_s: float = 2.0,
    stale_after_s: float = STALE_AFTER_S,
) -> float | None:
    """The baseline of one seed: stored, or trained here if nobody else is training it. With
    wait=False a live claim elsewhere returns None at once; with wait=True this waits for it
    (taking the claim over if its worker dies)."""
    me = me or WorkerId()
    while True:
        value, mine = _try_claim(study, lock, me, stale_after_s, seed)
        if value is not None:
            return value
        if mine:  # the heartbeat stamps the claim's `beat`, so other machines see it alive
            beat = SimpleNamespace(set_user_attr=lambda _key, now: study.set_user_attr(
                claim_attr(seed), {**me.as_attr(), "beat": now}))
            try:
                with Heartbeat(beat, min(HEARTBEAT_S, stale_after_s / 3)):
                    value = float(train())
            except BaseException:
                with lock:
                    study.set_user_attr(claim_attr(seed), None)  # free it for another worker
                raise
            study.set_user_attr(value_attr(seed), value)
            return value
        if not wait:
            return None
        time.sleep(poll_s)


def baselines_once(
    study: optuna.Study, lock: AbstractContextManager, train: Callable[[int], float],
    seeds: Sequence[int], wait: bool, *, me: WorkerId | None = None, poll_s: float = 2.0,
    stale_after_s: float = STALE_AFTER_S,
) -> dict[int, float]:
    """{seed: value} of the seeds available: each stored, trained here, or (wait=True) waited
    for. wait=False skips a seed another live worker trains, so workers starting together
    train different seeds; the result then may lack some of `seeds`."""
    me = me or WorkerId()
    out = {}
    for seed in seeds:
        value = baseline_once(study, lock, lambda s=seed: train(s), wait, seed=seed, me=me,
                              poll_s=poll_s, stale_after_s=stale_after_s)
        if value is not None:
            out[seed] = value
    return out
