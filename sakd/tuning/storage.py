"""Open the Optuna storage behind a URL (see urls.py for the accepted forms), with clear errors.

Several workers may open a new storage at once; creating its tables happens under the storage's
lock, so they do not trip over each other.
"""

from __future__ import annotations

from pathlib import Path

from sakd.tuning.errors import TuningError
from sakd.tuning.locks import study_lock
from sakd.tuning.urls import (
    ENV_VAR,
    SCHEMES,
    check_storage_url,
    journal_path,
    redact,
    storage_file,
    storage_scheme,
)

CONNECT_TIMEOUT_S = 10
_INIT_LOCK = "__storage__"


def open_storage(url: str):
    """An Optuna storage for `url`, connected; TuningError says why when it cannot be opened.

    Opening reads or creates Optuna's tables but never changes an existing study.
    """
    scheme = storage_scheme(url)
    if scheme not in SCHEMES:
        raise TuningError(check_storage_url(url) or f"unknown storage {redact(url)!r}")
    file = storage_file(url)
    if file is not None and not file.parent.is_dir():
        raise TuningError(f"cannot open Optuna storage {redact(url)}: folder {file.parent} does "
                          f"not exist")
    try:
        with study_lock(url, _INIT_LOCK):
            return _open_journal(url) if scheme == "journal" else _open_rdb(url, scheme)
    except ImportError as err:
        raise TuningError(
            f"cannot open Optuna storage {redact(url)}: its database driver is missing "
            f"({err}); install it (PostgreSQL: `pip install 'sakd[postgres]'`, i.e. psycopg 3)"
        ) from None
    except Exception as err:  # sqlalchemy/OS errors: unreachable host, bad path, bad schema
        raise TuningError(
            f"cannot open Optuna storage {redact(url)}: {_first_line(err)}. Check the URL, that "
            f"the server is up and reachable (or the folder exists), and the credentials "
            f"({ENV_VAR}, PGPASSWORD). The study was not touched."
        ) from None


def _open_rdb(url: str, scheme: str):
    from optuna.storages import RDBStorage

    engine_kwargs = {}
    if scheme in ("postgresql", "mysql"):
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
                         "pool_pre_ping": True}
    elif scheme == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}  # wait for other workers' writes
    return RDBStorage(url, engine_kwargs=engine_kwargs)


def _open_journal(url: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(journal_path(url))
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
