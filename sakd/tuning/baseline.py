"""The `always` baseline of a study (Fig. 4's dashed line and its noise band), each of its
seeds trained once however many workers start together.

Per seed, a worker claims the run under the study lock (a study user attr naming it), trains it
outside the lock (the lock guards claims, never a training run) while a heartbeat stamps the
claim, and stores the value under that seed's own attr. Others move on to the next unclaimed
seed (so N workers share the seeds), then to trials, and at the end wait for every value; a
claim whose worker is gone (dead local process, or no heartbeat for `stale_after_s`) is taken
over, so a killed worker never leaves the study without a baseline seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import optuna

from sakd.tuning.budget import STALE_AFTER_S, WorkerId, pid_alive
from sakd.tuning.heartbeat import HEARTBEAT_S, Heartbeat

BASELINE_ATTR = "baseline_always_top1"  # + "_seed<k>": that seed's value
CLAIM_ATTR = "baseline_always_claim"  # + "_seed<k>": {"host", "pid", "token", "beat"}


def value_attr(seed: int) -> str:
    """The study user attr holding the baseline's value for `seed`."""
    return f"{BASELINE_ATTR}_seed{seed}"


def claim_attr(seed: int) -> str:
    """The study user attr naming the worker that trains the baseline for `seed`."""
    return f"{CLAIM_ATTR}_seed{seed}"


def _claim_is_live(claim: object, me: WorkerId, now: float, stale_after_s: float) -> bool:
    if not isinstance(claim, dict) or claim.get("token") == me.token:
        return False
    local = claim.get("host") == me.host and isinstance(claim.get("pid"), int)
    if local and not pid_alive(claim["pid"]):
        return False
    beat = claim.get("beat")
    return isinstance(beat, int | float) and now - beat <= stale_after_s


def _try_claim(study: optuna.Study, lock: AbstractContextManager, me: WorkerId,
               stale_after_s: float, seed: int) -> tuple[float | None, bool]:
    """(stored value, whether this worker now owns the training), decided under the lock."""
    with lock:
        attrs = study.user_attrs
        if value_attr(seed) in attrs:
            return float(attrs[value_attr(seed)]), False
        if _claim_is_live(attrs.get(claim_attr(seed)), me, time.time(), stale_after_s):
            return None, False
        study.set_user_attr(claim_attr(seed), {**me.as_attr(), "beat": time.time()})
        return None, True


class _ClaimBeat:
    """Stamps the claim's `beat` so other machines see the baseline's worker is alive."""

    def __init__(self, study: optuna.Study, me: WorkerId, seed: int) -> None:
        self.study, self.me, self.seed = study, me, seed

    def set_user_attr(self, key: str, value: float) -> None:
        self.study.set_user_attr(claim_attr(self.seed), {**self.me.as_attr(), "beat": value})


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
        if mine:
            beat = _ClaimBeat(study, me, seed)
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
