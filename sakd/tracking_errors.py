"""A tracking store that cannot be used (not a database, damaged, locked, unreachable) or an
MLflow server that cannot be reached as one clear line saying what is wrong and what to do,
instead of SQLAlchemy's traceback or MLflow's message (which holds the URI's password)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class TrackingStoreError(RuntimeError):
    """The MLflow tracking store cannot be opened or written."""


# (words in the database driver's message, what it means and what to do)
_PROBLEMS = (
    (("not a database", "malformed", "file is encrypted"),
     "is not a readable MLflow database ({cause}). Restore it from a backup, or move it aside "
     "(e.g. mv mlflow.db mlflow.db.broken) so that a new, empty store is created"),
    (("locked", "busy"),
     "is locked by another process ({cause}). Wait for that process to finish (or stop it), "
     "then rerun"),
    (("unable to open", "readonly", "read-only", "disk i/o", "permission"),
     "cannot be opened or written ({cause}). Check that its folder exists and is writable"),
)


def redact(uri: str) -> str:
    """The URI as it may be shown: a password in it becomes ***."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _driver_error(err: BaseException) -> BaseException | None:
    """The database driver's exception (sqlite3, psycopg, ...) in err's chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's
        if isinstance(orig, BaseException):
            return orig
        if type(current).__module__.split(".")[0] in ("sqlite3", "psycopg2", "psycopg",
                                                     "pymysql"):
            return current
        current = current.__cause__ or current.__context__
    return None


def store_problem(err: BaseException) -> str | None:
    """What is wrong with the store and what to do, when `err` comes from its database."""
    driver = _driver_error(err)
    if driver is None:
        return None
    cause = " ".join(str(driver).split()) or type(driver).__name__
    lowered = cause.lower()
    for words, text in _PROBLEMS:
        if any(w in lowered for w in words):
            return text.format(cause=cause)
    return f"cannot be used ({cause}). Check the tracking URI and the database"


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn an error of the store's database into TrackingStoreError naming the store (its
    password hidden); every other exception passes unchanged."""
    try:
        yield
    except TrackingStoreError:
        raise
    except Exception as err:
        message = _message(uri, err)
        if message is None:
            raise
        raise TrackingStoreError(message) from None


def _message(uri: str, err: BaseException) -> str | None:
    """The one line for a store (database) or server (HTTP) problem; None for anything else.
    Neither holds a password: MLflow's own message for a lost server holds the full URI."""
    problem = store_problem(err)
    if problem is not None:
        return f"the MLflow tracking store {redact(uri)} {problem}"
    from sakd.tracking.server import TIMEOUT_ENV, server_name, unreachable

    why = unreachable(err)
    if why is None:
        return None
    return (f"the MLflow tracking server {server_name(uri)} cannot be reached ({why}; gave up "
            f"after the retries ${TIMEOUT_ENV} allows). Check that it runs and the URI, then "
            "rerun: training resumes after its last finished epoch")


def guarded(method: Callable[..., T]) -> Callable[..., T]:
    """A tracker method whose store errors become TrackingStoreError (self.tracking_uri)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        with store_errors(self.tracking_uri):
            return method(self, *args, **kwargs)

    return wrapper
