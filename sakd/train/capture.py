"""The captured training step: a whole DistillStep iteration compiled (CUDA graphs on CUDA).

Why: on a GPU, an eager SAKD step of CIFAR-size networks is bound by kernel launches and Python,
not arithmetic. `torch.compile` of the whole iteration (`DistillStep.train_batch`) fuses its
kernels; with mode "reduce-overhead" on CUDA each compiled graph is replayed as a CUDA graph.

What makes the step capturable (and what the tests check against the eager step):
- static shapes: the caller feeds full batches only (the training loader drops the last
  partial batch when `runtime.capture` is on); a new batch shape would compile again;
- no host sync and no data-dependent shape in the body (tests/test_capture.py counts syncs);
- randomness outside: the Gumbel noise (policy strategies) or the strategy's mask (`random`)
  is drawn eagerly from the step's own generator (`DistillStep.draw_random`) and passed in, so
  the draws are those of the eager step, reproducible under the seed, and a replayed CUDA
  graph gets fresh noise;
- tau is a 0-dim device tensor updated in place, so a tau change neither recompiles nor
  re-records. A learning-rate milestone recompiles the optimiser part once (the LR is a
  Python float in the optimiser's param groups).
The backward calls split the step into a few graphs (dynamo breaks at `.backward()`); each is
compiled and, on CUDA, captured. Everything else (tau clock, metric names, checkpointing)
is the wrapped step's: attribute reads go through to it.
"""

from __future__ import annotations

from typing import Any

import torch

from sakd.models.eval_fold import EvalFoldedNet
from sakd.train.distill_step import DistillStep, Stats
from sakd.train.runtime import allow_recompiles

COMPILE_MODES: dict[str, str | None] = {"cuda": "reduce-overhead"}
"""torch.compile mode per device type: CUDA graphs on CUDA, the default mode elsewhere."""


def compile_mode(device: torch.device | str) -> str | None:
    """The torch.compile mode for a captured step on `device` (None: torch's default)."""
    return COMPILE_MODES.get(torch.device(device).type)


class CapturedStep:
    """A DistillStep whose iteration runs as compiled graph(s); call it like the step.

    `backend` is torch.compile's (inductor by default); the mode follows the device
    (`COMPILE_MODES`). The first calls compile (seconds to minutes); later ones replay.
    """

    def __init__(self, step: DistillStep, *, backend: str = "inductor") -> None:
        self.step = step
        device = next(step.student.parameters()).device
        self.tau_tensor = torch.tensor(float(step.tau), device=device)
        allow_recompiles()
        # the policy's decisions w feed two backward passes (student loss through the detached
        # mask, routing loss through w): a compiled graph's backward runs once, so w is made
        # eagerly, outside the graphs
        step.route_fn = torch.compiler.disable(step.route)
        # a BN-folded eval view reads tensor version counters, which change every step: its
        # refresh stays eager too. Disabled here, where compiling starts, not where it is
        # defined: torch.compiler.disable imports torch._dynamo (~1.6 s), which every process
        # that merely imports the models would pay
        for view in (step._eval_teacher, step._eval_student):
            if isinstance(view, EvalFoldedNet):
                view.refresh = torch.compiler.disable(view.refresh)
        mode = compile_mode(device) if backend == "inductor" else None
        self.compiled = torch.compile(step.train_batch, backend=backend, mode=mode)
        self.clone_outputs = mode == "reduce-overhead"  # CUDA graphs reuse their output buffers

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 index: torch.Tensor | None = None) -> Stats:
        """Train on one batch (full batches only); returns detached device tensors."""
        step = self.step
        if self.clone_outputs:
            # one training iteration = one CUDA-graph step: without this mark, the next
            # iteration's replay overwrote tensors the foreach optimiser still read (H200,
            # docs/bench.md "GPU"), while the fused optimiser happened not to read them
            torch.compiler.cudagraph_mark_step_begin()
        self.tau_tensor.fill_(step.advance_tau())  # in place: the graph reads it, no recompile
        noise, mask = step.draw_random(x)
        stats = self.compiled(x, y, index, self.tau_tensor, noise, mask)
        if self.clone_outputs:  # the loop keeps them past the next replay
            stats = {k: v.clone() for k, v in stats.items()}
        return stats

    def __getattr__(self, name: str) -> Any:
        # only called for names not found on the wrapper: the step's state and methods
        if name == "step":
            raise AttributeError(name)
        return getattr(self.step, name)
