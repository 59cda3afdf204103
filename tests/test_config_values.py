"""params validation with pydantic: non-finite and out-of-range numbers, strict types, devices,
every problem at once, distiller options, and the helpers (hash, flatten, schema, replace)."""

from __future__ import annotations

import pytest

from sakd.config import (
    PRUNER_NAMES,
    SAMPLER_NAMES,
    ConfigError,
    DataConfig,
    DistillConfig,
    Params,
    PretrainConfig,
    RuntimeConfig,
    SensitivityConfig,
    TauConfig,
    TrackingConfig,
    config_hash,
    flatten,
    load_params,
    params_json_schema,
    replace,
)
from sakd.schema.base import _storage


def _set(params: dict, path: tuple, value) -> dict:
    node = params
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value
    return params


def _rejected(params: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_params(params)
    return err.value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(("path", "key"), [
    (("distill", "lr"), "distill.lr"),
    (("distill", "beta3"), "distill.beta3"),
    (("distill", "tau", "tau0"), "distill.tau.tau0"),
    (("distill", "beta2", "at"), "distill.beta2.at"),
    (("sensitivity", "grid", "tau0", 1), "sensitivity.grid.tau0[1]"),
    (("distill", "options", "crd", "nce_t"), "distill.options.crd.nce_t"),
])
def test_non_finite_floats_are_rejected(default_params, path, key, value):
    err = _rejected(_set(default_params, path, value))
    assert err.key == key


@pytest.mark.parametrize("device", ["tpu", "cuda:", "cuda:x", "CPU", "cuda:1:2", " cpu", "",
                                    "cpu;rm", "cuda:12345", "mps:0"])
def test_bad_devices_are_rejected(default_params, device):
    err = _rejected(_set(default_params, ("runtime", "device"), device))
    assert err.key == "runtime.device" and "cuda:N" in str(err)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:7", "mps"])
def test_good_devices_load(default_params, device):
    assert load_params(_set(default_params, ("runtime", "device"), device)).runtime.device == device


@pytest.mark.parametrize(("path", "value", "key"), [
    (("pretrain", "seed"), -1, "pretrain.seed"),
    (("pretrain", "seed"), 2**32, "pretrain.seed"),
    (("runs", "seeds"), [0, 10**30], "runs.seeds[1]"),
    (("sensitivity", "seed"), 10**100, "sensitivity.seed"),
    (("data", "split_seed"), -5, "data.split_seed"),
    (("distill", "epochs"), 0, "distill.epochs"),
    (("pretrain", "epochs"), 10**12, "pretrain.epochs"),
    (("sensitivity", "epochs"), 100_001, "sensitivity.epochs"),
    (("distill", "batch_size"), 10**9, "distill.batch_size"),
    (("distill", "lr"), 11.0, "distill.lr"),
    (("distill", "momentum"), 1.0, "distill.momentum"),
    (("runtime", "threads"), -1, "runtime.threads"),
    (("sensitivity", "n_trials"), 0, "sensitivity.n_trials"),
    (("sensitivity", "baseline_seeds"), -1, "sensitivity.baseline_seeds"),
    (("sensitivity", "baseline_seeds"), 101, "sensitivity.baseline_seeds"),
])
def test_out_of_range_values_are_rejected(default_params, path, value, key):
    err = _rejected(_set(default_params, path, value))
    assert err.key == key
    assert "must be" in err.message


@pytest.mark.parametrize(("path", "value", "key"), [
    (("distill", "epochs"), True, "distill.epochs"),  # a bool is not an int
    (("distill", "epochs"), 6.5, "distill.epochs"),  # no silent truncation
    (("distill", "epochs"), 6.0, "distill.epochs"),
    (("distill", "lr"), "0.05", "distill.lr"),  # no string coercion
    (("distill", "lr"), True, "distill.lr"),
    (("runtime", "autocast"), "yes", "runtime.autocast"),
    (("runtime", "autocast"), 1, "runtime.autocast"),
    (("runs", "pretrain"), "resnet8", "runs.pretrain"),
    (("distill", "tau"), [1, 2], "distill.tau"),
])
def test_types_are_strict(default_params, path, value, key):
    assert _rejected(_set(default_params, path, value)).key == key


def test_baseline_seeds_count_up_from_the_study_seed(default_params):
    s = load_params(default_params).sensitivity
    assert s.baseline_seeds == 3 and s.baseline_seed_list() == [s.seed, s.seed + 1, s.seed + 2]
    _set(default_params, ("sensitivity", "baseline_seeds"), 0)
    assert load_params(default_params).sensitivity.baseline_seed_list() == []
    _set(default_params, ("sensitivity", "seed"), 2**32 - 2)
    _set(default_params, ("sensitivity", "baseline_seeds"), 3)
    err = _rejected(default_params)
    assert err.key == "sensitivity.baseline_seeds" and "<= 4294967295" in err.message
    _set(default_params, ("sensitivity", "baseline_seeds"), True)
    assert _rejected(default_params).key == "sensitivity.baseline_seeds"  # not a bool


def test_the_old_baseline_switch_says_what_replaced_it(default_params):
    del default_params["sensitivity"]["baseline_seeds"]
    _set(default_params, ("sensitivity", "baseline"), True)
    err = _rejected(default_params)
    assert err.key == "sensitivity.baseline"
    assert "replaced by baseline_seeds" in err.message and "0: none" in err.message


@pytest.mark.parametrize("root", ["/tmp/data", "../data", "data/../../x", "~/data", ""])
def test_data_root_stays_inside_the_repository(default_params, root):
    assert _rejected(_set(default_params, ("data", "root"), root)).key == "data.root"


def test_every_problem_is_reported_at_once(default_params):
    _set(default_params, ("distill", "lr"), -1.0)
    _set(default_params, ("runtime", "device"), "tpu")
    _set(default_params, ("runs", "pairs", 0, "teacher"), "resnet9")
    _set(default_params, ("sensitivity", "pruner", "kindd"), "median")
    err = _rejected(default_params)
    keys = [key for key, _ in err.problems]
    assert keys == ["runs.pairs[0].teacher", "distill.lr", "runtime.device",
                    "sensitivity.pruner.kindd"]
    assert err.key == keys[0]
    lines = str(err).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == keys


def test_options_follow_the_distillers_declaration(default_params):
    cfg = load_params(default_params).distill
    assert cfg.options_for("crd").nce_k == 16384
    assert cfg.options_for("ft").pretrain_epochs == 3
    assert cfg.options_for("kd").model_dump() == {}  # declares none
    del default_params["distill"]["options"]
    assert load_params(default_params).distill.options_for("ft").pretrain_epochs == 30


@pytest.mark.parametrize(("options", "key", "fragment"), [
    ({"crd": {"foo": 1}}, "distill.options.crd.foo", "nce_k"),
    ({"crd": {"nce_k": 0}}, "distill.options.crd.nce_k", ">= 1"),
    ({"crd": {"nce_momentum": 1.0}}, "distill.options.crd.nce_momentum", "< 1"),
    ({"ft": {"pretrain_epochs": -1}}, "distill.options.ft.pretrain_epochs", ">= 0"),
    ({"ft": {"pretrain_epochs": 2.5}}, "distill.options.ft.pretrain_epochs", "integer"),
    ({"kd": {"nce_k": 5}}, "distill.options.kd.nce_k", "unknown key"),
    ({"crdd": {}}, "distill.options.crdd", "crd"),
    ({"crd": 5}, "distill.options.crd", "mapping"),
])
def test_bad_options_name_their_key(default_params, options, key, fragment):
    err = _rejected(_set(default_params, ("distill", "options"), options))
    assert err.key == key and fragment in err.message


def test_options_for_an_unknown_distiller_lists_the_valid_ones():
    with pytest.raises(KeyError, match="crd"):
        DistillConfig().options_for("nope")


def test_json_schema_has_the_sections_and_the_declared_options():
    schema = params_json_schema()
    assert {"data", "runs", "pretrain", "distill", "runtime", "tracking",
            "sensitivity"} <= set(schema["properties"])
    options = schema["$defs"]["DistillConfig"]["properties"]["options"]["properties"]
    assert set(options["crd"]["properties"]) == {"nce_k", "feat_dim", "nce_t", "nce_momentum"}
    assert set(options["ft"]["properties"]) == {"pretrain_epochs"}


def test_registries_config_mirrors_stay_equal():
    from sakd.tuning import list_pruners, list_samplers

    assert sorted(PRUNER_NAMES) == list_pruners()
    assert sorted(SAMPLER_NAMES) == list_samplers()


@pytest.mark.parametrize("url", [
    "sqlite:///optuna.db", "sqlite:////abs/x.db", "journal:o.journal", "journal:", "journal:///",
    "postgresql://me@db/optuna", "postgresql://me:secret@db/optuna", "mysql+pymysql://u:p@h/d",
    "redis://db", "optuna.db", "",
])
def test_storage_check_agrees_with_the_tuning_rules(url):
    from sakd.tuning.storage import check_storage_url

    try:
        _storage(url)
        ok = True
    except ValueError:
        ok = False
    assert ok == (check_storage_url(url) is None)


@pytest.mark.parametrize("model", [DataConfig, PretrainConfig, DistillConfig, TauConfig,
                                   RuntimeConfig, TrackingConfig, SensitivityConfig])
def test_defaults_are_valid(model):
    model().check()  # validates every field as if written out


def test_params_defaults_construct():
    assert Params().distill.tau.tau0 == 5.0


def test_config_hash_is_stable_and_ignores_object_identity(default_params):
    a, b = load_params(default_params), load_params(default_params)
    assert config_hash(a.pretrain, "resnet8") == config_hash(b.pretrain, "resnet8")
    assert config_hash(a.distill) != config_hash(replace(a.distill, beta3=2.0))
    # the hash of an unchanged section is the one the dataclass config gave (resume safety);
    # pinned to the schedule that hash was taken with, whatever params.yaml's default is now
    old = replace(a.pretrain, epochs=6, milestones=[4, 5])
    assert config_hash(old) == "216b6270c774"


def test_flatten_gives_dotted_mlflow_params(default_params):
    flat = flatten(load_params(default_params).distill, "distill")
    assert flat["distill.tau.tau0"] == 5.0
    assert flat["distill.options.crd.nce_k"] == 16384
    assert flat["distill.lr_by_arch.mobilenetv2"] == 0.01


def test_replace_is_unvalidated_until_check(default_params):
    tau = load_params(default_params).distill.tau
    bad = replace(tau, tau_min=9.0)
    with pytest.raises(ConfigError) as err:
        bad.check()
    assert err.value.key == "tau_min"


@pytest.mark.parametrize(("path", "names"), [
    (("distill", "policy_init"), "sakd.spots.policy:list_policy_init_choices"),
    (("distill", "routing_loss"), "sakd.spots.routing_loss:list_routing_losses"),
    (("distill", "teacher_loss"), "sakd.train.teacher_loss:list_teacher_losses"),
    (("distill", "teacher_trainable"), "sakd.train.teacher_loss:TEACHER_TRAINABLE"),
    (("distill", "tau", "per"), "sakd.spots.tau:TAU_UNITS"),
    (("distill", "tau", "schedule"), "sakd.spots.tau:list_tau_schedules"),
])
def test_choice_keys_take_their_names_from_the_registry(default_params, path, names):
    """One source: a choice key accepts exactly its registry's names and lists them."""
    import importlib

    module, attr = names.split(":")
    found = getattr(importlib.import_module(module), attr)
    valid = sorted(found() if callable(found) else found)
    for name in valid:
        load_params(_set(default_params, path, name))
    err = _rejected(_set(default_params, path, "no_such_name"))
    assert err.key == ".".join(path) and f"valid: {', '.join(valid)}" in err.message


def test_the_sensitivity_schedules_default_to_the_registry_in_registration_order():
    from sakd.config import SearchSpaceConfig
    from sakd.spots.tau import TAU_SCHEDULES

    assert SearchSpaceConfig().schedule == ["constant", "linear", "exponential", "cosine"]
    assert SearchSpaceConfig().schedule == TAU_SCHEDULES.names(sort=False)
