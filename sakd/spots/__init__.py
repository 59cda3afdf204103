"""Where to distill: policy, Gumbel decisions, tau schedules, routing network, strategies."""

from sakd.layers import build_adapter
from sakd.spots.gumbel import DISTILL, gumbel_noise, gumbel_softmax_st, route_decisions
from sakd.spots.policy import PolicyNet, list_policy_inits
from sakd.spots.router_lr import list_router_lr_schedules, router_lr_scheduler
from sakd.spots.routing import RoutingNetwork
from sakd.spots.routing_loss import get_routing_loss, list_routing_losses
from sakd.spots.strategies import Strategy, create_strategy, list_strategies
from sakd.spots.tau import TAU_UNITS, list_tau_schedules, make_tau_schedule, tau_total

__all__ = [
    "DISTILL",
    "TAU_UNITS",
    "PolicyNet",
    "RoutingNetwork",
    "Strategy",
    "build_adapter",
    "create_strategy",
    "get_routing_loss",
    "gumbel_noise",
    "gumbel_softmax_st",
    "list_policy_inits",
    "list_router_lr_schedules",
    "list_routing_losses",
    "list_strategies",
    "list_tau_schedules",
    "make_tau_schedule",
    "route_decisions",
    "router_lr_scheduler",
    "tau_total",
]
