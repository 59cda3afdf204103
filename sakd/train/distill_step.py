"""One distillation iteration (Eq. 7, Algorithm 1) for any strategy (adaptive, always, ...).

Per batch:
1. Teacher forward in eval mode under no_grad (frozen); student forward in train mode; both
   return their features.
2. Strategies with a policy: policy on the detached pooled embeddings -> straight-through
   Gumbel decisions w [B, S+1] (1 = teacher = distill); d = w.detach().
   The strategy turns d (or nothing) into the distill mask [B, S+1], logit spot last.
3. Student loss = CE + beta1 * gated KD at the logits (T = kd_T) + beta2 * sum of the
   distiller's gated per-spot losses. Backward right away (frees the student's graph early).
4. Routing pass (policy strategies): the routing network interleaves the networks with w;
   routing loss (`paper`: beta3 * CE of the routed output; `reference`: the authors' variant,
   see sakd.spots.routing_loss) is backpropagated to the policy + adapters only, through the
   networks' activations but never into their weights (none is computed), then the router's
   optimiser steps. The routing pass uses the pre-update student, as in Algorithm 1.
5. The student's optimiser steps.

No `.item()` and no boolean indexing: gating multiplies by the mask, and the step returns
detached device tensors that the loop sums and syncs once per epoch.

Teacher modes (Table VIII): `frozen` (the paper) keeps the teacher in eval mode with
requires_grad off. `scratch` and `pretrained` train it alongside the student: train mode, its
parameters in the student's optimiser, its own CE added to the student loss (it learns from no
distillation term); the two modes differ only in which teacher the caller passes (freshly
created or loaded). The routing loss is unchanged by the teacher mode and the routing pass still
runs the teacher in eval mode.

Randomness (Gumbel noise, the random strategy) comes from `generator`, by default the global
RNG, whose state the training loop checkpoints, so resumed runs replay the same draws.

Eval-mode passes (a frozen teacher's forward, the whole routing pass) run on views of the
networks with each BatchNorm folded into the convolution before it (sakd.models.eval_fold): same
function up to float rounding, one pass over every activation less, no weight gradient
possible. `fold_batchnorm=False` runs the networks themselves.

Mixed precision (`autocast`, meant for CUDA): the networks' forwards (both passes) run under
bf16 autocast; their outputs are cast back to float32 before any loss, the policy and the
Gumbel draw, so the losses and the routing decisions are computed in full precision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sakd.distillers.base import Distiller
from sakd.distillers.functional import kd_per_sample
from sakd.models.base import SpotNet, spot_name
from sakd.models.eval_fold import EvalFoldedNet
from sakd.spots.gumbel import DISTILL, route_decisions
from sakd.spots.policy import PolicyNet, list_policy_inits
from sakd.spots.routing import RoutingNetwork, eval_mode
from sakd.spots.routing_loss import get_routing_loss, list_routing_losses
from sakd.spots.strategies import Strategy, create_strategy

TEACHER_TRAINABLE: dict[str, bool] = {"frozen": False, "scratch": True, "pretrained": True}
"""Teacher modes of Table VIII -> whether the teacher is trained with the student."""

Stats = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StepConfig:
    """Loss weights (Eq. 7) and optimiser settings of one distillation run."""

    beta1: float = 1.0  # KD (KL) at the logit spot
    beta2: float | None = None  # distiller loss; None = the distiller's Table II default
    beta3: float = 1.0  # routing loss
    kd_T: float = 4.0
    routing_loss: str = "paper"  # paper | reference
    gamma: float = 1.0  # reference routing loss only
    policy_init: str = "neutral"  # neutral | distill
    teacher_trainable: Literal["frozen", "scratch", "pretrained"] = "frozen"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    router_lr_ratio: float = 0.5  # router lr = lr * ratio
    router_weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        for key, valid in (
            ("routing_loss", list_routing_losses()),
            ("policy_init", list_policy_inits()),
            ("teacher_trainable", list(TEACHER_TRAINABLE)),
        ):
            if getattr(self, key) not in valid:
                raise ValueError(
                    f"StepConfig.{key}: unknown value {getattr(self, key)!r}; "
                    f"valid: {', '.join(valid)}"
                )
        for key in ("beta1", "beta3", "lr", "momentum", "weight_decay", "router_weight_decay"):
            if getattr(self, key) < 0:
                raise ValueError(f"StepConfig.{key} must be >= 0, got {getattr(self, key)}")
        if self.beta2 is not None and self.beta2 < 0:
            raise ValueError(f"StepConfig.beta2 must be >= 0, got {self.beta2}")
        for key in ("kd_T", "gamma", "router_lr_ratio"):
            if not getattr(self, key) > 0:
                raise ValueError(f"StepConfig.{key} must be > 0, got {getattr(self, key)}")


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


def _unique(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for p in params:
        seen.setdefault(id(p), p)
    return list(seen.values())


class DistillStep:
    """One training iteration of a student against a teacher; call it with (x, y, index).

    Attributes the loop uses: `optimizers` ({"student", "router"?}, student first),
    `modules_to_checkpoint()`, `spot_names`, `set_tau()`, `decide()`.
    """

    def __init__(
        self,
        student: SpotNet,
        teacher: SpotNet,
        distiller: Distiller,
        strategy: Strategy,
        cfg: StepConfig,
        policy: PolicyNet | None = None,
        routing: RoutingNetwork | None = None,
        tau: float = 5.0,
        generator: torch.Generator | None = None,
        autocast: bool = False,
        fold_batchnorm: bool = True,
    ) -> None:
        if strategy.uses_policy and (policy is None or routing is None):
            raise ValueError(f"strategy {strategy.name!r} needs a policy and a routing network")
        self.student, self.teacher, self.distiller = student, teacher, distiller
        self.strategy, self.cfg = strategy, cfg
        self.policy, self.routing = policy, routing
        self.generator = generator
        self.autocast = autocast
        self.spots = list(distiller.spots)
        self.num_decisions = len(self.spots) + 1
        self.beta2 = distiller.default_beta if cfg.beta2 is None else cfg.beta2
        self.teacher_trainable = TEACHER_TRAINABLE[cfg.teacher_trainable]
        self.routing_loss_fn = get_routing_loss(cfg.routing_loss, self.teacher_trainable)
        num_features = student.num_features
        self.spot_names = [spot_name(k, num_features) for k in self.spots] + [
            spot_name(num_features, num_features)
        ]
        self.tau = 5.0
        self.set_tau(tau)
        self._router_params = self._collect_router_parameters()
        self.optimizers = self._build_optimizers()
        self._eval_teacher, self._eval_student = self._eval_views(fold_batchnorm)

    # ------------------------------------------------------------------ setup
    def student_parameters(self) -> list[nn.Parameter]:
        """Everything the student's optimiser trains (student, distiller parts, teacher?)."""
        params = list(self.student.parameters()) + list(self.distiller.student_parameters())
        if self.teacher_trainable:
            params += list(self.teacher.parameters())
        return _unique(params)

    def router_parameters(self) -> list[nn.Parameter]:
        """What the routing loss trains: the policy and the adapters."""
        return list(self._router_params)

    def _collect_router_parameters(self) -> list[nn.Parameter]:
        if self.policy is None or self.routing is None:
            return []
        return _unique([*self.policy.parameters(), *self.routing.parameters()])

    def _eval_views(self, fold: bool) -> tuple[SpotNet, SpotNet]:
        """The nets the eval-mode passes run: BN-folded views, or the networks themselves."""
        teacher_eval = self.strategy.uses_policy or (
            self.strategy.needs_teacher and not self.teacher_trainable
        )
        student_eval = self.strategy.uses_policy
        return (
            EvalFoldedNet(self.teacher) if fold and teacher_eval else self.teacher,
            EvalFoldedNet(self.student) if fold and student_eval else self.student,
        )

    @staticmethod
    def _current(net: SpotNet) -> SpotNet:
        if isinstance(net, EvalFoldedNet):
            net.refresh()
        return net

    def _build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.cfg
        optimizers: dict[str, torch.optim.Optimizer] = {
            "student": torch.optim.SGD(
                self.student_parameters(),
                lr=cfg.lr,
                momentum=cfg.momentum,
                weight_decay=cfg.weight_decay,
            )
        }
        if self.strategy.uses_policy:
            optimizers["router"] = torch.optim.SGD(
                self.router_parameters(),
                lr=cfg.lr * cfg.router_lr_ratio,
                momentum=cfg.momentum,
                weight_decay=cfg.router_weight_decay,
            )
        return optimizers

    def modules_to_checkpoint(self) -> dict[str, nn.Module]:
        """Every module whose state a resumed run needs (name -> module)."""
        modules: dict[str, nn.Module] = {"student": self.student, "distiller": self.distiller}
        if self.teacher_trainable:
            modules["teacher"] = self.teacher
        if self.policy is not None and self.routing is not None:
            modules["policy"] = self.policy
            modules["routing"] = self.routing
        return modules

    def set_tau(self, tau: float) -> None:
        """Gumbel-softmax temperature for the next steps (see sakd.spots.tau for schedules)."""
        if not tau > 0:
            raise ValueError(f"Gumbel-softmax temperature tau must be > 0, got {tau}")
        self.tau = float(tau)

    # ------------------------------------------------------------------ one iteration
    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None
    ) -> Stats:
        """Train on one batch; returns detached device tensors (see `stats`)."""
        sp = self.forward_student(x, y, index)
        student_opt = self.optimizers["student"]
        student_opt.zero_grad(set_to_none=True)
        sp.loss.backward()
        routing_loss = self.forward_routing(x, y, sp)
        if routing_loss is not None:
            self.update_router(routing_loss)
        student_opt.step()
        return self.stats(sp, routing_loss, y)

    def _autocast(self, x: torch.Tensor):
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def _full_precision(self, feats, logits):
        """Features and logits in float32 (a no-op without autocast)."""
        if not self.autocast or logits is None:
            return feats, logits
        return [f.float() for f in feats], logits.float()

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
        self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None
    ) -> StudentPass:
        """Steps 1-3: forwards, decisions, mask and the student's loss (no backward)."""
        with self._autocast(x):
            feats_t, logits_t = self._teacher_forward(x)
            self.student.train()
            feats_s, logits_s = self.student(x, return_features=True)
        feats_t, logits_t = self._full_precision(feats_t, logits_t)
        feats_s, logits_s = self._full_precision(feats_s, logits_s)

        w = decisions = None
        if self.strategy.uses_policy:
            w = route_decisions(self.policy(feats_t[-1], feats_s[-1]), self.tau, self.generator)
            decisions = w.detach()
        mask = self.strategy.distill_mask(
            decisions, (x.shape[0], self.num_decisions), x.device, self.generator
        )

        ce = F.cross_entropy(logits_s, y)
        if self.strategy.needs_teacher:
            targets_t = [f.detach() for f in feats_t]
            kd = (kd_per_sample(logits_s, logits_t.detach(), self.cfg.kd_T) * mask[:, -1]).mean()
            spot_losses = self.distiller(feats_s, targets_t, mask=mask[:, :-1], index=index)
        else:
            kd = logits_s.new_zeros(())
            spot_losses = logits_s.new_zeros(len(self.spots))
        loss = ce + self.cfg.beta1 * kd + self.beta2 * spot_losses.sum()

        teacher_ce = None
        if self.teacher_trainable:
            teacher_ce = F.cross_entropy(logits_t, y)
            loss = loss + teacher_ce

        teacher_first = None
        if w is not None and not self.teacher_trainable:
            teacher_first = feats_t[self.spots[0]] if self.spots else logits_t
        return StudentPass(
            loss, ce, kd, spot_losses, teacher_ce, logits_s, teacher_first, w, decisions, mask
        )

    def forward_routing(
        self, x: torch.Tensor, y: torch.Tensor, sp: StudentPass
    ) -> torch.Tensor | None:
        """Step 4's forward: the routing loss (None for strategies without a policy)."""
        if sp.w is None or self.routing is None:
            return None
        with self._autocast(x):
            routed = self.routing(
                self._current(self._eval_student), self._current(self._eval_teacher), x, sp.w,
                sp.teacher_first,
            )
        if self.autocast:
            routed = routed.float()
        return self.routing_loss_fn(
            routed, y, sp.w[:, -1], sp.ce, beta3=self.cfg.beta3, gamma=self.cfg.gamma
        )

    def update_router(self, routing_loss: torch.Tensor) -> None:
        """Backpropagate the routing loss into the policy + adapters only, and step them."""
        optimizer = self.optimizers["router"]
        optimizer.zero_grad(set_to_none=True)
        routing_loss.backward(inputs=self._router_params)
        optimizer.step()

    def stats(self, sp: StudentPass, routing_loss: torch.Tensor | None, y: torch.Tensor) -> Stats:
        """Detached per-batch tensors: loss terms, per-spot distill fraction, top-1 count.

        loss (student total), ce, kd (before beta1), distill (sum of spot losses, before
        beta2), routing (0 without a policy), p_distill [S+1] (fraction of the batch distilled
        per spot, `spot_names` order), distill_spots [S], correct (int), teacher_ce (trainable
        teacher only).
        """
        zero = sp.loss.detach().new_zeros(())
        stats = {
            "loss": sp.loss.detach(),
            "ce": sp.ce.detach(),
            "kd": sp.kd.detach(),
            "distill": sp.spot_losses.detach().sum(),
            "routing": zero if routing_loss is None else routing_loss.detach(),
            "p_distill": sp.mask.detach().float().mean(0),
            "distill_spots": sp.spot_losses.detach(),
            "correct": (sp.logits_s.detach().argmax(1) == y).sum(),
        }
        if sp.teacher_ce is not None:
            stats["teacher_ce"] = sp.teacher_ce.detach()
        return stats

    # ------------------------------------------------------------------ inspection
    @torch.no_grad()
    def decide(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Distill mask [B, S+1] the strategy would apply to x, with every net in eval mode.

        Policy strategies take the policy's most likely path (argmax), or a Gumbel draw when
        `sample`; the columns follow `spot_names`. For the Fig. 5-style decision grid.
        """
        decisions = None
        nets = [m for m in (self.student, self.teacher, self.policy) if m is not None]
        with eval_mode(*nets):
            if self.strategy.uses_policy:
                feats_t, _ = self.teacher(x, return_features=True)
                feats_s, _ = self.student(x, return_features=True)
                logits = self.policy(feats_t[-1], feats_s[-1])
                if sample:
                    decisions = route_decisions(logits, self.tau, self.generator)
                else:
                    decisions = (logits.argmax(-1) == DISTILL).float()
            return self.strategy.distill_mask(
                decisions, (x.shape[0], self.num_decisions), x.device, self.generator
            )


def _check_pair(student: SpotNet, teacher: SpotNet, distiller: Distiller) -> None:
    if student.num_features != teacher.num_features:
        raise ValueError(
            f"teacher has {teacher.num_features} feature spots and student "
            f"{student.num_features}: distillation spots pair block k with block k, so both "
            "networks need the same block structure"
        )
    spots = list(distiller.spots)
    if spots != sorted(set(spots)) or any(not 0 <= k < student.num_features for k in spots):
        raise ValueError(
            f"distiller {type(distiller).__name__} spots {spots} must be increasing feature "
            f"indices in [0, {student.num_features - 1}]"
        )


def _example_features(nets: Sequence[SpotNet], example_x: torch.Tensor) -> list[list[torch.Tensor]]:
    """Features of each net for a probe batch, in eval mode under no_grad (no BN update)."""
    with torch.no_grad(), eval_mode(*nets):
        return [net(example_x, return_features=True)[0] for net in nets]


def build_distill_step(
    student: SpotNet,
    teacher: SpotNet,
    distiller: Distiller,
    strategy_name: str,
    example_x: torch.Tensor,
    cfg: StepConfig | None = None,
    *,
    tau: float = 5.0,
    generator: torch.Generator | None = None,
    autocast: bool = False,
    channels_last: bool = False,
    fold_batchnorm: bool = True,
) -> DistillStep:
    """A DistillStep for `strategy_name`, with its policy and adapters when the strategy routes.

    `example_x`: a small input batch on the training device (>= 2 samples; only shapes are
    read) to size the policy and adapters (created on the features' device and dtype). A
    frozen teacher is put in eval mode with requires_grad off; a trainable one gets
    requires_grad on. Unknown names raise UnknownNameError / ValueError listing valid ones.
    `autocast`: bf16 forwards (CUDA; see the module docstring); `channels_last`: the adapters'
    and the distiller's convolution weights in channels_last layout, like the networks';
    `fold_batchnorm`: eval-mode passes on BN-folded views. Place the networks on their device
    and memory format before building the step (the folded views copy conv weights).
    """
    cfg = cfg or StepConfig()
    strategy = create_strategy(strategy_name)
    _check_pair(student, teacher, distiller)
    trainable = TEACHER_TRAINABLE[cfg.teacher_trainable]
    teacher.requires_grad_(trainable)
    if not trainable:
        teacher.eval()
    policy = routing = None
    if strategy.uses_policy:
        feats_s, feats_t = _example_features((student, teacher), example_x)
        policy = PolicyNet(
            feats_t[-1].flatten(1).shape[1],
            feats_s[-1].flatten(1).shape[1],
            len(distiller.spots) + 1,
            init=cfg.policy_init,
        ).to(device=feats_s[-1].device, dtype=feats_s[-1].dtype)
        routing = RoutingNetwork.from_examples(distiller.spots, feats_s, feats_t)
        if channels_last:
            routing.to(memory_format=torch.channels_last)
    if channels_last:
        distiller.to(memory_format=torch.channels_last)
    return DistillStep(
        student, teacher, distiller, strategy, cfg, policy, routing, tau=tau,
        generator=generator, autocast=autocast, fold_batchnorm=fold_batchnorm,
    )
