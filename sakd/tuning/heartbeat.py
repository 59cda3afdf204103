"""A background heartbeat on the running trial, so other workers can tell a live trial from
one whose machine died (see budget.is_stale).

Why not Optuna's heartbeat (`RDBStorage(heartbeat_interval=...)` with `fail_stale_trials`):
it exists only for RDB storages, not the journal file, and its thread runs only inside
`study.optimize`; trials here are claimed with `ask` under the study lock (budget.py), so
Optuna would never beat for them.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager

import optuna

from sakd.tuning.budget import HEARTBEAT

HEARTBEAT_S = 30.0


class Heartbeat(AbstractContextManager):
    """`with Heartbeat(trial):` stamps the trial's `heartbeat` user attr every `interval_s`."""

    def __init__(self, trial: optuna.Trial, interval_s: float = HEARTBEAT_S) -> None:
        self.trial, self.interval_s = trial, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sakd-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.trial.set_user_attr(HEARTBEAT, time.time())
            except Exception:  # finished meanwhile, or the storage hiccupped: try next beat
                continue
