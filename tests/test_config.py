"""params.yaml validation: bad input is rejected with the key named, good input loads."""

from __future__ import annotations

import pytest

from sakd.config import ConfigError, load_params


def test_repository_params_are_valid(default_params):
    params = load_params(default_params)
    assert params.data.dataset == "digits"
    assert params.distill.beta2_for("sp") == 3000.0  # Table II default
    assert params.distill.beta2_for("at") == 50.0  # the digits override in params.yaml
    assert params.pretrain.lr_for("mobilenetv2") == 0.01


@pytest.mark.parametrize(
    ("path", "value", "key", "fragment"),
    [
        (("pretrain", "lr"), -0.1, "pretrain.lr", "> 0"),
        (("pretrain", "epochs"), "ten", "pretrain.epochs", "integer"),
        (("data", "dataset"), "mnist", "data.dataset", "cifar100"),
        (("runs", "distillers"), ["kd", "fitnets"], "runs.distillers[1]", "fitnet"),
        (("runs", "strategies"), ["sometimes"], "runs.strategies[0]", "adaptive"),
        (("runs", "pretrain"), ["resnet20", "resnet9"], "runs.pretrain[1]", "resnet8"),
        (("distill", "tau", "schedule"), "step", "distill.tau.schedule", "cosine"),
        (("distill", "tau", "tau_min"), 9.0, "distill.tau.tau_min", "tau0"),
        (("distill", "milestones"), [5, 3], "distill.milestones", "increasing"),
        (("distill", "policy_init"), "random", "distill.policy_init", "neutral"),
        (("distill", "beta2"), {"att": 1.0}, "distill.beta2.att", "valid"),
        (("runtime", "device"), "tpu", "runtime.device", "cuda"),
    ],
)
def test_bad_values_name_the_key(default_params, path, value, key, fragment):
    node = default_params
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        load_params(default_params)
    assert err.value.key == key
    assert fragment in str(err.value)


def test_unknown_key_lists_valid_keys(default_params):
    default_params["distill"]["beta_3"] = 1.0
    with pytest.raises(ConfigError) as err:
        load_params(default_params)
    assert err.value.key == "distill.beta_3"
    assert "beta3" in str(err.value)


def test_pair_members_must_be_pretrained(default_params):
    default_params["runs"]["pairs"].append({"teacher": "resnet56", "student": "resnet8"})
    with pytest.raises(ConfigError) as err:
        load_params(default_params)
    added = len(default_params["runs"]["pairs"]) - 1
    assert err.value.key == f"runs.pairs[{added}].teacher"
    assert "runs.pretrain" in str(err.value)
