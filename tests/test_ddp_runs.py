"""Data-parallel runs: 2 gloo processes on the embedded digits data (CPU).

The two processes (tests/ddp_worker.py) join the group from the same env variables torchrun
sets, run the real pretrain and spot-adaptive distill stages, then a few raw steps.

What matches one process and what does not, and why:
- The ranks' shares together are exactly the single-process global batch, and gradients are
  averaged, so a step equals one process's step on the mean of the two half-batch losses.
- BatchNorm batch statistics are per rank on CPU (torch's SyncBatchNorm has no CPU kernel):
  each half is normalised by its own mean/var, so the loss is compared with one process that
  runs the two halves separately (ghost batches), not with one 64-sample forward. On CUDA the
  nets use SyncBatchNorm and the statistics are the global batch's.
- Gumbel draws (adaptive) and coin flips (random) are per rank: rank 0 keeps the single-process
  stream, ranks > 0 are reseeded. Rank 0's first loss is therefore exactly the single process's
  loss on the first half; later adaptive steps differ (rank 1's draws), but every rank holds
  the same weights after every step.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import mlflow
import pytest
import torch
import torch.multiprocessing as mp
import yaml

from pipeline.paths import Layout, run_key
from pipeline.trained import load_trained
from sakd.build import build_distill_run
from sakd.build_pretrain import build_supervised_run
from sakd.train.checkpoint import load_checkpoint
from sakd.train.evaluate import evaluate
from tests import ddp_worker
from tests.conftest import on_digits
from tests.studies import fetched_project, tiny_study

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory, one_thread):
    """A digits project (resnet8 teacher and student, AT, 2 epochs) run by 2 gloo ranks."""
    root = tmp_path_factory.mktemp("ddp")
    params = fetched_project(root, tiny_study("resnet8", "resnet8", ["at"], ["adaptive"],
                                              decision_grid=8))
    out = root / "results"
    out.mkdir()
    mp.spawn(ddp_worker.main, args=(2, free_port(), str(root), str(out)), nprocs=2, join=True)
    ranks = [torch.load(out / f"rank{k}.pt", weights_only=True) for k in range(2)]
    return root, params, ranks


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.chunk(2)


def test_rank0_alone_writes_outputs_and_exactly_one_mlflow_run_per_cell(ddp):
    root, _params, ranks = ddp
    assert ranks[0]["pretrain_metrics"]["final_epoch"] == 2 and ranks[1]["pretrain_metrics"] == {}
    assert ranks[1]["distill_metrics"] == {}
    layout = Layout(root, "digits")
    key = run_key("resnet8", "resnet8", "at", "adaptive", 0)
    assert json.loads(layout.distill_metrics(key).read_text()) == ranks[0]["distill_metrics"]
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    cells = (("sakd-pretrain", "resnet8", "digits/resnet8"),
             ("sakd-distill", "at adaptive s0", f"digits/{key}"))
    for experiment, name, path in cells:
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id])
        assert [(r.info.run_name, r.data.tags["run_path"]) for r in runs] == [(name, path)]
        assert runs[0].info.status == "FINISHED"


def test_logged_fractions_and_metrics_are_global(ddp):
    _root, _params, ranks = ddp
    for result in ranks:  # rank 0: p = [0, 2] / 2 samples; rank 1: [4, 2] / 2 -> global [1, 1]
        g = result["global"]
        assert g["samples"] == 4 and g["correct"] == 3
        torch.testing.assert_close(g["means"], torch.tensor([1.0, 1.0]))


def test_distilled_checkpoint_loads_into_a_single_process_run(ddp):
    root, params, ranks = ddp
    path = Layout(root, "digits").student(run_key("resnet8", "resnet8", "at", "adaptive", 0))
    state = load_checkpoint(path)
    assert len(state["rng"]) == 2  # each rank's RNG state, for an exact resume
    student, _ = load_trained(path, "student", "distill", "resnet8")
    run = build_supervised_run(params, root / "data", torch.device("cpu"), "resnet8")
    top1 = evaluate(student.to(memory_format=torch.channels_last), run.data.test)["top1"]
    assert top1 == pytest.approx(ranks[0]["distill_metrics"]["top1"], abs=1e-6)


def test_pretrain_steps_equal_one_process_on_the_two_halves(ddp):
    root, params, ranks = ddp
    run = build_supervised_run(params, root / "data", torch.device("cpu"), "resnet8")
    model, opt = run.model, run.optimizers["model"]
    expected = []
    for _, (x, y, _i) in zip(range(ddp_worker.STEPS), run.train_loader, strict=False):
        model.train()
        losses = [torch.nn.functional.cross_entropy(model(xh), yh)
                  for xh, yh in zip(halves(x), halves(y), strict=True)]
        loss = sum(losses) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        expected.append([float(v.detach()) for v in losses])
    for k, result in enumerate(ranks):
        got = result["pretrain_steps"]["losses"]
        assert got == pytest.approx([e[k] for e in expected], abs=1e-5)
        torch.testing.assert_close(result["pretrain_steps"]["weights"],
                                   ddp_worker.flat_params(model), atol=1e-5, rtol=1e-4)


def _single_distill(params, root: Path, strategy: str):
    from pipeline.distill import _teacher_factory

    run = build_distill_run(params, root / "data", torch.device("cpu"),
                            _teacher_factory(params, root, "resnet8"), "resnet8", "at",
                            strategy, seed=0)
    run.step.start_epoch(0)
    return run


def test_always_distill_steps_equal_one_process_on_the_two_halves(ddp):
    root, params, ranks = ddp
    run = _single_distill(params, root, "always")
    step, opt = run.step, run.step.optimizers["student"]
    expected = []
    for _, (x, y, i) in zip(range(ddp_worker.STEPS), run.train_loader, strict=False):
        passes = [step.forward_student(*h) for h in zip(halves(x), halves(y), halves(i),
                                                         strict=True)]
        opt.zero_grad()
        (sum(p.loss for p in passes) / 2).backward()
        opt.step()
        expected.append([float(p.loss.detach()) for p in passes])
    weights = torch.cat([ddp_worker.flat_params(m) for m in step.modules_to_checkpoint().values()
                         if any(True for _ in m.parameters())])
    for k, result in enumerate(ranks):
        got = result["always_steps"]["losses"]
        assert got == pytest.approx([e[k] for e in expected], abs=1e-4)
        torch.testing.assert_close(result["always_steps"]["weights"], weights,
                                   atol=1e-5, rtol=1e-4)


def test_adaptive_ranks_stay_in_sync_and_rank0_starts_like_one_process(ddp):
    root, params, ranks = ddp
    a, b = (r["adaptive_steps"] for r in ranks)
    torch.testing.assert_close(a["weights"], b["weights"], atol=0, rtol=0)  # same update
    assert all(torch.isfinite(torch.tensor(r["losses"])).all() for r in (a, b))
    run = _single_distill(params, root, "adaptive")
    x, y, i = next(iter(run.train_loader))
    first = run.step.forward_student(halves(x)[0], halves(y)[0], halves(i)[0])
    assert a["losses"][0] == pytest.approx(float(first.loss.detach()), abs=1e-5)


def test_torchrun_across_two_nodes_on_loopback(ddp):
    """The README's multi-node command: 2 torchrun agents (one per "node"), c10d rendezvous on
    127.0.0.1. Runs last: it retrains the teacher checkpoint (1 epoch, its own params file)."""
    import os
    import subprocess

    root, _params, _ranks = ddp
    raw = on_digits(yaml.safe_load((root / "params.yaml").read_text()))
    raw["pretrain"].update(epochs=1, milestones=[])
    (root / "params-1epoch.yaml").write_text(yaml.safe_dump(raw))
    port = free_port()
    agents = [subprocess.Popen(
        ["torchrun", "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}",
         "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--no-python",
         "sakd", "pretrain", "--arch", "resnet8", "--params", "params-1epoch.yaml", "--quiet"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}) for node in range(2)]
    outputs = [a.communicate(timeout=600)[0] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], outputs
    reports = [line for out in outputs for line in out.splitlines()
               if line.startswith("resnet8: final top-1")]
    assert len(reports) == 1  # rank 0 alone reports (and writes)
    state = load_checkpoint(Layout(root, "digits").pretrained("resnet8"))
    assert state["epoch"] == 1 and len(state["rng"]) == 2


def test_torchrun_standalone_distill_as_the_readme_shows(ddp):
    """The README's single-machine command, verbatim but for a 1-epoch params file: torchrun
    --standalone with 2 processes runs `sakd distill` (CRD: its memory bank is gathered)."""
    import os
    import subprocess

    root, _params, _ranks = ddp
    raw = on_digits(yaml.safe_load((root / "params.yaml").read_text()))
    raw["distill"].update(epochs=1, milestones=[])
    (root / "params-distill-1epoch.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node=2", "--no-python", "sakd", "distill",
         "--teacher", "resnet8", "--student", "resnet8", "--distiller", "crd",
         "--strategy", "adaptive", "--params", "params-distill-1epoch.yaml", "--quiet"],
        cwd=root, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert sum(line.startswith("resnet8->resnet8 crd/adaptive") for line in out.splitlines()) == 1
    key = run_key("resnet8", "resnet8", "crd", "adaptive", 0)
    state = load_checkpoint(Layout(root, "digits").student(key))
    assert state["epoch"] == 1 and len(state["rng"]) == 2


def test_killed_two_process_pretrain_resumes_to_the_uninterrupted_result(ddp, tmp_path):
    """A real SIGKILL of a 2-process torchrun pretrain mid-run; the restarted command resumes
    from every rank's saved state and ends with the weights of an uninterrupted 2-process run."""
    import os
    import signal
    import subprocess
    import time

    root, _params, _ranks = ddp
    raw = on_digits(yaml.safe_load((root / "params.yaml").read_text()))
    raw["pretrain"].update(epochs=4, milestones=[2])
    for name in ("killed", "clean"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.yaml").write_text(yaml.safe_dump(raw))
        os.symlink(root / "data", tmp_path / name / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    cmd = ["torchrun", "--standalone", "--nproc_per_node=2", "--no-python",
           "sakd", "pretrain", "--arch", "resnet8", "--quiet"]
    layout = Layout(tmp_path / "killed", "digits")
    resume = layout.resume(layout.pretrained("resnet8"))
    proc = subprocess.Popen(cmd, cwd=tmp_path / "killed", env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if resume.exists() and load_checkpoint(resume)["epoch"] >= 1:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the agent and both workers
    proc.wait()
    assert load_checkpoint(resume)["epoch"] < 4, "finished before it could be killed"
    for name in ("killed", "clean"):
        done = subprocess.run(cmd, cwd=tmp_path / name, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    a = load_checkpoint(layout.pretrained("resnet8"))
    b = load_checkpoint(Layout(tmp_path / "clean", "digits").pretrained("resnet8"))
    assert a["epoch"] == b["epoch"] == 4 and len(a["rng"]) == 2
    for key, value in b["modules"]["model"].items():
        assert torch.equal(a["modules"]["model"][key], value), key


def test_runtime_nproc_relaunches_the_plain_command_through_torchrun(ddp, tmp_path):
    """`runtime.nproc: 2` in params.yaml: the plain `sakd pretrain` (what a DVC stage runs)
    replaces itself by torchrun with 2 processes; the checkpoint holds both ranks' RNG state."""
    import os
    import subprocess

    root, _params, _ranks = ddp
    raw = on_digits(yaml.safe_load((root / "params.yaml").read_text()))
    raw["pretrain"].update(epochs=1, milestones=[])
    raw["runtime"]["nproc"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    os.symlink(root / "data", tmp_path / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run(["sakd", "pretrain", "--arch", "resnet8", "--quiet"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    state = load_checkpoint(Layout(tmp_path, "digits").pretrained("resnet8"))
    assert state["epoch"] == 1 and len(state["rng"]) == 2
