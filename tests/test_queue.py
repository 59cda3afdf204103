"""`sakd queue`'s plan and the device slots of its workers (no DVC run here: test_dvc_queue.py
runs a matrix through the queue)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from pipeline.errors import UserError
from pipeline.queue import Slice, experiment_name, plan, stage_names, waves
from pipeline.slots import cpu_share, queue_jobs, slot_device, take_slot
from tests.conftest import REPO

STAGES = ["fetch", "pretrain@resnet20", "pretrain@resnet8", "distill@pair0-kd-adaptive",
          "distill@pair0-kd-always", "distill@pair0-at-adaptive", "sensitivity", "evaluate",
          "report", "compression", "register"]


def test_waves_put_teachers_first_then_every_stage_that_needs_only_them():
    assert waves(STAGES) == [
        ["pretrain@resnet20", "pretrain@resnet8"],
        ["distill@pair0-kd-adaptive", "distill@pair0-kd-always", "distill@pair0-at-adaptive",
         "sensitivity"],
    ]


def test_the_plan_queues_each_wave_runs_it_n_at_a_time_then_repros_the_rest():
    commands = plan(STAGES, jobs=3, tag="t")
    assert commands[0] == ["dvc", "repro", "fetch"]  # the data once, not per worker
    assert commands[1] == ["dvc", "exp", "run", "--queue", "-n", "pretrain-resnet20-t",
                           "pretrain@resnet20"]
    run_all = [i for i, c in enumerate(commands) if "--run-all" in c]
    assert len(run_all) == 2 and commands[run_all[0]][-2:] == ["--jobs", "3"]
    queued_first = [c[-1] for c in commands[:run_all[0]] if "--queue" in c]
    assert queued_first == ["pretrain@resnet20", "pretrain@resnet8"]
    assert commands[-1] == ["dvc", "repro"]  # restores every stage, then evaluate ... register


def test_slices_split_each_wave_and_leave_the_report_to_one_machine():
    first, second = Slice.parse("1/2"), Slice.parse("2/2")
    ours = [w for p in (first, second) for w in waves(STAGES, p)]
    queued = sorted(s for w in ours for s in w)
    assert queued == sorted(s for w in waves(STAGES) for s in w)  # each stage exactly once
    closing = plan(STAGES, 2, first)[-1]  # restores only this slice's stages, no report
    assert closing == ["dvc", "repro", *(s for w in waves(STAGES, first) for s in w)]
    assert "evaluate" not in closing and "pretrain@resnet8" not in closing


def test_pull_restores_what_other_machines_ran_from_the_remote():
    commands = plan(STAGES, 2, Slice.parse("2/2"), pull=True)
    assert all("--pull" in c for c in commands if "--run-all" not in c)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_slice_is_refused(text):
    with pytest.raises(UserError, match="--slice"):
        Slice.parse(text)


def test_experiment_names_are_valid_git_refs():
    name = experiment_name("distill@pair0-kd-adaptive", "ab12cd")
    assert name == "distill-pair0-kd-adaptive-ab12cd"
    ok = subprocess.run(["git", "check-ref-format", f"refs/exps/{name}"])
    assert ok.returncode == 0


def test_stage_names_are_dvcs_own():
    names = stage_names(REPO)
    assert names[0] == "fetch" and "sensitivity" in names and names[-1] == "register"
    assert any(n.startswith("distill@") for n in names)
    assert all(w for w in waves(names))


@pytest.mark.slow  # queue: spawns worker processes that take slots
def test_each_live_process_holds_its_own_slot_until_it_exits(tmp_path):
    """Two workers never share a slot; the kernel frees a slot when its process dies."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from pipeline.slots import take_slot
            print(take_slot(Path({str(tmp_path)!r})), flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        assert holder.stdout.readline().strip() == "0"
        probe = [sys.executable, "-c", f"from pathlib import Path; from pipeline.slots import "
                 f"take_slot; print(take_slot(Path({str(tmp_path)!r})))"]
        second = subprocess.run(probe, capture_output=True, text=True, cwd=REPO,
                                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        assert second.stdout.strip() == "1"
    finally:
        holder.kill()
        holder.wait()
    again = subprocess.run(probe, capture_output=True, text=True, cwd=REPO,
                           env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert again.stdout.strip() == "0"  # the killed holder's slot is free again


def test_a_process_keeps_its_slot(tmp_path):
    assert take_slot(tmp_path) == take_slot(tmp_path)


def test_slots_go_round_robin_over_the_gpus():
    assert [slot_device(k, 2) for k in range(5)] == [
        torch.device("cuda", i) for i in (0, 1, 0, 1, 0)]


def test_cpu_threads_are_split_between_the_workers():
    assert cpu_share(2, cores=16) == 8 and cpu_share(3, cores=2) == 1
    assert queue_jobs({"SAKD_QUEUE_JOBS": "4"}) == 4 and queue_jobs({}) == 1
    for bad in ("zero", "0", "-2"):
        with pytest.raises(UserError, match="SAKD_QUEUE_JOBS"):
            queue_jobs({"SAKD_QUEUE_JOBS": bad})


def test_a_failed_queued_stage_stops_the_queue_naming_it(monkeypatch):
    """DVC prints a failed experiment but exits 0; `sakd queue` must not go on to a report
    that silently lacks (or retrains) that stage. Failures of earlier queues are not ours."""
    import pipeline.queue as q

    status = ("Task     Name                           Created    Status\n"
              "4a42d5e  pretrain-resnet14-old123       04:58 AM   Failed\n"
              "535833a  distill-pair0-kd-always-ab12cd 04:59 AM   Failed\n"
              "23a9242  sensitivity-ab12cd             04:59 AM   Success\n")
    monkeypatch.setattr(q, "_dvc", lambda *a, **k: status)
    with pytest.raises(UserError, match="distill-pair0-kd-always-ab12cd") as err:
        q._check_queue(REPO, "ab12cd")
    assert "old123" not in str(err.value) and "dvc queue logs" in str(err.value)
    q._check_queue(REPO, "zz9999")  # none of this run's stages failed: nothing raised


def test_a_second_queue_while_one_runs_is_refused_in_one_line(tmp_path):
    """`sakd queue` holds .sakd/queue.lock while it runs: another one in the same project says
    so in one line (exit 2) and touches nothing, before asking DVC anything."""
    import fcntl
    import os

    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.queue_guard import LOCK

    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / LOCK).parent.mkdir(parents=True)
    (tmp_path / LOCK).write_text("4242\n\n")
    with open(tmp_path / LOCK, "r+") as held:  # another `sakd queue` (pid 4242) runs
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(app, ["queue", "-j", "2", "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: another `sakd queue` (pid 4242) is running in {tmp_path}; wait for it to "
        "finish, or stop it (kill 4242) and rerun"]
    assert (tmp_path / LOCK).read_text() == "4242\n\n" and os.listdir(tmp_path / ".sakd") == [
        "queue.lock"]


def test_a_queue_that_ended_cleanly_leaves_nothing_to_clean(tmp_path, monkeypatch):
    """The lock file is emptied at a clean end (and after a failed stage), so the next
    `sakd queue` does not mistake it for a killed one; a killed one leaves its pids."""
    import pipeline.queue_guard as g

    cleaned: list[list[str]] = []
    monkeypatch.setattr(g, "clean_up_after", lambda root, left, echo: cleaned.append(left))
    with g.single_queue(tmp_path) as lock:
        lock.waiting_for(1234)
        assert (tmp_path / g.LOCK).read_text().split() == [str(os.getpid()), "1234"]
    assert (tmp_path / g.LOCK).read_text() == "" and cleaned == []
    with pytest.raises(UserError), g.single_queue(tmp_path):
        raise UserError("a queued stage failed")
    assert (tmp_path / g.LOCK).read_text() == ""
    (tmp_path / g.LOCK).write_text("999999\n4321\n")  # SIGKILLed while DVC ran
    with g.single_queue(tmp_path):
        pass
    assert cleaned == [["999999", "4321"]]


# A stand-in for `dvc exp run --run-all` whose queue worker logged its shutdown but never exits
# (DVC issue #10398): it starts the worker as its child, records its pid where DVC does, and
# waits for it, as DVC's command does.
HUNG_RUN_ALL = textwrap.dedent("""
    import subprocess, sys
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                               "dvc", "exp", "queue-worker"])
    open(sys.argv[1], "w").write(str(worker.pid))
    worker.wait()
""")
SETTLED = ("Task     Name                            Created    Status\n"
           "158ab82  pretrain-resnet8-c82229         09:38 PM   Success\n"
           "ed2da41  distill-pair0-kd-always-c82229  09:38 PM   Success\n\n"
           "Worker status: 0 active, 1 idle\n")


def _hung_run_all(root) -> tuple[subprocess.Popen, object]:
    import pipeline.queue_guard as g

    (root / g.CELERY).mkdir(parents=True)
    pid_file = root / g.CELERY / "dvc-exp-worker-2.pid"
    proc = subprocess.Popen([sys.executable, "-c", HUNG_RUN_ALL, str(pid_file), "dvc"])
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    return proc, pid_file


def test_a_run_all_that_outlives_its_wave_is_ended_with_its_worker(tmp_path, monkeypatch):
    """Every stage done, no worker active: the lingering worker and then the command are
    stopped, and `sakd queue` goes on (instead of waiting forever)."""
    import pipeline.queue_guard as g

    monkeypatch.setattr(g, "_dvc", lambda root, *args: SETTLED)
    proc, pid_file = _hung_run_all(tmp_path)
    worker = int(pid_file.read_text())
    assert g.end_of_wave(proc, tmp_path, idle_s=0.2, poll_s=0.05) is True
    assert proc.returncode is not None
    assert not g._is_dvc(worker)  # the lingering worker is gone


def test_workers_left_after_a_wave_are_stopped(tmp_path):
    """DVC's `--run-all` returned but a worker it forked lingers (holding the terminal or pipe
    `sakd queue` was given): stopped once the wave is over; a worker that exits in time is
    left to do so."""
    import pipeline.queue_guard as g

    proc, pid_file = _hung_run_all(tmp_path)  # its worker never exits
    worker = int(pid_file.read_text())
    assert g.stop_workers_left(tmp_path, wait_s=0.5) == [worker]
    proc.wait(timeout=10)  # its waiting parent ends with it
    assert not g._is_dvc(worker) and g.stop_workers_left(tmp_path, wait_s=0.1) == []


@pytest.mark.parametrize("status", [
    SETTLED.replace("Success\n\n", "Running\n\n"),                  # a stage still running
    SETTLED.replace("Success\n\n", "Queued\n\n"),                   # one not started yet
    SETTLED.replace("0 active, 1 idle", "1 active, 0 idle"),       # a worker still busy
])
def test_a_wave_still_working_is_left_alone(tmp_path, monkeypatch, status):
    import pipeline.queue_guard as g

    monkeypatch.setattr(g, "_dvc", lambda root, *args: status)
    proc, pid_file = _hung_run_all(tmp_path)
    worker = int(pid_file.read_text())
    try:
        with pytest.raises(subprocess.TimeoutExpired):  # watched for 1 s: nothing stopped
            threading.Thread(target=g.end_of_wave, args=(proc, tmp_path, 0.2, 0.05),
                             daemon=True).start()
            proc.wait(timeout=1.0)
        assert os.path.exists(f"/proc/{worker}")
    finally:
        os.kill(worker, 9)
        proc.wait(timeout=10)
