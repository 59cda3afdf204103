"""Per-architecture optimiser recipes: the zoo's transformers train with AdamW and a linear
warm-up (SGD leaves them at chance), every CNN keeps the paper's SGD; one rule
(`Schedule.optimizer_for`) serves pretraining and distillation, and a params hash that does
not touch the recipes is the one it had before they existed."""

from __future__ import annotations

import pytest
import torch

from sakd.build import build_distill_step, lr_schedulers
from sakd.build_pretrain import build_supervised_run
from sakd.config import DistillConfig, load_params
from sakd.data import fetch_dataset
from sakd.distillers import create_distiller
from sakd.models import create_model
from sakd.schema import ConfigError, PretrainConfig, config_hash
from sakd.schema.base import validate
from sakd.train.optimizers import lr_schedule
from tests.conftest import repo_params

pytestmark = pytest.mark.usefixtures("one_thread")


def test_transformers_default_to_adamw_with_warmup_cnns_to_the_schedules_sgd():
    cfg = PretrainConfig(lr=0.1, momentum=0.8, weight_decay=1e-4)
    vit = cfg.optimizer_for("vit_nano")
    assert (vit.name, vit.lr, vit.weight_decay, vit.warmup_epochs) == ("adamw", 1e-3, 0.05, 5)
    assert cfg.optimizer_for("vit_tiny") == vit
    cnn = cfg.optimizer_for("resnet8")
    assert (cnn.name, cnn.lr, cnn.momentum, cnn.weight_decay, cnn.warmup_epochs) == \
        ("sgd", 0.1, 0.8, 1e-4, 0)
    assert cfg.optimizer_for("mobilenetv2").lr == 0.01  # lr_by_arch still applies to SGD
    assert cfg.lr_for("vit_nano") == 1e-3


def test_a_recipe_from_params_yaml_reaches_the_config():
    cfg = validate(PretrainConfig, {"optimizer_by_arch": {
        "resnet8": {"name": "adamw", "lr": 0.002, "weight_decay": 0.01, "warmup_epochs": 2}}})
    assert cfg.optimizer_for("resnet8").name == "adamw"
    assert cfg.optimizer_for("vit_nano").name == "sgd"  # the mapping replaces the default


@pytest.mark.parametrize("recipes, key, words", [
    ({"vit_nano": {"name": "lbfgs", "lr": 0.1}}, "optimizer_by_arch.vit_nano.name",
     "unknown optimizer 'lbfgs'; valid: adamw, sgd"),
    ({"vit_nano": {"name": "adamw"}}, "optimizer_by_arch.vit_nano.lr", ""),
    ({"not_a_net": {"name": "adamw", "lr": 0.1}}, "optimizer_by_arch", "not_a_net"),
    ({"vit_nano": {"name": "adamw", "lr": 0.1, "warmup_epochs": -1}},
     "optimizer_by_arch.vit_nano.warmup_epochs", ""),
])
def test_bad_recipes_are_refused_naming_the_key(recipes, key, words):
    with pytest.raises(ConfigError) as err:
        validate(PretrainConfig, {"optimizer_by_arch": recipes})
    assert key in str(err.value) and words in str(err.value)


def test_an_arch_with_both_an_lr_and_a_recipe_is_refused():
    with pytest.raises(ConfigError, match="mobilenetv2 also in optimizer_by_arch"):
        validate(PretrainConfig, {"optimizer_by_arch": {"mobilenetv2": {"name": "sgd",
                                                                         "lr": 0.02}}})


def test_default_recipes_leave_the_params_hash_as_it_was():
    """Runs published before the recipes existed keep their hash (and resume); the presets'
    pinned hashes (test_config_hashes) hold for the same reason."""
    cfg = PretrainConfig()
    without = cfg.model_dump()
    without.pop("optimizer_by_arch")
    assert config_hash(cfg) == config_hash_of(without)
    changed = validate(PretrainConfig, {"optimizer_by_arch": {
        "vit_nano": {"name": "adamw", "lr": 0.002}}})
    assert config_hash(changed) != config_hash(cfg)


def config_hash_of(data: dict) -> str:
    """config_hash of a plain mapping as the hashing dumps it (what a pre-recipe config was)."""
    import hashlib
    import json

    blob = json.dumps([data], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, epochs: int) -> list[float]:
    out = []
    for _ in range(epochs):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_warmup_ramps_linearly_then_the_multistep_decay_applies():
    lrs = _lrs(lr_schedule(_optimizer(), [4, 6], 0.1, warmup_epochs=3), 8)
    assert lrs == pytest.approx([1 / 3, 2 / 3, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_no_warmup_is_torchs_multistep_decay_as_before():
    scheduler = lr_schedule(_optimizer(), [2], 0.1)
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR)
    assert _lrs(scheduler, 3) == pytest.approx([1, 1, 0.1])


def test_a_warmup_schedule_resumes_from_its_state():
    first = lr_schedule(_optimizer(), [4], 0.1, warmup_epochs=3)
    _lrs(first, 2)
    resumed = lr_schedule(_optimizer(), [4], 0.1, warmup_epochs=3)
    resumed.load_state_dict(first.state_dict())
    resumed.optimizer.param_groups[0]["lr"] = first.optimizer.param_groups[0]["lr"]
    assert _lrs(resumed, 4) == pytest.approx([1, 1, 0.1, 0.1])


def _adaptive_at_step(teacher_arch: str, student_arch: str, cfg: DistillConfig):
    torch.manual_seed(0)
    teacher, student = create_model(teacher_arch, 10), create_model(student_arch, 10)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        feats_s, _ = student.eval()(x, return_features=True)
        feats_t, _ = teacher.eval()(x, return_features=True)
    return build_distill_step(student, teacher, create_distiller("at", feats_s, feats_t),
                              "adaptive", x, cfg)


def test_distill_step_trains_a_vit_student_and_its_router_with_adamw():
    cfg = DistillConfig(router_lr_ratio=0.5, router_weight_decay=1e-3)
    opts = _adaptive_at_step("resnet8", "vit_nano", cfg).optimizers
    assert isinstance(opts["student"], torch.optim.AdamW)
    assert opts["student"].param_groups[0]["lr"] == 1e-3
    assert opts["student"].param_groups[0]["weight_decay"] == 0.05
    assert isinstance(opts["router"], torch.optim.AdamW)
    assert opts["router"].param_groups[0]["lr"] == pytest.approx(5e-4)
    assert opts["router"].param_groups[0]["weight_decay"] == 1e-3
    scheds = lr_schedulers(opts, [3], 0.1, warmup_epochs=5)
    assert opts["student"].param_groups[0]["lr"] == pytest.approx(1e-3 / 5)  # epoch 0 of 5
    assert scheds["router"].get_last_lr() == pytest.approx([5e-4])  # the router: no warm-up


def test_distill_step_keeps_sgd_for_a_cnn_student():
    step = _adaptive_at_step("resnet14", "resnet8", DistillConfig(lr=0.07))
    assert all(type(o) is torch.optim.SGD for o in step.optimizers.values())
    assert step.optimizers["student"].param_groups[0]["lr"] == 0.07


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    params = load_params(repo_params())
    root = tmp_path_factory.mktemp("digits")
    fetch_dataset(params.data.dataset, root)
    return params, root


@pytest.mark.parametrize("arch, optimizer, scheduler", [
    ("vit_nano", torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR),
    ("resnet8", torch.optim.SGD, torch.optim.lr_scheduler.MultiStepLR),
])
def test_pretraining_follows_the_arch_recipe(digits, arch, optimizer, scheduler):
    params, root = digits
    run = build_supervised_run(params, root, torch.device("cpu"), arch)
    assert type(run.optimizers["model"]) is optimizer
    assert type(run.schedulers["model"]) is scheduler
    assert run.optimizers["model"].param_groups[0]["initial_lr"] == \
        params.pretrain.optimizer_for(arch).lr
