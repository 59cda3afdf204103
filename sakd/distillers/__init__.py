"""The distiller zoo: *what* to distill (KD, FitNet, AT, SP, CC, VID, RKD, PKT, FT, NST, CRD,
DKD, ReviewKD).

    from sakd.distillers import create_distiller, default_beta
    distiller = create_distiller("at", feats_s, feats_t)   # example features of a probe forward
    losses = distiller(feats_s, feats_t, mask=mask)         # [len(distiller.spots)], unweighted
    loss = default_beta("at") * losses.sum()

One module per method (sakd/distillers/<name>.py: its loss functions on top, its registered
Distiller class below); `functional` indexes all the loss functions. Importing this package
imports every method module in the list below, which fills the registry: a new method is one
new module plus one name in that list (see CONTRIBUTING.md).
"""

from sakd.distillers import (  # noqa: F401  (method modules: imported to register them)
    at,
    cc,
    crd,
    dkd,
    fitnet,
    ft,
    functional,
    kd,
    nst,
    pkt,
    reviewkd,
    rkd,
    sp,
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
