"""A throwaway PostgreSQL cluster for the tests that need a real server, and their workers.

`initdb` + `pg_ctl` in a fresh temp folder on a free 127.0.0.1 port, password auth
(scram-sha-256) with a random password that clients get from PGPASSWORD (never from a URL),
stopped and deleted at the end. The server refuses to run as root, so under root it runs as the
`postgres` (else `nobody`) user via runuser. Missing binaries or driver: skip locally, FAIL
when CI=true (`.ci/run` installs Debian's postgresql package and the `.[postgres]` extra).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "sakd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str) -> None:
    message = f"{what} (apt-get install -y postgresql; pip install -e '.[postgres]': psycopg 3)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the PostgreSQL tests: {message}")
    pytest.skip(message)


def bindir() -> Path:
    """Where initdb and pg_ctl live (PATH, else Debian's /usr/lib/postgresql/<v>/bin)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    _missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
    raise AssertionError  # unreachable


def _as_server_user() -> tuple[list[str], str | None]:
    """Command prefix that drops root, and the user it runs as (None: as ourselves)."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], name
    pytest.fail("running as root and neither a `postgres` nor a `nobody` user exists")
    raise AssertionError  # unreachable


@dataclass
class Cluster:
    port: int
    password: str

    def url(self, database: str, driver: str = "postgresql") -> str:
        """A URL without the password: libpq reads it from PGPASSWORD."""
        return f"{driver}://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """Start a cluster, set PGPASSWORD for this process and its children, stop it after."""
    try:
        import psycopg  # noqa: F401  SQLAlchemy 2.1's driver for postgresql:// URLs
    except ImportError:
        _missing("the psycopg (3) driver is not installed")
    bin_ = bindir()
    prefix, user = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="sakd-pg-"))
    data, pwfile, log = folder / "data", folder / "pw", folder / "server.log"
    password, port = secrets.token_hex(16), free_port()
    pwfile.write_text(password)
    if user:
        shutil.chown(folder, user)
        shutil.chown(pwfile, user)
    pwfile.chmod(0o600)
    run = [*prefix]
    subprocess.run([*run, str(bin_ / "initdb"), "-D", str(data), "-U", USER, "-A",
                    "scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"],
                   check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={folder}"
    subprocess.run([*run, str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                    "-o", options, "start"], check=True, capture_output=True)
    saved = os.environ.get("PGPASSWORD")
    os.environ["PGPASSWORD"] = password
    try:
        yield Cluster(port, password)
    finally:
        subprocess.run([*run, str(bin_ / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "stop"], capture_output=True)
        if saved is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = saved
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout_s} s")


# ---------------------------------------------------------------- Optuna workers (spawned)
def _fake_train(setting) -> float:
    """A cheap stand-in for a distillation run: a smooth function of the trial's values."""
    value = 90.0 - (setting.values["tau0"] - 5.0) ** 2 / 10 - setting.values["beta3"] / 10
    setting.report(1, value)
    time.sleep(0.2)  # long enough for the workers' claims to interleave
    return value


def _hang(setting) -> float:
    time.sleep(600)  # killed by the test while its trial is RUNNING
    return 0.0


def tune_worker(job) -> None:
    """What `sakd tune --workers N` runs in each process, with the stand-in training."""
    from sakd.tuning.study import open_job_study
    from sakd.tuning.workers import work

    work(job, open_job_study(job), _fake_train)


def hanging_tune_worker(job) -> None:
    from sakd.tuning.study import open_job_study
    from sakd.tuning.workers import work

    work(job, open_job_study(job), _hang)
