"""The sensitivity section of params.yaml: search space, grid, trial configs, bad input."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from sakd.config import ConfigError, load_params
from sakd.tuning.space import (
    GridPlan,
    SearchPlan,
    base_values,
    grid_points,
    scale_milestones,
    trial_config,
)


def test_search_space_matches_params(default_params):
    declared = default_params["sensitivity"]["search"]
    s = load_params(default_params).sensitivity
    dists = SearchPlan(s.search, s.n_trials, s.sampler, s.seed).distributions()
    assert set(dists) == {"beta3", "tau0", "tau_min", "schedule"}
    for name in ("beta3", "tau0", "tau_min"):
        want = declared[name]
        assert dists[name] == FloatDistribution(want["low"], want["high"],
                                                log=want.get("log", False))
    assert dists["schedule"] == CategoricalDistribution(declared["schedule"])


def test_null_keeps_the_distill_value_out_of_the_search(default_params):
    default_params["sensitivity"]["search"].update(tau_min=None, schedule=None)
    s = load_params(default_params).sensitivity
    assert set(SearchPlan(s.search, 3, "tpe", 0).distributions()) == {"beta3", "tau0"}


@pytest.mark.parametrize(
    ("path", "value", "key", "fragment"),
    [
        (("search", "beta3"), {"low": 5.0, "high": 0.5}, "sensitivity.search.beta3.high",
         "inverted"),
        (("search", "tau0"), {"low": 2.0, "high": 2.0}, "sensitivity.search.tau0.high",
         "empty"),
        (("search", "beta3"), {"low": 0.0, "high": 1.0, "log": True},
         "sensitivity.search.beta3.low", "log"),
        (("search", "schedule"), ["linear", "step"], "sensitivity.search.schedule[1]", "cosine"),
        (("search", "schedule"), [], "sensitivity.search.schedule", "at least one"),
        (("search", "tau_min"), {"low": 0.5, "high": 3.0}, "sensitivity.search.tau_min.high",
         "tau0.low"),
        (("sampler",), "annealing", "sensitivity.sampler", "tpe"),
        (("pruner", "kind"), "mean", "sensitivity.pruner.kind", "median"),
        (("mode",), "bayes", "sensitivity.mode", "grid"),
        (("n_trials",), 0, "sensitivity.n_trials", ">= 1"),
        (("distiller",), "kdd", "sensitivity.distiller", "fitnet"),
        (("storage",), "postgresql://me:secret@db/optuna", "sensitivity.storage",
         "SAKD_OPTUNA_STORAGE"),
        (("storage",), "redis://db", "sensitivity.storage", "journal:"),
        (("grid", "tau0"), [], "sensitivity.grid.tau0", "at least one"),
        (("grid", "tau0"), [0.2], "sensitivity.grid.tau0[0]", "tau_min"),
        (("pair",), {"teacher": "resnet56", "student": "resnet8"},
         "sensitivity.pair.teacher", "runs.pretrain"),
        (("pair",), {"teacher": "resnet9", "student": "resnet8"},
         "sensitivity.pair.teacher", "resnet20"),
        (("pair",), {"teacher": "resnet20"}, "sensitivity.pair.student", "both"),
    ],
)
def test_bad_input_names_the_key(default_params, path, value, key, fragment):
    node = default_params["sensitivity"]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    if path[0] == "grid":
        default_params["sensitivity"]["mode"] = "grid"
    with pytest.raises(ConfigError) as err:
        load_params(default_params)
    assert err.value.key == key
    assert fragment in str(err.value)


def test_a_search_of_nothing_is_rejected(default_params):
    default_params["sensitivity"]["search"] = {k: None for k in
                                               ("beta3", "tau0", "tau_min", "schedule")}
    with pytest.raises(ConfigError, match="at least one") as err:
        load_params(default_params)
    assert err.value.key == "sensitivity.search"


def test_grid_sweeps_one_hyper_parameter_at_a_time(default_params):
    params = load_params(default_params)
    base = base_values(params.distill)
    assert base == {"beta3": 1.0, "tau0": 5.0, "tau_min": 0.5, "schedule": "exponential"}
    points = grid_points(params.sensitivity.grid, base)
    beta3 = [0.1, 0.5, 1.0, 2.0, 5.0]
    tau0 = [1.0, 2.0, 5.0, 10.0]
    expected = [{**base, "beta3": v} for v in beta3]
    expected += [{**base, "tau0": v} for v in tau0 if v != base["tau0"]]  # base point once
    assert points == expected
    dists = GridPlan(points, 0).distributions()
    assert dists["beta3"] == FloatDistribution(0.1, 5.0)
    assert dists["tau_min"] == FloatDistribution(0.5, 0.5)  # not swept: the distill value


def test_trial_config_sets_values_and_shortens_the_run(default_params):
    distill = load_params(default_params).distill  # 6 epochs, milestones [4, 5]
    cfg = trial_config(distill, {"beta3": 0.3, "tau0": 2.0, "schedule": "cosine"}, epochs=2)
    assert (cfg.beta3, cfg.tau.tau0, cfg.tau.tau_min, cfg.tau.schedule) == (0.3, 2.0, 0.5,
                                                                            "cosine")
    assert cfg.epochs == 2 and cfg.milestones == [1]
    assert cfg.lr == distill.lr and cfg.beta1 == distill.beta1  # the rest is the distill run
    with pytest.raises(ConfigError, match="tau_min"):
        trial_config(distill, {"tau0": 0.2}, epochs=2)


def test_milestones_keep_their_fraction_of_the_run():
    assert scale_milestones([150, 180, 210], 240, 24) == [15, 18, 21]
    assert scale_milestones([150, 180, 210], 240, 2) == [1]
    assert scale_milestones([4, 5], 6, 1) == []
