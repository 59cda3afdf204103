"""The captured (compiled) step computes what the eager step computes, and never syncs."""

from __future__ import annotations

import pytest
import torch

from sakd.build import build_distill_step, lr_schedulers
from sakd.config import ConfigError, DistillConfig, load_params
from sakd.distillers import create_distiller
from sakd.spots import list_strategies
from sakd.train.capture import CapturedStep, compile_mode
from sakd.train.evaluate import evaluate
from tests.conftest import repo_params
from tests.syncs import count_host_syncs
from tests.tinynets import TinyNet

B, CLASSES, STEPS, MILESTONE = 8, 5, 5, 2


def _step(strategy: str, fused: bool = False):
    """A tiny AT step: tau falls every step (per-step linear), LR x0.1 at epoch MILESTONE."""
    torch.manual_seed(0)
    student, teacher = TinyNet(2), TinyNet(4)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        feats_s = student.eval()(x, return_features=True)[0]
        feats_t = teacher.eval()(x, return_features=True)[0]
    student.train()
    cfg = DistillConfig(epochs=STEPS, milestones=[MILESTONE],
                        tau={"schedule": "linear", "per": "step", "tau0": 5.0, "tau_min": 1.0})
    step = build_distill_step(student, teacher, create_distiller("at", feats_s, feats_t),
                              strategy, x, cfg, steps_per_epoch=1, fused_optimizer=fused,
                              generator=torch.Generator().manual_seed(3))
    return step, lr_schedulers(step.optimizers, cfg.milestones, cfg.lr_decay)


def _batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(B, 3, 8, 8, generator=g), torch.randint(0, CLASSES, (B,), generator=g))
            for _ in range(STEPS)]


def _grads(step) -> list[torch.Tensor]:
    params = [*step.student.parameters(), *step.router_parameters()]
    return [p.grad.clone() for p in params if p.grad is not None]


def _assert_same(a, b, decisions_x):
    (eager, stats_e), (captured, stats_c) = a, b
    assert stats_e.keys() == stats_c.keys()
    for key in stats_e:
        torch.testing.assert_close(stats_c[key], stats_e[key], rtol=1e-4, atol=1e-5)
    for g_c, g_e in zip(_grads(captured), _grads(eager), strict=True):
        torch.testing.assert_close(g_c, g_e, rtol=1e-3, atol=1e-5)
    assert torch.equal(captured.decide(decisions_x), eager.decide(decisions_x))
    assert captured.tau == eager.tau
    assert [o.param_groups[0]["lr"] for o in captured.optimizers.values()] == \
        [o.param_groups[0]["lr"] for o in eager.optimizers.values()]


@pytest.mark.slow  # dynamo traces once per optimiser state and LR: ~30-50 s each on 2 cores
@pytest.mark.parametrize(("strategy", "backend"), [
    ("adaptive", "aot_eager"), ("random", "aot_eager"), ("adaptive", "inductor")])
def test_captured_step_matches_the_eager_step_and_never_syncs(strategy, backend, one_thread):
    """Losses, per-spot decisions, gradients, tau and LR agree over STEPS steps (one per epoch),
    across an LR milestone and a tau change at every step. Once compiled (fresh optimiser, then
    with momentum, then the milestone's LR), tau changes neither recompile nor sync.

    aot_eager is dynamo's graphs and AOT autograd exactly as inductor receives them, without
    inductor's C++ code generation (minutes on 2 cores without its cache)."""
    from torch._dynamo.utils import counters

    eager, eager_sched = _step(strategy)
    captured_step, captured_sched = _step(strategy)
    captured = CapturedStep(captured_step, backend=backend)
    taus, graphs = [], None
    for epoch, (x, y) in enumerate(_batches()):
        stats_e = eager(x, y)
        if epoch > MILESTONE:
            graphs = counters["stats"]["unique_graphs"] if graphs is None else graphs
            with count_host_syncs() as calls:
                stats_c = captured(x, y)
            assert sum(calls.values()) == 0, dict(calls)
        else:
            stats_c = captured(x, y)
        _assert_same((eager, stats_e), (captured, stats_c), x)
        taus.append(captured.tau)
        for sched in (*eager_sched.values(), *captured_sched.values()):
            sched.step()
    assert len(set(taus)) == STEPS  # tau moved at every step
    assert counters["stats"]["unique_graphs"] == graphs  # ... without a new graph


@pytest.mark.parametrize("strategy", list_strategies())
def test_eager_step_never_syncs_with_the_host(strategy, one_thread):
    step, _ = _step(strategy)
    x, y = _batches()[0]
    with count_host_syncs() as calls:
        for _ in range(2):
            step(x, y)
    assert sum(calls.values()) == 0, dict(calls)


def test_sync_counter_sees_a_sync():
    """The counter the no-sync tests rely on does catch the usual culprits."""
    t = torch.ones(3)
    with count_host_syncs() as calls:
        t.sum().item()
        bool(t.any())
        t.tolist()
    assert calls == {"item": 1, "__bool__": 1, "tolist": 1}


def test_evaluation_syncs_once_however_many_batches(one_thread):
    torch.manual_seed(0)
    model = TinyNet(2)
    batches = [(torch.randn(4, 3, 8, 8), torch.arange(4) % CLASSES) for _ in range(5)]
    with count_host_syncs() as calls:
        result = evaluate(model, batches)
    assert calls == {"tolist": 1}
    assert 0 <= result["top1"] <= 100


def test_fused_optimizer_is_foreach_on_cpu_and_trains_the_same(one_thread):
    plain, _ = _step("adaptive")
    fused, _ = _step("adaptive", fused=True)
    assert all(o.defaults["foreach"] for o in fused.optimizers.values())
    assert not any(o.defaults["foreach"] for o in plain.optimizers.values())
    for x, y in _batches()[:2]:
        a, b = plain(x, y), fused(x, y)
        torch.testing.assert_close(b["loss"], a["loss"])
    for p, q in zip(plain.student.parameters(), fused.student.parameters(), strict=True):
        torch.testing.assert_close(q, p)


def test_compile_mode_is_cuda_graphs_on_cuda_only():
    assert compile_mode("cuda") == "reduce-overhead"
    assert compile_mode("cpu") is None


def test_runtime_switches_validate():
    rt = load_params({"runtime": {"capture": True, "fused_optimizer": True}}).runtime
    assert rt.capture and rt.fused_optimizer
    defaults = load_params({}).runtime
    assert not defaults.capture and not defaults.fused_optimizer
    with pytest.raises(ConfigError, match=r"runtime\.capture"):
        load_params({"runtime": {"capture": True, "compile": True}})
    with pytest.raises(ConfigError, match=r"runtime\.fused_optimizer"):
        load_params({"runtime": {"fused_optimizer": "yes please"}})


@pytest.mark.slow  # capture: fetches the dataset and builds a whole captured run
def test_runtime_capture_builds_a_captured_run_on_full_batches(tmp_path, one_thread):
    """params.yaml's switches reach the run: captured step, foreach SGD, no partial batch."""

    from sakd.build import build_distill_run
    from sakd.data import fetch_dataset
    from sakd.models import create_model

    raw = repo_params()
    raw["runtime"].update(capture=True, fused_optimizer=True, device="cpu")
    params = load_params(raw)
    fetch_dataset(params.data.dataset, tmp_path)
    run = build_distill_run(params, tmp_path, torch.device("cpu"),
                            lambda n: create_model("resnet8", n), "resnet8", "kd", "adaptive", 0)
    assert isinstance(run.step, CapturedStep)
    assert all(o.defaults["foreach"] for o in run.optimizers.values())
    batch = params.distill.batch_size
    assert len(run.train_loader) == run.train_loader.num_samples // batch
    assert all(x.shape[0] == batch for x, _, _ in run.train_loader)


def test_capture_and_data_parallel_use_the_steps_hooks_not_patches():
    """A captured step keeps the step's own methods and distiller (no monkey-patching): the
    eager route is the `route_fn` hook, tau comes from `advance_tau`, the data-parallel share
    of a distiller's pre-phase is an `after_prepare` hook called with the distiller."""
    step, _ = _step("adaptive")
    prepare = step.distiller.prepare
    captured = CapturedStep(step)
    assert step.route_fn is not step.route and "route" not in vars(step)
    assert step.distiller.prepare == prepare and "prepare" not in vars(step.distiller)
    taus = [step.advance_tau() for _ in range(3)]  # the per-step linear schedule falls
    assert taus == sorted(taus, reverse=True) and step.tau == taus[-1]
    seen = []
    captured.after_prepare.append(seen.append)
    captured.start_epoch(0, _batches())
    assert seen == [step.distiller]


def test_cuda_graph_steps_are_marked_once_per_iteration(monkeypatch, one_thread):
    """Under CUDA graphs each iteration starts a new graph step (the foreach optimiser read
    overwritten graph outputs on a GPU without it); elsewhere nothing is marked."""
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    batches = _batches()[:2]
    captured = CapturedStep(_step("always")[0], backend="eager")
    for x, y in batches:
        captured(x, y)
    assert marks == []
    captured.clone_outputs = True  # what mode "reduce-overhead" (CUDA) sets
    for x, y in batches:
        captured(x, y)
    assert marks == [1, 1]
