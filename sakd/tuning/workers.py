"""Workers: claim and run trials in this process, or in N spawned processes on this machine.

Optuna's `study.optimize(n_jobs=N)` runs threads in one process (the GIL and one torch thread
pool shared by all), and `n_trials` there is per call, not per study; so processes are started
here and each one claims trials through the TrialClaimer (budget.py), which keeps the total
exact across processes and machines.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable

import optuna

from sakd.tuning.budget import TrialClaimer
from sakd.tuning.errors import TuningError
from sakd.tuning.job import TuneJob
from sakd.tuning.locks import study_lock
from sakd.tuning.plans import fixed_values, plan_for
from sakd.tuning.runner import TrainFn, run_worker

Fatal = tuple[type[BaseException], ...]
WorkerEntry = Callable[[TuneJob], None]  # a module-level function: it is pickled by reference


def work(job: TuneJob, study: optuna.Study, train: TrainFn, fatal: Fatal = ()) -> Counter[str]:
    """Claim and run trials of the study in this process until it has all of them.

    `fatal`: errors that stop the worker (bad input) instead of failing one trial.
    """
    plan = plan_for(job.params)
    claimer = TrialClaimer(study, plan, study_lock(job.storage_url, job.study))
    done = run_worker(claimer, train, fixed_values(job.params, plan),
                      fatal=(*fatal, TuningError))
    if done:
        print(f"worker {os.getpid()}: " + ", ".join(f"{n} {s.lower()}" for s, n in done.items()))
    return done


def spawn_workers(entry: WorkerEntry, job: TuneJob, workers: int, fatal: Fatal = ()) -> None:
    """Run `entry(job)` in `workers` spawned processes sharing the CPU cores; TuningError
    names the processes that failed (their finished trials are kept in the study)."""
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_process_main, args=(entry, job, threads, fatal),
                         name=f"sakd-tune-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.join(timeout=30)
        raise
    failed = [f"{p.name} (exit {p.exitcode})" for p in procs if p.exitcode != 0]
    if failed:
        raise TuningError(f"tuning workers failed: {', '.join(failed)}; see their messages "
                          f"above. Finished trials are kept: re-run to complete the study")


def _process_main(entry: WorkerEntry, job: TuneJob, threads: int, fatal: Fatal) -> None:
    """A worker process: its share of the cores, quiet Optuna; bad input exits 2."""
    import torch

    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        entry(job)
    except (*fatal, TuningError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
