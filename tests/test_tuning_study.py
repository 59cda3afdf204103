"""The study life cycle with a cheap stand-in for training: resume, prune, fail, grid, seeds."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from sakd.config import Params, load_params
from sakd.tuning import TuningError
from sakd.tuning.report import trial_rows
from sakd.tuning.space import create_pruner, fixed_values, plan_for
from sakd.tuning.storage import open_storage, study_lock
from sakd.tuning.study import FINGERPRINT, open_study, study_attrs, study_fingerprint, study_name
from sakd.tuning.workers import (
    HEARTBEAT,
    WORKER,
    Heartbeat,
    TrialClaimer,
    TrialSetting,
    WorkerId,
    run_worker,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 3


def make_params(default_params, **sensitivity) -> Params:
    default_params["sensitivity"].update(epochs=EPOCHS, **sensitivity)
    return load_params(default_params)


def fake_accuracy(values) -> float:
    """A smooth stand-in for validation top-1: best near beta3 = 1, tau0 = 5."""
    return 90.0 - 5 * math.log10(values["beta3"]) ** 2 - 0.2 * (values["tau0"] - 5) ** 2


def fake_train(setting: TrialSetting) -> float:
    value = fake_accuracy(setting.values)
    for epoch in range(1, EPOCHS + 1):
        setting.report(epoch, value * epoch / EPOCHS)
    return value


class Tune:
    """One `sakd tune`-like invocation against a storage URL, minus the training."""

    def __init__(self, params: Params, url: str) -> None:
        self.params, self.url = params, url
        pruner = create_pruner(params.sensitivity)
        self.name = study_name(params)
        self.study = open_study(open_storage(url), self.name,
                                study_attrs(params, study_fingerprint(params)), pruner)
        self.plan = plan_for(params)
        self.fixed = fixed_values(params, self.plan)

    def run(self, train=fake_train, fatal=(), worker=None, stale_after_s=600.0):
        claimer = TrialClaimer(self.study, self.plan, study_lock(self.url, self.name),
                               worker=worker, stale_after_s=stale_after_s, log=lambda _: None)
        return run_worker(claimer, train, self.fixed, fatal=fatal, log=lambda _: None)

    def trials(self, *states):
        return self.study.get_trials(deepcopy=False, states=states or None)


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def test_rerun_continues_the_study_up_to_n_trials(default_params, url):
    first = Tune(make_params(default_params, n_trials=3, pruner={"kind": "none"}), url)
    first.run()
    before = [(t.number, t.params, t.value) for t in first.trials()]
    assert len(before) == 3

    again = Tune(make_params(default_params, n_trials=5, pruner={"kind": "none"}), url)
    assert again.name == first.name
    again.run()
    after = [(t.number, t.params, t.value) for t in again.trials()]
    assert after[:3] == before  # kept, not restarted
    assert [n for n, *_ in after] == [0, 1, 2, 3, 4]
    assert len(again.trials(TrialState.COMPLETE)) == 5
    assert again.study.metric_names == ["val_top1"]

    Tune(make_params(default_params, n_trials=5, pruner={"kind": "none"}), url).run()
    assert len(again.trials()) == 5  # already complete: nothing more to do


def test_changed_objective_settings_start_a_new_study(default_params, url):
    a = make_params(default_params, n_trials=2)
    b = load_params({**default_params, "sensitivity": {**default_params["sensitivity"],
                                                       "epochs": 5}})
    assert study_name(a) != study_name(b)
    c = make_params(default_params, n_trials=9, sampler="random")  # same objective
    assert study_name(a) == study_name(c)


def test_a_named_study_with_other_settings_is_refused_and_untouched(default_params, url):
    named = make_params(default_params, n_trials=2, study_name="fig4")
    Tune(named, url).run()
    default_params["sensitivity"]["epochs"] = 7
    other = load_params(default_params)
    with pytest.raises(TuningError, match="other objective settings") as err:
        Tune(other, url)
    assert "epochs_per_trial" in str(err.value)
    study = optuna.load_study(study_name="fig4", storage=url)
    assert len(study.trials) == 2
    assert study.user_attrs[FINGERPRINT] == study_fingerprint(named)


def test_unpromising_trials_are_pruned_and_count(default_params, url):
    params = make_params(default_params, n_trials=5, sampler="random",
                         pruner={"kind": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    calls = []

    def train(setting: TrialSetting) -> float:
        calls.append(setting.number)
        value = 90.0 if setting.number == 0 else 10.0  # everything after trial 0 is worse
        for epoch in range(1, EPOCHS + 1):
            setting.report(epoch, value)
        return value

    tune = Tune(params, url)
    done = tune.run(train)
    assert done["PRUNED"] == 4 and done["COMPLETE"] == 1
    pruned = tune.trials(TrialState.PRUNED)
    assert all(t.last_step == 1 for t in pruned)  # stopped after the first epoch
    rows = trial_rows(tune.trials(), tune.fixed)
    assert [r.value for r in rows if r.state == "PRUNED"] == [10.0] * 4
    assert len(tune.trials()) == 5  # pruned trials use up the budget


def test_failed_trials_keep_their_reason_and_the_study_goes_on(default_params, url):
    params = make_params(default_params, n_trials=4, pruner={"kind": "none"})

    def train(setting: TrialSetting) -> float:
        if setting.number in (1, 2):
            raise FloatingPointError("training loss is nan")
        if setting.number == 3:
            return float("nan")
        return fake_train(setting)

    tune = Tune(params, url)
    done = tune.run(train)
    assert done == {"COMPLETE": 1, "FAIL": 3}
    failed = tune.trials(TrialState.FAIL)
    assert [t.user_attrs["fail_reason"] for t in failed] == [
        "FloatingPointError: training loss is nan", "FloatingPointError: training loss is nan",
        "ValueError: the objective is nan",
    ]
    assert "Traceback" in failed[0].user_attrs["fail_traceback"]
    assert [r.reason for r in trial_rows(tune.trials(), tune.fixed)][1].startswith("Floating")


def test_fatal_errors_stop_the_worker_and_the_trial_is_redone(default_params, url):
    params = make_params(default_params, n_trials=3, pruner={"kind": "none"})

    class BadInput(Exception):
        pass

    def broken(setting: TrialSetting) -> float:
        raise BadInput("teacher checkpoint is unfinished")

    tune = Tune(params, url)
    with pytest.raises(BadInput):
        tune.run(broken, fatal=(BadInput,))
    (trial,) = tune.trials()
    assert trial.state == TrialState.FAIL and "fail_reason" not in trial.user_attrs
    assert trial_rows([trial], tune.fixed)[0].state == "INTERRUPTED"

    tune.run()  # fixed and re-run: three real trials, the interrupted one not counted
    assert len(tune.trials(TrialState.COMPLETE)) == 3


def test_a_dead_workers_trial_is_released_and_redone(default_params, url):
    params = make_params(default_params, n_trials=2, pruner={"kind": "none"})
    tune = Tune(params, url)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = WorkerId(pid=int(dead.stdout))  # this host, a process that has exited
    orphan = tune.study.ask(tune.plan.distributions())
    orphan.set_user_attr(WORKER, gone.as_attr())
    alive = tune.study.ask(tune.plan.distributions())  # a live worker elsewhere
    alive.set_user_attr(WORKER, {"host": "other-machine", "pid": os.getpid(), "token": "x"})

    tune.run()
    states = {t.number: t.state for t in tune.trials()}
    assert states[0] == TrialState.FAIL  # released: not counted
    assert states[1] == TrialState.RUNNING  # still counted: its heartbeat is fresh
    assert len(tune.trials(TrialState.COMPLETE)) == 1  # 1 running + 1 new = n_trials

    tune.run(stale_after_s=0.0)  # the other machine went silent too
    assert len(tune.trials(TrialState.COMPLETE)) == 2


def test_grid_runs_each_point_once_and_picks_up_new_values(default_params, url):
    params = make_params(default_params, mode="grid", grid={"beta3": [0.1, 1.0, 10.0],
                                                            "tau0": [2.0, 5.0]})
    tune = Tune(params, url)
    tune.run()
    got = [(t.params["beta3"], t.params["tau0"]) for t in tune.trials()]
    assert got == [(0.1, 5.0), (1.0, 5.0), (10.0, 5.0), (1.0, 2.0)]
    assert all(t.params["tau_min"] == 0.5 and t.params["schedule"] == "exponential"
               for t in tune.trials())
    tune.run()
    assert len(tune.trials()) == 4  # done: a re-run adds nothing

    wider = make_params(default_params, mode="grid", grid={"beta3": [0.1, 1.0, 10.0],
                                                           "tau0": [2.0, 5.0, 8.0]})
    more = Tune(wider, url)
    assert more.name == tune.name  # same objective: the same study grows
    more.run()
    assert [(t.params["beta3"], t.params["tau0"]) for t in more.trials()][4:] == [(1.0, 8.0)]


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "gp"])
def test_the_same_seed_samples_the_same_trials(default_params, tmp_path, sampler):
    runs = []
    for i in range(2):
        params = make_params(default_params, n_trials=3, sampler=sampler,
                             pruner={"kind": "none"})
        tune = Tune(params, f"sqlite:///{tmp_path / f'{i}.db'}")
        tune.run()
        runs.append([t.params for t in tune.trials()])
    assert runs[0] == runs[1]
    assert len({tuple(sorted(p.items())) for p in runs[0]}) == 3  # and distinct points


def test_heartbeat_keeps_a_long_trial_alive(default_params, url):
    tune = Tune(make_params(default_params, n_trials=1), url)
    trial = tune.study.ask(tune.plan.distributions())
    trial.set_user_attr(HEARTBEAT, 0.0)  # as if it started long ago
    with Heartbeat(trial, interval_s=0.05):
        time.sleep(0.3)
    (frozen,) = tune.trials()
    assert time.time() - frozen.user_attrs[HEARTBEAT] < 5.0
