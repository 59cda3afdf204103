"""Storage URLs: which kind, which file, absolute paths, and redaction (no I/O here).

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
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from sakd.schema.base import storage_problem
from sakd.tuning.errors import TuningError

ENV_VAR = "SAKD_OPTUNA_STORAGE"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")
SCHEMES = (*RDB_SCHEMES, "journal")


def storage_scheme(url: str) -> str:
    """`postgresql` for `postgresql+psycopg2://...`; '' when the URL has no scheme."""
    head, sep, _ = url.partition(":")
    return head.split("+", 1)[0].lower() if sep else ""


def check_storage_url(url: str) -> str | None:
    """Why `url` is not usable as params.yaml's storage, or None when it is (the config's rule)."""
    return storage_problem(url)


def journal_path(url: str) -> str:
    """The file of a `journal:` URL (`journal:///rel` and `journal:////abs` also work)."""
    rest = url.split(":", 1)[1]
    return rest[3:] if rest.startswith("///") else rest


def resolve_storage_url(
    configured: str, root: Path, override: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """--storage wins, then $SAKD_OPTUNA_STORAGE, then params; file paths become absolute."""
    env = os.environ if env is None else env
    url = override or env.get(ENV_VAR) or configured
    scheme = storage_scheme(url)
    if scheme not in SCHEMES or (scheme == "journal" and not journal_path(url)):
        raise TuningError(check_storage_url(url) or f"unusable storage {redact(url)!r}")
    file = storage_file(url)
    if file is None or file.is_absolute():
        return url
    absolute = (root / file).resolve()
    if storage_scheme(url) == "journal":
        return f"journal:{absolute}"
    return f"{url.split(':', 1)[0]}:///{absolute}"


def storage_file(url: str) -> Path | None:
    """The local file behind a sqlite or journal URL; None for servers and in-memory sqlite."""
    scheme = storage_scheme(url)
    if scheme == "journal":
        return Path(journal_path(url))
    if scheme == "sqlite":
        rest = url.split(":", 1)[1]
        path = rest[3:] if rest.startswith("///") else ""
        return Path(path) if path and path != ":memory:" else None
    return None


def redact(url: str) -> str:
    """The URL with any password replaced by ***: safe for logs, reports and MLflow."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def display_storage(url: str, root: Path) -> str:
    """Storage as shown in reports: relative to the root when it is a file there; redacted."""
    file = storage_file(url)
    if file is not None:
        with contextlib.suppress(ValueError):
            rel = file.resolve().relative_to(root.resolve()).as_posix()
            return f"journal:{rel}" if url.startswith("journal:") else f"sqlite:///{rel}"
    return redact(url)
