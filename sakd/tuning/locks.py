"""A cross-process lock per study, so that "count the trials, then start one" is atomic.

Optuna's own MaxTrialsCallback checks the count after a trial ends, so N workers overshoot by
up to N-1 trials; with this lock around the claim, any number of workers on any number of
machines end with exactly the requested trials. The lock matches the storage:
- sqlite / journal files: an O_EXCL lock file beside the storage file (Optuna's
  JournalFileOpenLock: works on NFS v3+; a lock left by a killed process expires after
  `grace_s`);
- PostgreSQL: a session advisory lock; MySQL: GET_LOCK. Both vanish with the connection.
The critical section is short (a few storage reads and one insert), never a training run.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from sakd.tuning.urls import redact, storage_file, storage_scheme

if TYPE_CHECKING:
    from optuna.storages.journal import JournalFileOpenLock

LOCK_GRACE_S = 60


def study_lock(url: str, study_name: str) -> AbstractContextManager:
    """The lock that serialises trial claims of `study_name` in the storage at `url`.

    Why not Optuna's: its storages lock only their own writes (one insert, one update), never
    a caller's read-count-then-create; MaxTrialsCallback and `optimize(n_trials=)` count per
    process or after the fact, so parallel workers overshoot. This lock spans the whole claim.
    """
    scheme = storage_scheme(url)
    if scheme in ("sqlite", "journal"):
        file = storage_file(url)
        return FileLock(Path(f"{file}.sakd")) if file else ThreadLock()
    if scheme in ("postgresql", "mysql"):
        return AdvisoryLock(url, f"sakd-tune:{study_name}")
    raise ValueError(f"no lock for storage {redact(url)!r}")


class _HeldLock(AbstractContextManager):
    """`with` around an object with acquire() and release()."""

    _lock: threading.Lock | JournalFileOpenLock

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


class ThreadLock(_HeldLock):
    """In-memory storages live in one process: a plain mutex is enough."""

    def __init__(self) -> None:
        self._lock = threading.Lock()


class FileLock(_HeldLock):
    """`<storage file>.sakd.lock`, created with O_EXCL (apart from Optuna's own lock file)."""

    def __init__(self, target: Path, grace_s: int = LOCK_GRACE_S) -> None:
        from optuna.storages.journal import JournalFileOpenLock

        self.path = Path(f"{target}.lock")
        self._lock = JournalFileOpenLock(str(target), grace_period=grace_s)


class AdvisoryLock(AbstractContextManager):
    """A database-server lock on its own connection (it never blocks Optuna's writes)."""

    def __init__(self, url: str, name: str) -> None:
        digest = hashlib.sha256(name.encode()).digest()
        self.url = url
        self.key = int.from_bytes(digest[:8], "big", signed=True)  # PostgreSQL: a bigint
        self.name = f"sakd-{digest[:12].hex()}"  # MySQL: a name of at most 64 characters
        self._engine = None
        self._stack: contextlib.ExitStack | None = None

    def _connect(self):
        if self._engine is None:
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        return self._engine.connect()

    def __enter__(self):
        from sqlalchemy import text

        stack = contextlib.ExitStack()
        conn = stack.enter_context(self._connect())
        if storage_scheme(self.url) == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            stack.callback(conn.execute, text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        else:
            got = conn.execute(text("SELECT GET_LOCK(:n, 600)"), {"n": self.name}).scalar()
            if got != 1:
                stack.close()
                raise TimeoutError(f"could not take the MySQL lock {self.name!r} in 600 s")
            stack.callback(conn.execute, text("SELECT RELEASE_LOCK(:n)"), {"n": self.name})
        self._stack = stack
        return self

    def __exit__(self, *exc) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

