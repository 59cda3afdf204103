"""Where a study lives: storage URLs, opening them with clear errors, and the study lock.

Kept beside Optuna because: Optuna opens the storages (RDBStorage, JournalStorage) but knows
no project-relative paths, $SAKD_OPTUNA_STORAGE override or password redaction, and its
storages lock only their own writes, never a caller's "count the trials, then create one":
the study lock spans that claim, so N workers on any machines end with exactly n_trials.

Accepted URLs (a relative path is relative to the project root, like DVC's paths):
- `sqlite:///optuna.db` (default; one machine, a few workers), `sqlite:////abs/path.db`;
- `journal:optuna.journal` or `journal:/shared/dir/optuna.journal`: Optuna's journal file
  (several processes or machines sharing a file system, NFS included);
- `postgresql://user@host:5432/db` or `mysql+pymysql://user@host/db`: a database server for
  many machines. Credentials come from the environment: the whole URL from
  `SAKD_OPTUNA_STORAGE`, or the driver's own variables (PGPASSWORD, ~/.pgpass).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlsplit

from sakd.schema.base import storage_problem as check_storage_url
from sakd.tuning import TuningError

ENV_VAR = "SAKD_OPTUNA_STORAGE"
SCHEMES = ("sqlite", "postgresql", "mysql", "journal")
CONNECT_TIMEOUT_S = 10
LOCK_GRACE_S = 60  # a file lock left by a killed process expires after this
__all__ = ["check_storage_url", "open_storage", "resolve_storage_url", "study_lock"]


def storage_scheme(url: str) -> str:
    """`postgresql` for `postgresql+psycopg2://...`; '' when the URL has no scheme."""
    head, sep, _ = url.partition(":")
    return head.split("+", 1)[0].lower() if sep else ""


def journal_path(url: str) -> str:
    """The file of a `journal:` URL (`journal:///rel` and `journal:////abs` also work)."""
    rest = url.split(":", 1)[1]
    return rest[3:] if rest.startswith("///") else rest


def storage_file(url: str) -> Path | None:
    """The local file behind a sqlite or journal URL; None for servers and in-memory sqlite."""
    scheme = storage_scheme(url)
    if scheme == "journal":
        return Path(journal_path(url))
    rest = url.split(":", 1)[1] if scheme == "sqlite" else ""
    path = rest[3:] if rest.startswith("///") else ""
    return Path(path) if path and path != ":memory:" else None


def resolve_storage_url(configured: str, root: Path, override: str | None = None,
                        env: Mapping[str, str] | None = None) -> str:
    """--storage wins, then $SAKD_OPTUNA_STORAGE, then params; file paths become absolute."""
    url = override or (os.environ if env is None else env).get(ENV_VAR) or configured
    scheme = storage_scheme(url)
    if scheme not in SCHEMES or (scheme == "journal" and not journal_path(url)):
        raise TuningError(check_storage_url(url) or f"unusable storage {redact(url)!r}")
    file = storage_file(url)
    if file is None or file.is_absolute():
        return url
    absolute = (root / file).resolve()
    return f"journal:{absolute}" if scheme == "journal" else f"{url.split(':', 1)[0]}:///{absolute}"


def redact(url: str) -> str:
    """The URL with any password replaced by ***: safe for logs, reports and MLflow."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def display_storage(url: str, root: Path) -> str:
    """Storage as shown in reports: relative to the root when it is a file there; redacted."""
    file = storage_file(url)
    if file is not None:
        with contextlib.suppress(ValueError):
            rel = file.resolve().relative_to(root.resolve()).as_posix()
            return f"journal:{rel}" if url.startswith("journal:") else f"sqlite:///{rel}"
    return redact(url)


def open_storage(url: str):
    """An Optuna storage for `url`, connected; TuningError says why when it cannot be opened.

    Opening reads or creates Optuna's tables (under the storage's lock, so workers starting
    together do not trip over each other) but never changes an existing study.
    """
    scheme = storage_scheme(url)
    if scheme not in SCHEMES:
        raise TuningError(check_storage_url(url) or f"unknown storage {redact(url)!r}")
    file = storage_file(url)
    if file is not None and not file.parent.is_dir():
        raise TuningError(f"cannot open Optuna storage {redact(url)}: folder {file.parent} does "
                          f"not exist")
    try:
        with study_lock(url, "__storage__"):
            return _open_journal(file) if scheme == "journal" else _open_rdb(url, scheme)
    except ImportError as err:
        raise TuningError(
            f"cannot open Optuna storage {redact(url)}: its database driver is missing "
            f"({err}); install it (PostgreSQL: `pip install 'sakd[postgres]'`, i.e. psycopg 3)"
        ) from None
    except Exception as err:  # sqlalchemy/OS errors: unreachable host, bad path, bad schema
        lines = str(err).strip().splitlines()
        first = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        raise TuningError(
            f"cannot open Optuna storage {redact(url)}: {first}. Check the URL, that the server "
            f"is up and reachable (or the folder exists), and the credentials ({ENV_VAR}, "
            f"PGPASSWORD). The study was not touched."
        ) from None


def _open_rdb(url: str, scheme: str):
    from optuna.storages import RDBStorage

    engine_kwargs: dict = {"connect_args": {"timeout": 60}}  # sqlite: wait for other writers
    if scheme in ("postgresql", "mysql"):
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
                         "pool_pre_ping": True}
    return RDBStorage(url, engine_kwargs=engine_kwargs)


def _open_journal(path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def study_lock(url: str, study_name: str) -> AbstractContextManager:
    """The lock that serialises trial claims of `study_name` in the storage at `url`: an
    O_EXCL file beside a sqlite/journal file (Optuna's JournalFileOpenLock, NFS v3+), a
    PostgreSQL advisory lock or MySQL GET_LOCK (both vanish with their connection), or a mutex
    for in-memory sqlite. The critical section is a few reads and one insert, never training."""
    scheme = storage_scheme(url)
    if scheme in ("postgresql", "mysql"):
        return AdvisoryLock(url, f"sakd-tune:{study_name}")
    if scheme not in ("sqlite", "journal"):
        raise ValueError(f"no lock for storage {redact(url)!r}")
    file = storage_file(url)
    return FileLock(Path(f"{file}.sakd")) if file else threading.Lock()


class FileLock(AbstractContextManager):
    """`<target>.lock`, created with O_EXCL (apart from Optuna's own lock file)."""

    def __init__(self, target: Path, grace_s: int = LOCK_GRACE_S) -> None:
        from optuna.storages.journal import JournalFileOpenLock

        self._lock = JournalFileOpenLock(str(target), grace_period=grace_s)

    def __enter__(self):
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


class AdvisoryLock(AbstractContextManager):
    """A database-server lock on its own connection (it never blocks Optuna's writes)."""

    def __init__(self, url: str, name: str) -> None:
        digest = hashlib.sha256(name.encode()).digest()
        self.url, self._engine, self._conn = url, None, None
        if storage_scheme(url) == "postgresql":  # a bigint key
            self._sql = ("SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)")
            self._args: dict = {"k": int.from_bytes(digest[:8], "big", signed=True)}
        else:  # MySQL: a name of at most 64 characters
            self._sql = ("SELECT GET_LOCK(:k, 600)", "SELECT RELEASE_LOCK(:k)")
            self._args = {"k": f"sakd-{digest[:12].hex()}"}

    def __enter__(self):
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        conn = self._engine.connect()
        got = conn.execute(sqlalchemy.text(self._sql[0]), self._args).scalar()
        if storage_scheme(self.url) == "mysql" and got != 1:
            conn.close()
            raise TimeoutError(f"could not take the MySQL lock {self._args['k']!r} in 600 s")
        self._conn = conn
        return self

    def __exit__(self, *exc) -> None:
        import sqlalchemy

        conn, self._conn = self._conn, None
        if conn is not None:
            with conn:
                conn.execute(sqlalchemy.text(self._sql[1]), self._args)
