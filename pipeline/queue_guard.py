"""One `sakd queue` per project at a time, and the DVC queue a killed one left behind.

`sakd queue` holds an exclusive `flock` on `.sakd/queue.lock` while it runs (the kernel frees
it even after SIGKILL) and writes its pid there, plus the pid of the DVC command it is waiting
for; a clean end empties the file. So a second `sakd queue` while one runs is refused in one
line, and one that finds the file free but not empty knows its predecessor died: DVC's workers
may still be running its stages unsupervised (holding DVC's lock), or have died leaving an
entry DVC shows as Running with no worker (a `dvc exp run --run-all` then waits forever).
It waits for the DVC command the dead one left while a queue worker is active (its stages
then land in the run-cache: nothing is trained twice), stops it when none has been for 30 s,
stops any worker left (`dvc queue stop --kill`), clears the queue (`dvc queue remove --all`;
an entry still shown Running has no worker left, so DVC's task records under
.dvc/tmp/exps/celery go too) and then runs the study as usual. While it runs, `end_of_wave`
ends a `dvc exp run --run-all` that outlives its wave, and `stop_workers_left` the queue
workers DVC leaves behind once a wave is over (a worker that never exits).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import UserError

LOCK = Path(".sakd") / "queue.lock"
CELERY = Path(".dvc") / "tmp" / "exps" / "celery"  # DVC's queue broker and task results


class QueueLock:
    """The held lock: `waiting_for(pid)` records the DVC command now running."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode(), 0)

    def waiting_for(self, child: int | None) -> None:
        self.write(f"{os.getpid()}\n{child or ''}\n")


@contextlib.contextmanager
def single_queue(root: Path, echo: Callable[[str], None] = print) -> Iterator[QueueLock]:
    """Hold the project's queue lock for the block; refuse (UserError) when another holds it,
    clean up after a dead one first."""
    path = root / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = (_read(fd) or ["?"])[0]
            raise UserError(f"another `sakd queue` (pid {pid}) is running in {root}; wait for "
                            f"it to finish, or stop it (kill {pid}) and rerun") from None
        left = _read(fd)
        lock = QueueLock(fd)
        lock.waiting_for(None)
        if left:
            clean_up_after(root, left, echo)
        try:
            yield lock
        except UserError:  # a failed stage: DVC's workers have stopped; keep its logs
            lock.write("")
            raise
        lock.write("")  # a clean end; a killed or interrupted one leaves its pids
    finally:
        os.close(fd)  # frees the lock


def _read(fd: int) -> list[str]:
    return os.pread(fd, 4096, 0).decode(errors="replace").split()


def clean_up_after(root: Path, left: list[str], echo: Callable[[str], None]) -> None:
    """Stop what a dead `sakd queue` (pid, DVC child pid) left running and clear DVC's queue."""
    echo(f"a previous `sakd queue` (pid {left[0]}) did not finish: cleaning up after it")
    if len(left) > 1 and left[1].isdigit() and _is_dvc(int(left[1])):
        echo(f"waiting for the DVC command it left (pid {left[1]}) and its queue workers to "
             f"finish their stages (kill {left[1]} to stop them instead)")
        _wait(root, int(left[1]))
    _dvc(root, "queue", "stop", "--kill")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _busy(_dvc(root, "queue", "status")):
        time.sleep(1)
    _dvc(root, "queue", "remove", "--all")
    if any(" Running " in f" {line} " for line in _dvc(root, "queue", "status").splitlines()):
        shutil.rmtree(root / CELERY, ignore_errors=True)  # entries without a worker


def end_of_wave(proc: subprocess.Popen, root: Path, idle_s: float = 90.0,
                poll_s: float = 30.0) -> bool:
    """Wait for `proc`, a `dvc exp run --run-all`. DVC waits for its queue workers to exit,
    and a worker that has logged its shutdown sometimes never does (DVC issue #10398; seen
    under load), so the command would wait forever with every stage done. Once no entry is
    queued or running and no worker has been active for `idle_s`, the workers left are killed
    (their pid files under .dvc/tmp/exps/celery), then the command. True when it had to.
    (A `dvc queue status` every `poll_s` costs ~1 s of CPU: a few % of one core.)"""
    settled = 0.0
    while proc.poll() is None:
        settled = settled + poll_s if _settled(_dvc(root, "queue", "status")) else 0.0
        if settled >= idle_s:
            for pid in _live_workers(root):
                _stop(pid, grace_s=5.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30.0)
            if proc.poll() is None:
                _stop(proc.pid)
            proc.wait()
            return True
        time.sleep(poll_s)
    return False


def stop_workers_left(root: Path, wait_s: float = 30.0) -> list[int]:
    """After a wave's `dvc exp run --run-all` has returned: its queue workers normally exit
    within seconds; one still alive after `wait_s` never will (DVC issue #10398), and with the
    DVC process waiting on it, it holds the terminal or pipe `sakd queue` was given. Stop them;
    returns their pids."""
    deadline = time.monotonic() + wait_s
    while _live_workers(root) and time.monotonic() < deadline:
        time.sleep(1.0)
    left = _live_workers(root)
    for pid in left:
        _stop(pid, grace_s=5.0)
    return left


def _live_workers(root: Path) -> list[int]:
    """The pids of this project's DVC queue workers still running (pid files DVC writes)."""
    pids = []
    for pid_file in sorted((root / CELERY).glob("dvc-exp-worker-*.pid")):
        with contextlib.suppress(OSError):
            pid = pid_file.read_text().strip()
            if pid.isdigit() and _is_dvc(int(pid), b"queue-worker"):
                pids.append(int(pid))
    return pids


def _settled(status: str) -> bool:
    """`dvc queue status` shows nothing queued or running and no active worker."""
    if any(word in line.split() for line in status.splitlines() for word in ("Queued", "Running")):
        return False
    return any(line.startswith("Worker status:") for line in status.splitlines()) and \
        not _busy(status)


def _busy(status: str) -> bool:
    """`dvc queue status` still shows an active worker."""
    for line in status.splitlines():
        if line.startswith("Worker status:"):
            return not line.split(":", 1)[1].strip().startswith("0 active")
    return False


def _is_dvc(pid: int, command: bytes = b"dvc") -> bool:
    """A live `dvc` process (not a reused pid); `command`: a word its command line holds."""
    try:
        return command in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _wait(root: Path, pid: int, idle_s: float = 30.0) -> None:
    """Let the DVC command finish its wave (its stages land in the run-cache, so nothing is
    trained twice); stop it when no queue worker has been active for `idle_s` (it waits on an
    entry whose worker died, forever)."""
    idle = 0.0
    while _is_dvc(pid) and idle < idle_s:
        idle = 0.0 if _busy(_dvc(root, "queue", "status")) else idle + 2.0
        time.sleep(2.0)
    if _is_dvc(pid):
        _stop(pid)


def _stop(pid: int, grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)


def _dvc(root: Path, *args: str) -> str:
    run = subprocess.run(["dvc", *args], cwd=root, capture_output=True, text=True)
    return run.stdout
