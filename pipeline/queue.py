"""`sakd queue`: the study's independent stages N at a time, through DVC's experiment queue.

`dvc repro` runs one stage at a time. The teachers, the distillation stages and the sensitivity
study do not depend on one another, so each is queued as a DVC experiment of its own
(`dvc exp run --queue <stage>`) and DVC's queue runs them N at a time
(`dvc exp run --run-all -j N`), each worker on its own device (pipeline/slots.py). Every stage
a worker finishes is saved in DVC's run-cache, in the cache the queue shares with the
workspace, so the closing `dvc repro` restores each one where a sequential run puts it
(nothing retrains) and then runs evaluate, compression, report and register: the report
covers every stage that ran, whichever worker ran it, and every MLflow run exists once.
(`dvc push --run-cache` uploads run-cache entries but not the outputs of stages that ran only
in experiments: restoring them into the workspace is also what lets `dvc push` share them.)

DVC does the scheduling; this module only lists the stages (DVC's own names, from
`dvc stage list`), and prints each DVC command before it runs it, so a user can replay or split
the work by hand (README, "Many stages at once").
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.queue_guard import end_of_wave, single_queue, stop_workers_left
from pipeline.slots import JOBS_ENV

# The stages in the order they may run: the data once, the networks trained alone, then every
# stage that needs only those; whatever is not listed runs in the closing `dvc repro`.
FIRST = ("fetch",)
WAVES = (("pretrain",), ("distill", "sensitivity"))


@dataclass(frozen=True)
class Slice:
    """Part `index` (0-based) of `count` equal parts of each wave: one machine's share."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Slice:
        """`i/m`: the i-th of m parts, counted from 1 as people do (`1/2`, `2/2`)."""
        try:
            i, m = (int(x) for x in text.split("/"))
        except ValueError:
            raise UserError(f"--slice wants i/m, e.g. 1/2, not {text!r}") from None
        if not 1 <= i <= m:
            raise UserError(f"--slice {text}: i must be between 1 and m")
        return cls(i - 1, m)

    def take(self, names: Sequence[str]) -> list[str]:
        return list(names[self.index::self.count])


def group_of(stage: str) -> str:
    """`distill@pair0-kd-adaptive` -> `distill`."""
    return stage.split("@", 1)[0]


def waves(stages: Sequence[str], part: Slice = Slice()) -> list[list[str]]:
    """The queued waves: stages of each wave's groups, in dvc.yaml order, this slice's share."""
    return [part.take([s for s in stages if group_of(s) in groups]) for groups in WAVES]


def experiment_name(stage: str, tag: str) -> str:
    """A DVC experiment name for a queued stage (`distill@pair0-kd-adaptive` ->
    `distill-pair0-kd-adaptive-<tag>`): git refs take no `@{`, and the tag keeps reruns apart."""
    return f"{stage.replace('@', '-')}-{tag}"


def plan(stages: Sequence[str], jobs: int, part: Slice = Slice(), tag: str = "q",
         pull: bool = False) -> list[list[str]]:
    """Every DVC command `sakd queue` runs, in order. `pull`: restore stages other machines
    ran from the DVC remote (their run-cache entries fetched with `dvc fetch --run-cache`).

    The closing `dvc repro` restores the queued stages into the workspace from the run-cache
    (their outputs and dvc.lock entries, so `dvc push` uploads them). With the whole matrix it
    is a plain `dvc repro` that also writes the report; a slice repros only its own stages
    (a plain one would train the other slices' stages here)."""
    also = ["--pull"] if pull else []
    commands = [["dvc", "repro", *also, *FIRST]]
    queued: list[str] = []
    for wave in waves(stages, part):
        if wave:
            commands += [["dvc", "exp", "run", "--queue", *also, "-n",
                          experiment_name(stage, tag), stage] for stage in wave]
            commands.append(["dvc", "exp", "run", "--run-all", "--jobs", str(jobs)])
            queued += wave
    commands.append(["dvc", "repro", *also, *(queued if part.count > 1 else [])])
    return commands


def stage_names(root: Path) -> list[str]:
    """DVC's names of the pipeline's stages (matrix and foreach expanded), in dvc.yaml order."""
    out = _dvc(["dvc", "stage", "list", "--name-only"], root, capture=True)
    return [line.strip() for line in out.splitlines() if line.strip()]


def run_queue(root: Path, jobs: int, part: Slice = Slice(), dry_run: bool = False,
              echo: Callable[[str], None] = print, pull: bool = False) -> list[list[str]]:
    """Run the plan (or only print it); a failing DVC command stops here with its name."""
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, not {jobs}")
    tag = secrets.token_hex(3)
    if dry_run:
        commands = plan(stage_names(root), jobs, part, tag, pull)
        for command in commands:
            echo(f"$ {shlex.join(command)}")
        return commands
    with single_queue(root, echo) as lock:  # one at a time; cleans up after a killed one
        commands = plan(stage_names(root), jobs, part, tag, pull)
        open_stores(root)
        for command in commands:
            echo(f"$ {shlex.join(command)}")
            run_all = command[1:4] == ["exp", "run", "--run-all"]
            _dvc(command, root, env={**os.environ, JOBS_ENV: str(jobs)},
                 started=lock.waiting_for, echo=echo if run_all else None)
            if run_all:
                for pid in stop_workers_left(root):
                    echo(f"stopped DVC queue worker {pid}: still running after its wave "
                         "(DVC issue #10398)")
                _check_queue(root, tag)
    if part.count > 1:
        echo("this machine's share is done and in the workspace: `dvc push --run-cache` "
             "uploads it; once every share is pushed, `dvc fetch --run-cache && dvc repro "
             "--pull` on one machine restores them all and writes the report")
    return commands


def open_stores(root: Path) -> None:
    """The MLflow store every worker writes to, created here before the workers start (two
    workers creating a new database at once break MLflow's migration)."""
    from pipeline.settings import make_tracker, read_params
    from sakd.config import Params

    make_tracker(read_params(root / "params.yaml", Params), root).open_store()


def _check_queue(root: Path, tag: str) -> None:
    """DVC reports a failed experiment but exits 0: refuse to go on past one of ours."""
    status = _dvc(["dvc", "queue", "status"], root, capture=True)
    failed = [line.strip() for line in status.splitlines()
              if f"-{tag}" in line and "Failed" in line.split()]
    if failed:
        raise UserError("queued stages failed (their logs: `dvc queue logs <name>`):\n  "
                        + "\n  ".join(failed))


def _dvc(command: list[str], root: Path, capture: bool = False,
         env: dict[str, str] | None = None,
         started: Callable[[int | None], None] | None = None,
         echo: Callable[[str], None] | None = None) -> str:
    """Run a DVC command; `started(pid)` is told its pid (and None once it ended). With
    `echo`, a command that outlives its queue wave is ended (queue_guard.end_of_wave)."""
    pipe = subprocess.PIPE if capture else None
    with subprocess.Popen(command, cwd=root, env=env, text=True, stdout=pipe,
                          stderr=pipe) as proc:
        if started:
            started(proc.pid)
        ended = echo is not None and end_of_wave(proc, root)
        out, err = proc.communicate()
    if started:
        started(None)
    if ended:
        echo(f"`{shlex.join(command)}` still waited for a queue worker after every stage had "
             "finished (DVC issue #10398): stopped it and its workers")
        return out or ""
    if proc.returncode != 0:
        detail = (err or out or "").strip()[-2000:] if capture else ""
        raise UserError(f"`{shlex.join(command)}` failed (exit {proc.returncode})"
                        + (f":\n{detail}" if detail else ""))
    return out or ""
