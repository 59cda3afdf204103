"""The spot-adaptive distillation iteration (Algorithm 1, Eq. 7), for every strategy.

One call trains on one batch; `forward_student`, `forward_routing`, `train_batch` follow it:
    lines 3-5    teacher forward (frozen: eval mode, no grad) and student forward (train mode)
    lines 18-23  policy on the detached pooled embeddings -> straight-through Gumbel decisions
                 w [B, S+1] (1 = route through the teacher = distill); d = w.detach()
    Eq. 7        student loss = CE + beta1 * gated KD|DKD + beta2 * sum of gated distiller losses,
                 gated per sample and per spot by the strategy's mask (adaptive: d)
    lines 30-43  routing pass: teacher and student interleaved by w (sakd.spots.routing)
    lines 46-48  routing loss (sakd.spots.routing_loss) -> policy + adapters; both optimisers step

Strategies (sakd.spots.strategies) only change the mask (`always`, `never`, `random`, `anti`);
only policy strategies run the routing pass. No host sync, no boolean indexing, random draws
first (`draw_random`): the step can be captured whole (sakd.train.capture); it returns detached
device tensors the loop syncs once per epoch. It owns its per-run state: tau (a sakd.spots.tau
clock), the distiller's pre-phase (FT, fresh start) and epoch state (DKD's warm-up), its metric
names. Eval passes run on BN-folded views; bf16 (`autocast`): one context per forward half.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sakd.distillers.base import Distiller
from sakd.models.base import SpotNet, spot_name
from sakd.models.eval_fold import EvalFoldedNet
from sakd.spots.gumbel import gumbel_noise, route_decisions
from sakd.spots.policy import PolicyNet
from sakd.spots.routing import RoutingNetwork
from sakd.spots.strategies import Strategy
from sakd.spots.tau import TauClock
from sakd.train.decide import decide_mask
from sakd.train.runtime import unique_parameters
from sakd.train.step_losses import StepLosses

Stats = dict[str, torch.Tensor]


@dataclass
class StudentPass:
    """What the student half of an iteration produced (losses still attached to the graph)."""

    loss: torch.Tensor  # the student's total loss (Eq. 7 without the routing term)
    ce: torch.Tensor
    kd: torch.Tensor  # gated KD, before beta1
    spot_losses: torch.Tensor  # [S] gated distiller losses, before beta2
    teacher_ce: torch.Tensor | None  # trainable teacher only
    logits_s: torch.Tensor
    teacher_first: torch.Tensor | None  # frozen teacher's output at the first branch spot
    w: torch.Tensor | None  # straight-through decisions [B, S+1] (policy strategies)
    decisions: torch.Tensor | None  # d = w.detach()
    mask: torch.Tensor  # distill mask [B, S+1]


class DistillStep:
    """One training iteration of a student against a teacher; call it with (x, y, index).

    Built by `sakd.build.build_distill_step`, which also makes the policy, the routing
    network and the optimisers (`optimizers`: {"student", "router"?}, student first) and
    resolves `losses` (teacher mode, routing and teacher losses, weights) from the config.
    """

    def __init__(
        self,
        student: SpotNet,
        teacher: SpotNet,
        distiller: Distiller,
        strategy: Strategy,
        losses: StepLosses,
        optimizers: dict[str, torch.optim.Optimizer],
        tau: TauClock,
        *,
        policy: PolicyNet | None = None,
        routing: RoutingNetwork | None = None,
        generator: torch.Generator | None = None,
        autocast: bool = False,
        fold_batchnorm: bool = True,
    ) -> None:
        self.student, self.teacher, self.distiller = student, teacher, distiller
        self.strategy, self.losses = strategy, losses
        self.policy, self.routing, self.optimizers = policy, routing, optimizers
        self.clock, self.generator, self.autocast = tau, generator, autocast
        self.tau = tau.start_epoch(0)
        self.spots, self.num_decisions = list(distiller.spots), len(distiller.spots) + 1
        self.logit_loss = losses.logit_loss  # per sample: KD, or DKD's own
        self.beta1, self.beta2, self.beta3 = losses.beta1, losses.beta2, losses.beta3
        self.teacher_trainable, self.gamma = losses.teacher_trainable, losses.gamma
        self.routing_loss_fn, self.teacher_loss = losses.routing_loss, losses.teacher_loss
        self.ce_weight = losses.ce_weight
        n = student.num_features
        self.spot_names = [spot_name(k, n) for k in self.spots] + [spot_name(n, n)]
        self._router_params = unique_parameters(policy, routing)  # eval passes: BN-folded views
        fold_t = fold_batchnorm and (strategy.uses_policy or not self.teacher_trainable)
        fold_s = fold_batchnorm and strategy.uses_policy
        self._eval_teacher = EvalFoldedNet(teacher) if fold_t else teacher
        self._eval_student = EvalFoldedNet(student) if fold_s else student
        self.after_prepare: list[Callable[[nn.Module], None]] = []  # f(distiller) after prepare
        self.route_fn: Callable[..., torch.Tensor] = self.route  # eager `route` when captured

    # ------------------------------------------------------------------ per-run state
    def modules_to_checkpoint(self) -> dict[str, nn.Module]:
        """Every module whose state a resumed run needs (name -> module)."""
        modules: dict[str, nn.Module] = {"student": self.student, "distiller": self.distiller}
        if self.teacher_trainable:
            modules["teacher"] = self.teacher
        if self.policy is not None and self.routing is not None:
            modules.update(policy=self.policy, routing=self.routing)
        return modules

    def router_parameters(self) -> list[nn.Parameter]:
        """What the routing loss trains: the policy and the adapters (empty without a policy)."""
        return list(self._router_params)

    def set_tau(self, tau: float) -> None:  # override tau until the clock next sets it
        if not tau > 0:
            raise ValueError(f"Gumbel-softmax temperature tau must be > 0, got {tau}")
        self.tau = float(tau)

    def start_epoch(self, epoch: int, train_batches: Iterable | None = None) -> dict[str, float]:
        """Set tau and the distiller's epoch state (DKD); epoch 0 (fresh) runs its pre-phase."""
        if epoch == 0 and train_batches is not None:
            self.distiller.prepare(self.teacher, train_batches)
            for hook in self.after_prepare:
                hook(self.distiller)
        self.distiller.start_epoch(epoch)
        self.tau = self.clock.start_epoch(epoch)
        return {"tau": self.tau}

    def epoch_metrics(self, means: dict[str, torch.Tensor]) -> dict[str, float]:
        """Per-epoch metric names: loss terms and route/p_distill/<spot> (Fig. 3's curves)."""
        out = {f"train/{k}": float(means[k]) for k in ("ce", "kd", "distill", "routing")}
        if "teacher_ce" in means:
            out["train/teacher_ce"] = float(means["teacher_ce"])
        for name, p in zip(self.spot_names, means["p_distill"].tolist(), strict=True):
            out[f"route/p_distill/{name}"] = p
        for name, loss in zip(self.spot_names[:-1], means["distill_spots"].tolist(), strict=True):
            out[f"train/distill/{name}"] = loss
        return out

    def _precision(self, x: torch.Tensor) -> AbstractContextManager:  # bf16: a speed option
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    @staticmethod
    def _current(net: SpotNet) -> SpotNet:
        if isinstance(net, EvalFoldedNet):
            net.refresh()
        return net

    # ------------------------------------------------------------------ one iteration
    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 index: torch.Tensor | None = None) -> Stats:
        """Train on one batch; returns detached device tensors (see `stats`)."""
        return self.train_batch(x, y, index, self.advance_tau(), *self.draw_random(x))

    def advance_tau(self) -> float:
        """This iteration's tau: the clock's, when it changes per step (else the epoch's)."""
        self.tau = tau if (tau := self.clock.tick()) is not None else self.tau
        return self.tau

    def draw_random(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The iteration's random draws, before any network runs (a captured step takes them as
        inputs): (Gumbel noise [B, S+1, 2], None) with a policy, else (None, the mask)."""
        shape = (x.shape[0], self.num_decisions)
        if self.strategy.uses_policy:
            like = torch.empty((*shape, 2), device=x.device, dtype=self.policy.linear.weight.dtype)
            return gumbel_noise(like, self.generator), None
        return None, self.strategy.distill_mask(None, shape, x.device, self.generator)

    def train_batch(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None, tau:
                    float | torch.Tensor, noise: torch.Tensor | None, mask: torch.Tensor | None):
        """The tensor work, what a captured step compiles. Two backward passes with disjoint
        targets: the student's graph is freed before the routing pass allocates its own; the
        routing loss reaches only the policy + adapters (`inputs=`)."""
        sp = self.forward_student(x, y, index, tau=tau, noise=noise, mask=mask)
        student_opt = self.optimizers["student"]
        student_opt.zero_grad(set_to_none=True)
        sp.loss.backward()
        routing_loss = self.forward_routing(x, y, sp)
        if routing_loss is not None:
            self.update_router(routing_loss)
        student_opt.step()  # after the routing pass: it used the pre-update student (line 48)
        return self.stats(sp, routing_loss, y)

    def _teacher_forward(self, x: torch.Tensor):
        if self.teacher_trainable:
            self.teacher.train()
            return self.teacher(x, return_features=True)
        if not self.strategy.needs_teacher:
            return None, None
        self.teacher.eval()
        with torch.no_grad():
            return self._current(self._eval_teacher)(x, return_features=True)

    def forward_student(
        self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None, *,
        tau: float | torch.Tensor | None = None, noise: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> StudentPass:
        """Forwards, decisions, mask and the student's loss (no backward). `tau`, `noise` and
        `mask` (see `draw_random`) default to the step's tau and fresh draws."""
        with self._precision(x):
            # Algorithm 1, lines 3-5: teacher (frozen unless Table VIII) and student forwards
            feats_t, logits_t = self._teacher_forward(x)
            self.student.train()
            feats_s, logits_s = self.student(x, return_features=True)

            w = decisions = None  # lines 18-23: per sample and spot; d = w.detach() gates losses
            if self.strategy.uses_policy:
                w = self.route_fn(feats_t[-1], feats_s[-1], self.tau if tau is None else tau, noise)
                decisions = w.detach()
            if mask is None:
                mask = self.strategy.distill_mask(
                    decisions, (x.shape[0], self.num_decisions), x.device, self.generator
                )

            # Eq. 7: CE + beta1 * gated KD|DKD (logit spot, last column) + beta2 * gated spots
            ce = F.cross_entropy(logits_s, y)
            if self.strategy.needs_teacher:
                with self.teacher_loss.scope(self.teacher_trainable):
                    kd = (self.logit_loss(logits_s, logits_t, y) * mask[:, -1]).mean()
                    spot_losses = self.distiller(feats_s, feats_t, mask=mask[:, :-1], index=index)
            else:
                kd = logits_s.new_zeros((), dtype=torch.float32)
                spot_losses = logits_s.new_zeros(len(self.spots), dtype=torch.float32)
            loss = self.ce_weight * ce + self.beta1 * kd + self.beta2 * spot_losses.sum()

            teacher_ce = None
            if self.teacher_trainable:  # Table VIII: the teacher learns from its CE (+ above)
                teacher_ce = F.cross_entropy(logits_t, y)
                loss = loss + self.ce_weight * teacher_ce

        teacher_first = None
        if w is not None and not self.teacher_trainable:
            teacher_first = feats_t[self.spots[0]] if self.spots else logits_t
        return StudentPass(
            loss, ce, kd, spot_losses, teacher_ce, logits_s, teacher_first, w, decisions, mask
        )

    def route(self, embed_t: torch.Tensor, embed_s: torch.Tensor, tau: float | torch.Tensor,
              noise: torch.Tensor | None) -> torch.Tensor:
        """Lines 18-22: straight-through decisions w [B, S+1] from the policy (float32 with
        `noise`). A captured step runs it eagerly: w feeds both backward passes."""
        logits = self.policy(embed_t, embed_s)
        logits = logits if noise is None else logits.to(noise.dtype)
        return route_decisions(logits, tau, self.generator, noise)

    def forward_routing(
        self, x: torch.Tensor, y: torch.Tensor, sp: StudentPass
    ) -> torch.Tensor | None:
        """Lines 30-46: the routing pass and its loss (None for strategies without a policy)."""
        if sp.w is None or self.routing is None:
            return None
        with self._precision(x):
            student = self._current(self._eval_student)
            teacher = self._current(self._eval_teacher)
            routed = self.routing(student, teacher, x, sp.w, sp.teacher_first)
            return self.routing_loss_fn(
                routed, y, sp.w[:, -1], sp.ce, beta3=self.beta3, gamma=self.gamma
            )

    def update_router(self, routing_loss: torch.Tensor) -> None:
        """Backpropagate the routing loss into the policy + adapters only, and step them."""
        optimizer = self.optimizers["router"]
        optimizer.zero_grad(set_to_none=True)
        routing_loss.backward(inputs=self._router_params)
        optimizer.step()

    def stats(self, sp: StudentPass, routing_loss: torch.Tensor | None, y: torch.Tensor) -> Stats:
        """Detached per-batch tensors: loss (student total), ce, kd (logit loss, before beta1),
        distill (spot sum, before beta2), routing (0 without a policy), p_distill [S+1] (fraction
        distilled per spot), distill_spots [S], correct, teacher_ce (trainable teacher only)."""
        stats = {
            "loss": sp.loss.detach(),
            "ce": sp.ce.detach(),
            "kd": sp.kd.detach(),
            "distill": sp.spot_losses.detach().sum(),
            "routing": sp.loss.new_zeros(()) if routing_loss is None else routing_loss.detach(),
            "p_distill": sp.mask.detach().float().mean(0),
            "distill_spots": sp.spot_losses.detach(),
            "correct": (sp.logits_s.detach().argmax(1) == y).sum(),
        }
        if sp.teacher_ce is not None:
            stats["teacher_ce"] = sp.teacher_ce.detach()
        return stats

    # ------------------------------------------------------------------ inspection
    def decide(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Distill mask [B, S+1] the strategy would apply to x, every net in eval mode (the
        Fig. 5-style grid): see sakd.train.decide."""
        return decide_mask(self, x, sample)
