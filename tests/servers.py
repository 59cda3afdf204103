"""A real `mlflow server` on a free loopback port, for the tests that track through one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_helpers import free_port

START_S = 180  # a cold `mlflow server` on a loaded 2-core machine takes a while


def healthy(url: str) -> bool:
    """Whether the server at `url` answers its /health route."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str,
                  artifacts: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yields (its URL, its process) once it is healthy; `artifacts`: it proxies artifacts
    there (`mlflow-artifacts:/` URIs). It runs in a session of its own, so that a test can
    SIGKILL it with its workers (os.killpg); whatever is left of it is killed at the end."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", backend_store_uri, "--workers", "1"]
    if artifacts is not None:
        cmd += ["--artifacts-destination", str(artifacts)]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would stall it
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + START_S
            while not healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"mlflow server not up within {START_S} s: "
                                f"{log.read()[-2000:].decode(errors='replace')}")
                time.sleep(0.5)
            yield url, proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
