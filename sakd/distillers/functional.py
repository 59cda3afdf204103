"""The distillation losses as pure functions: an index of the per-method modules (a public
contract: `from sakd.distillers import functional as L; L.at(f_s, f_t)`).

Same math as the reference implementations used by the CRD benchmark (RepDistiller's
`distiller_zoo`): normalisations, means versus sums and constants follow that code. Each loss
sits on top of its method's module (sakd/distillers/<method>.py). The plain functions return
the batch-mean scalar; alongside each one is the variant a strategy gates:

- element-wise losses (KD, DKD, FitNet, AT, NST, FT, VID, ReviewKD's HCL): `*_per_sample`
  returns one loss per sample, shape [B], whose mean is the plain loss (gate it with
  `gating.gated_mean`);
- relational losses (SP, CC, RKD, PKT): `*_masked(..., gate)` returns the loss of the selected
  subset times n/B (n selected out of B), computed by masking instead of indexing, so it never
  syncs with the host, is exactly 0 for an empty subset and equals the plain loss for an
  all-ones gate.

The teacher side is a constant target: it is read through `target.teacher_target`, which
detaches it, so no loss pushes gradient into the teacher features; only inside
`target.teacher_gradients()` (the authors' co-trained teacher, `distill.teacher_loss: all`)
does it keep its gradient. `cc`/`cc_masked` always keep the gradient of `e_t` (see `cc`).
"""

from sakd.distillers.at import at, at_per_sample, attention_map
from sakd.distillers.cc import cc, cc_masked
from sakd.distillers.dkd import dkd, dkd_per_sample
from sakd.distillers.fitnet import fitnet, fitnet_per_sample
from sakd.distillers.ft import factor_map, ft, ft_per_sample
from sakd.distillers.gating import gated_mean, pair_gate, selected_count
from sakd.distillers.kd import kd, kd_masked, kd_per_sample
from sakd.distillers.nst import nst, nst_per_sample
from sakd.distillers.pkt import PKT_EPS, pkt, pkt_masked
from sakd.distillers.reviewkd import hcl, hcl_per_sample
from sakd.distillers.rkd import PDIST_EPS, rkd, rkd_masked
from sakd.distillers.sp import sp, sp_masked
from sakd.distillers.vid import vid_per_sample
from sakd.layers import match_spatial

__all__ = [
    "PDIST_EPS",
    "PKT_EPS",
    "at",
    "at_per_sample",
    "attention_map",
    "cc",
    "cc_masked",
    "dkd",
    "dkd_per_sample",
    "factor_map",
    "fitnet",
    "fitnet_per_sample",
    "ft",
    "ft_per_sample",
    "gated_mean",
    "hcl",
    "hcl_per_sample",
    "kd",
    "kd_masked",
    "kd_per_sample",
    "match_spatial",
    "nst",
    "nst_per_sample",
    "pair_gate",
    "pkt",
    "pkt_masked",
    "rkd",
    "rkd_masked",
    "selected_count",
    "sp",
    "sp_masked",
    "vid_per_sample",
]
