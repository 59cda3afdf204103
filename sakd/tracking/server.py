"""An MLflow tracking server (http/https URI) that stops answering: bounded retries, then one
line naming the server, without credentials.

MLflow retries a failed HTTP request 7 times with a growing backoff and a 120 s timeout per
request: a lost server stalls training for minutes before anything is said. `limit_retries`
sets MLflow's own knobs (MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR, _TIMEOUT; read on
every request) from one budget, $SAKD_TRACKING_TIMEOUT_S or `tracking.timeout_s` (default 60 s),
leaving any the user set alone.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

TIMEOUT_ENV = "SAKD_TRACKING_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 60.0
RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
BACKOFF_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
REQUEST_TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"


def is_http(uri: str) -> bool:
    return urlsplit(uri).scheme in ("http", "https")


def server_name(uri: str) -> str:
    """`http://user:secret@host:5000/x` -> `http://host:5000/x`: no user, no password."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{host}{port}", query="", fragment="").geturl()


def timeout_seconds(configured: float | None = None) -> float:
    """$SAKD_TRACKING_TIMEOUT_S, else `configured` (params), else 60 s."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S if configured is None else float(configured)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        from sakd.tracking_errors import TrackingStoreError

        raise TrackingStoreError(f"${TIMEOUT_ENV} must be a positive number of seconds, "
                                 f"not {raw!r}")
    return value


def retry_plan(budget_s: float) -> dict[str, str]:
    """MLflow's settings so that a dead server is given up within `budget_s`: half of it for
    the backoff sleeps (factor 1: 0, 2, 4, ... s, plus up to 1 s jitter each; at most 10
    retries, MLflow's limit), half for the attempts' timeouts (>= 2 s each)."""
    half = budget_s / 2
    retries = 0
    while retries < 10 and 2 ** (retries + 1) - 2 + retries + 1 <= half:
        retries += 1
    per_request = max(2, int(half // (retries + 1)))
    return {RETRIES_ENV: str(retries), BACKOFF_ENV: "1", REQUEST_TIMEOUT_ENV: str(per_request)}


def limit_retries(uri: str, budget_s: float) -> None:
    """Bound MLflow's retries for an HTTP server (only the settings the user left unset)."""
    if is_http(uri):
        for key, value in retry_plan(budget_s).items():
            os.environ.setdefault(key, value)


def give_up_at_once(uri: str) -> None:
    """The server is gone and the process is about to stop: the calls left (ending the run,
    MLflow's exit hook) fail at once instead of retrying again."""
    if is_http(uri):
        os.environ.update({RETRIES_ENV: "0", REQUEST_TIMEOUT_ENV: "1"})


def unreachable(err: BaseException) -> str | None:
    """What went wrong, when `err` (or its cause) is the HTTP client failing to reach the
    server, in words that hold no URL (MLflow's own message holds it with the password)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.split(".")[0] in ("requests", "urllib3"):
            text = str(current).lower()
            if "timed out" in text or "timeout" in type(current).__name__.lower():
                return "it did not answer in time"
            if "refused" in text:
                return "connection refused"
            if "too many" in text and "error responses" in text:
                return "it kept answering with server errors"
            return f"{type(current).__name__}"
        current = current.__cause__ or current.__context__
    return None
