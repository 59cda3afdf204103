"""DKD in the pipeline: it replaces KD at the logit spot of the training step, gated per sample
by every strategy, warmed up per epoch, configured under distill.options.dkd, reported.
(The loss itself against mdistiller and the paper: tests/test_dkd_parity.py.)"""

from __future__ import annotations

import pytest
import torch

from sakd.build import build_distill_run, build_distill_step
from sakd.config import ConfigError, DistillConfig, load_params
from sakd.data import fetch_dataset
from sakd.distillers import create_distiller
from sakd.distillers.functional import dkd_per_sample, kd_per_sample
from sakd.models import create_model
from sakd.reference import paper_lookup
from sakd.report import comparison_table, parse_evaluate
from sakd.spots import list_strategies
from tests.conftest import repo_params
from tests.syncs import count_host_syncs
from tests.tinynets import TinyNet

B, CLASSES = 8, 5


def _step(distiller: str, strategy: str, **options):
    torch.manual_seed(0)
    student, teacher = TinyNet(2), TinyNet(4)
    x = torch.randn(B, 3, 8, 8)
    y = torch.arange(B) % CLASSES
    with torch.no_grad():
        feats_s = student.eval()(x[:2], return_features=True)[0]
        feats_t = teacher.eval()(x[:2], return_features=True)[0]
    student.train()
    d = create_distiller(distiller, feats_s, feats_t, **options)
    step = build_distill_step(student, teacher, d, strategy, x[:2], DistillConfig(), tau=1.0,
                              generator=torch.Generator().manual_seed(1))
    return step, x, y


def _teacher_logits(step, x):
    with torch.no_grad():
        return step.teacher.eval()(x)


@pytest.mark.parametrize("strategy", list_strategies())
def test_dkd_replaces_kd_at_the_logit_spot_gated_by_its_mask_column(strategy):
    step, x, y = _step("dkd", strategy, warmup=4)
    step.start_epoch(1)  # warm-up scale 2/4
    sp = step.forward_student(x, y)
    logits_t = _teacher_logits(step, x)
    per_sample = dkd_per_sample(sp.logits_s.detach(), logits_t, y) * 0.5
    want = (per_sample * sp.mask[:, -1]).mean()
    torch.testing.assert_close(sp.kd.detach(), want, rtol=1e-5, atol=1e-6)
    assert sp.spot_losses.shape == (0,)  # no feature spot: the logit spot is DKD's only one
    if strategy == "never":
        assert sp.kd == 0 and sp.mask[:, -1].sum() == 0
    if strategy == "always":
        assert sp.mask[:, -1].min() == 1 and sp.kd > 0
        kd = (kd_per_sample(sp.logits_s.detach(), logits_t, 4.0)).mean()
        assert not torch.isclose(sp.kd.detach(), kd)  # not KD


def test_other_distillers_keep_kd_at_the_logit_spot():
    step, x, y = _step("at", "always")
    sp = step.forward_student(x, y)
    want = kd_per_sample(sp.logits_s.detach(), _teacher_logits(step, x), 4.0).mean()
    torch.testing.assert_close(sp.kd.detach(), want, rtol=1e-5, atol=1e-6)


def test_a_masked_out_sample_gets_no_dkd_gradient():
    """Gating per sample: the logit loss of a sample whose mask is 0 sends its logits no
    gradient (the images are coupled through BatchNorm, so the logits are where to look)."""
    step, x, y = _step("dkd", "always", warmup=0)
    mask = torch.ones(B, 1)
    mask[::2] = 0
    sp = step.forward_student(x, y, mask=mask)
    sp.logits_s.retain_grad()
    sp.kd.backward()
    per_sample = sp.logits_s.grad.abs().sum(1)
    assert torch.all(per_sample[::2] == 0) and torch.all(per_sample[1::2] > 0)


@pytest.mark.parametrize("strategy", list_strategies())
def test_dkd_step_never_syncs_with_the_host_warmup_included(strategy, one_thread):
    step, x, y = _step("dkd", strategy)
    with count_host_syncs() as calls:
        for epoch in range(2):
            step.start_epoch(epoch)
            step(x, y)
    assert sum(calls.values()) == 0, dict(calls)


def test_step_start_epoch_sets_the_warmup_and_ce_weight_is_mdistillers():
    step, _, _ = _step("dkd", "always", warmup=5)
    scales = []
    for epoch in (0, 2, 4, 9):
        step.start_epoch(epoch)
        scales.append(step.distiller.warmup_scale.item())
    assert scales == pytest.approx([0.2, 0.6, 1.0, 1.0])
    assert step.ce_weight == 1.0  # mdistiller CFG.DKD.CE_WEIGHT


# ---------------------------------------------------------------------- params.yaml
def test_dkd_options_are_declared_validated_and_reach_the_run(tmp_path, one_thread):
    raw = repo_params()
    raw["runs"]["distillers"] = ["kd", "dkd"]
    raw["distill"]["options"]["dkd"] = {"alpha": 1, "beta": 2.0, "temperature": 4.0, "warmup": 3}
    params = load_params(raw)
    assert params.distill.options_for("dkd").model_dump() == {
        "alpha": 1.0, "beta": 2.0, "temperature": 4.0, "warmup": 3}
    assert load_params(repo_params()).distill.options_for("dkd").model_dump() == {
        "alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup": 20}  # mdistiller CIFAR-100
    for bad, key in (({"gamma": 1.0}, "distill.options.dkd.gamma"),
                     ({"beta": -1.0}, "distill.options.dkd.beta"),
                     ({"temperature": 0.0}, "distill.options.dkd.temperature")):
        wrong = repo_params()
        wrong["distill"]["options"]["dkd"] = bad
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_params(wrong)

    fetch_dataset(params.data.dataset, tmp_path)
    for strategy in list_strategies():  # digits, two steps of every strategy
        run = build_distill_run(params, tmp_path, torch.device("cpu"),
                                lambda n: create_model("resnet8", n), "resnet8", "dkd",
                                strategy, 0)
        assert run.step.distiller.options.beta == 2.0
        run.step.start_epoch(0)
        batches = iter(run.train_loader)
        stats = [run.step(*next(batches)) for _ in range(2)]
        means = {k: torch.stack([s[k].float() for s in stats]).mean(0) for k in stats[0]}
        metrics = run.step.epoch_metrics(means)
        assert all(torch.isfinite(v).all() for s in stats for v in s.values())
        p_logits = metrics["route/p_distill/logits"]
        assert {"never": p_logits == 0.0, "always": p_logits == 1.0}.get(strategy, True)
        assert (metrics["train/kd"] == 0.0) == (strategy == "never" or p_logits == 0.0)


def test_report_tables_print_a_dkd_row_without_a_paper_cell():
    def run(distiller, strategy, seed, top1):
        return (f"resnet56-resnet20/{distiller}-{strategy}/seed{seed}", {
            "teacher": "resnet56", "student": "resnet20", "distiller": distiller,
            "strategy": strategy, "seed": seed, "top1": top1, "top5": 90.0, "val_top1": top1,
            "best_val_top1": top1, "best_epoch": 3, "epochs": 4})

    results = parse_evaluate({
        "teachers": {"resnet56": {"top1": 72.5, "top5": 92.0},
                     "resnet20": {"top1": 69.0, "top5": 91.0}},
        "students": dict([run("dkd", "always", 0, 70.0), run("dkd", "adaptive", 0, 71.0),
                          run("at", "always", 0, 69.5)])})
    table = comparison_table(results, ("resnet56", "resnet20"), paper=paper_lookup("cifar100"))
    labels = [row[0] for row in table.rows]
    assert labels.index("AT") < labels.index("DKD")  # after the paper's rows
    dkd_row = table.rows[labels.index("DKD")]
    assert dkd_row[1].startswith("70.00") and dkd_row[2].startswith("71.00")
    assert "paper" not in " ".join(dkd_row)


@pytest.mark.slow  # dynamo traces the step: ~30-60 s on 2 cores
def test_captured_dkd_step_reads_the_warmup_without_recompiling(one_thread):
    """The warm-up scale is a buffer set in place: a captured step follows it epoch by epoch,
    equal to the eager step, with no new graph once compiled."""
    from torch._dynamo.utils import counters

    from sakd.train.capture import CapturedStep

    eager, x, y = _step("dkd", "always", warmup=4)
    captured_step, _, _ = _step("dkd", "always", warmup=4)
    captured = CapturedStep(captured_step, backend="aot_eager")
    graphs = None
    for epoch in range(4):
        for step in (eager, captured):
            step.start_epoch(epoch)
        stats_e, stats_c = eager(x, y), captured(x, y)
        for key in stats_e:
            torch.testing.assert_close(stats_c[key], stats_e[key], rtol=1e-4, atol=1e-5)
        if epoch == 1:  # compiled for a fresh optimiser, then with momentum
            graphs = counters["stats"]["unique_graphs"]
    assert captured.distiller.warmup_scale.item() == 1.0
    assert counters["stats"]["unique_graphs"] == graphs
