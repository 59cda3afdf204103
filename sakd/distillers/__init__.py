"""The distiller zoo: *what* to distill (KD, FitNet, AT, SP, CC, VID, RKD, PKT, FT, NST, CRD).

    from sakd.distillers import create_distiller, default_beta
    distiller = create_distiller("at", feats_s, feats_t)   # example features of a probe forward
    losses = distiller(feats_s, feats_t, mask=mask)         # [len(distiller.spots)], unweighted
    loss = default_beta("at") * losses.sum()

`functional` holds the parameter-free losses as pure functions. Importing this package
registers every method (one module each; the parameter-free ones share a module).
"""

from sakd.distillers import (  # noqa: F401  (imported for their registrations)
    cc,
    crd,
    fitnet,
    ft,
    functional,
    parameter_free,
    vid,
)
from sakd.distillers.base import SPOT_RULES, Distiller, resolve_spots
from sakd.distillers.factory import (
    DISTILLERS,
    create_distiller,
    default_beta,
    distiller_options,
    list_distillers,
    register_distiller,
)
from sakd.distillers.options import options_model

__all__ = [
    "DISTILLERS",
    "SPOT_RULES",
    "Distiller",
    "create_distiller",
    "default_beta",
    "distiller_options",
    "functional",
    "list_distillers",
    "options_model",
    "register_distiller",
    "resolve_spots",
]
