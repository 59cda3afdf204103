"""The `always` baseline of a study (Fig. 4's dashed line), trained once however many workers
start together.

A worker claims the baseline under the study lock (a study user attr naming it), trains it
outside the lock (the lock guards claims, never a training run) while a heartbeat stamps the
claim, and stores the value. Others go on with trials and, at the end, wait for the value; a
claim whose worker is gone (dead local process, or no heartbeat for `stale_after_s`) is taken
over, so a killed worker never leaves the study without its baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import optuna

from sakd.tuning.budget import STALE_AFTER_S, WorkerId, pid_alive
from sakd.tuning.heartbeat import HEARTBEAT_S, Heartbeat

BASELINE_ATTR = "baseline_always_top1"
CLAIM_ATTR = "baseline_always_claim"  # {"host", "pid", "token", "beat"}


def _claim_is_live(claim: object, me: WorkerId, now: float, stale_after_s: float) -> bool:
    if not isinstance(claim, dict) or claim.get("token") == me.token:
        return False
    local = claim.get("host") == me.host and isinstance(claim.get("pid"), int)
    if local and not pid_alive(claim["pid"]):
        return False
    beat = claim.get("beat")
    return isinstance(beat, int | float) and now - beat <= stale_after_s


def _try_claim(study: optuna.Study, lock: AbstractContextManager, me: WorkerId,
               stale_after_s: float) -> tuple[float | None, bool]:
    """(stored value, whether this worker now owns the training), decided under the lock."""
    with lock:
        attrs = study.user_attrs
        if BASELINE_ATTR in attrs:
            return float(attrs[BASELINE_ATTR]), False
        if _claim_is_live(attrs.get(CLAIM_ATTR), me, time.time(), stale_after_s):
            return None, False
        study.set_user_attr(CLAIM_ATTR, {**me.as_attr(), "beat": time.time()})
        return None, True


class _ClaimBeat:
    """Stamps the claim's `beat` so other machines see the baseline's worker is alive."""

    def __init__(self, study: optuna.Study, me: WorkerId) -> None:
        self.study, self.me = study, me

    def set_user_attr(self, key: str, value: float) -> None:
        self.study.set_user_attr(CLAIM_ATTR, {**self.me.as_attr(), "beat": value})


def baseline_once(
    study: optuna.Study, lock: AbstractContextManager, train: Callable[[], float], wait: bool,
    me: WorkerId | None = None, poll_s: float = 2.0, stale_after_s: float = STALE_AFTER_S,
) -> float | None:
    """The study's baseline: stored, or trained here if nobody else is training it. With
    wait=False a live claim elsewhere returns None at once; with wait=True this waits for it
    (taking the claim over if its worker dies)."""
    me = me or WorkerId()
    while True:
        value, mine = _try_claim(study, lock, me, stale_after_s)
        if value is not None:
            return value
        if mine:
            try:
                with Heartbeat(_ClaimBeat(study, me), min(HEARTBEAT_S, stale_after_s / 3)):
                    value = float(train())
            except BaseException:
                with lock:
                    study.set_user_attr(CLAIM_ATTR, None)  # free it for another worker
                raise
            study.set_user_attr(BASELINE_ATTR, value)
            return value
        if not wait:
            return None
        time.sleep(poll_s)
