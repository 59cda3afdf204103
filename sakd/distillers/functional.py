"""The parameter-free distillation losses as pure functions.

Same math as the reference implementations used by the CRD benchmark (RepDistiller's
`distiller_zoo`): normalisations, means versus sums and constants follow that code. The plain
functions return the batch-mean scalar; alongside each one is the variant a strategy gates:

- element-wise losses (KD, FitNet, AT, NST, FT, VID): `*_per_sample` returns one loss per
  sample, shape [B], whose mean is the plain loss (gate it with `gating.gated_mean`);
- relational losses (SP, CC, RKD, PKT): `*_masked(..., gate)` returns the loss of the selected
  subset times n/B (n selected out of B), computed by masking instead of indexing, so it never
  syncs with the host, is exactly 0 for an empty subset and equals the plain loss for an
  all-ones gate.

The teacher side is a constant target: it is detached here, so no loss ever pushes gradient
into the teacher features. One exception: `cc`/`cc_masked` keep the gradient of `e_t`, because
CC's e_t is the output of a learned teacher-side embedding that trains through this loss (the
CC distiller detaches the teacher features before embedding them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sakd.distillers.gating import gated_mean, pair_gate, selected_count

PKT_EPS = 1e-7
PDIST_EPS = 1e-12


# ----------------------------------------------------------------------------- shared pieces
def match_spatial(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-average-pool the larger map to the smaller size (CRD benchmark's AT/NST/VID/FT).

    The benchmark compares heights only and pools to a square; comparing height and width
    separately is the same on square maps and also handles non-square ones.
    """
    size = (min(f_s.shape[2], f_t.shape[2]), min(f_s.shape[3], f_t.shape[3]))
    if tuple(f_s.shape[2:]) != size:
        f_s = F.adaptive_avg_pool2d(f_s, size)
    if tuple(f_t.shape[2:]) != size:
        f_t = F.adaptive_avg_pool2d(f_t, size)
    return f_s, f_t


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _same_shape(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: student and teacher shapes differ: {list(a.shape)} vs "
                         f"{list(b.shape)} (apply the method's regressor first)")


def _safe(denominator: torch.Tensor) -> torch.Tensor:
    """Replace zeros by ones so masked-out rows divide 0 by 1 instead of making NaN."""
    return torch.where(denominator > 0, denominator, torch.ones_like(denominator))


# ----------------------------------------------------------------------------- KD (Hinton)
def kd_per_sample(logits_s: torch.Tensor, logits_t: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) per sample, shape [B]."""
    log_p_s = F.log_softmax(logits_s / T, dim=1)
    log_p_t = F.log_softmax(logits_t.detach() / T, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1) * (T * T)


def kd(logits_s: torch.Tensor, logits_t: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """L = T^2 / B * sum_i KL(p_t,i || p_s,i), p = softmax(z / T) (RepDistiller DistillKL)."""
    return kd_per_sample(logits_s, logits_t, T).mean()


def kd_masked(
    logits_s: torch.Tensor, logits_t: torch.Tensor, gate: torch.Tensor | None, T: float = 4.0
) -> torch.Tensor:
    """Gated KD at the logit spot: sum_i gate_i * KD_i / B."""
    return gated_mean(kd_per_sample(logits_s, logits_t, T), gate)


# ----------------------------------------------------------------------------- FitNet
def fitnet_per_sample(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample, shape [B] (f_s already regressed to f_t's shape)."""
    _same_shape("fitnet", f_s, f_t)
    return _flat(f_s - f_t.detach()).pow(2).mean(1)


def fitnet(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """L = mean over all elements of (r(f_s) - f_t)^2 (RepDistiller HintLoss = nn.MSELoss)."""
    return fitnet_per_sample(f_s, f_t).mean()


# ----------------------------------------------------------------------------- AT
def attention_map(f: torch.Tensor, p: int = 2) -> torch.Tensor:
    """a(f) = normalize_L2(mean_c f_c^p), flattened to [B, H*W]."""
    return F.normalize(_flat(f.pow(p).mean(1)), dim=1)


def at_per_sample(f_s: torch.Tensor, f_t: torch.Tensor, p: int = 2) -> torch.Tensor:
    """mean_hw (a(f_s) - a(f_t))^2 per sample, after pooling the larger map to the smaller."""
    f_s, f_t = match_spatial(f_s, f_t.detach())
    return (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean(1)


def at(f_s: torch.Tensor, f_t: torch.Tensor, p: int = 2) -> torch.Tensor:
    """L = mean_{i,hw} (a(f_s)_i - a(f_t)_i)^2, a(f) = normalize(mean_c f_c^p) (one map pair).

    Attention Transfer as in RepDistiller `Attention.at_loss` (squared, channel-averaged,
    L2-normalised maps; squared difference averaged, not the paper's p-norm of the difference).
    """
    return at_per_sample(f_s, f_t, p).mean()


# ----------------------------------------------------------------------------- NST
def _poly_kernel_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mean_{c,c'} (a_c . b_c')^2 per sample for a [B, Ca, HW], b [B, Cb, HW]."""
    return torch.bmm(a, b.transpose(1, 2)).pow(2).mean((1, 2))


def nst_per_sample(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared MMD with the kernel k(x, y) = (x.y)^2 between channel maps, per sample [B]."""
    f_s, f_t = match_spatial(f_s, f_t.detach())
    s = F.normalize(f_s.reshape(f_s.shape[0], f_s.shape[1], -1), dim=2)
    t = F.normalize(f_t.reshape(f_t.shape[0], f_t.shape[1], -1), dim=2)
    return _poly_kernel_mean(t, t) + _poly_kernel_mean(s, s) - 2 * _poly_kernel_mean(s, t)


def nst(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """L = mean k(t,t) + mean k(s,s) - 2 mean k(s,t), k(x,y) = (x.y)^2 over L2-normalised
    channel maps (RepDistiller NSTLoss, polynomial kernel, full loss)."""
    return nst_per_sample(f_s, f_t).mean()


# ----------------------------------------------------------------------------- FT
def factor_map(f: torch.Tensor) -> torch.Tensor:
    """FT's factor normalisation: normalize_L2(mean_c f_c^2), flattened to [B, H*W]."""
    return F.normalize(_flat(f.pow(2).mean(1)), dim=1)


def ft_per_sample(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    """mean_hw |phi(F_s) - phi(F_t)| per sample, shape [B]."""
    factor_s, factor_t = match_spatial(factor_s, factor_t.detach())
    return (factor_map(factor_s) - factor_map(factor_t)).abs().mean(1)


def ft(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    """L = mean_{i,hw} |phi(F_s) - phi(F_t)|, phi(F) = normalize(mean_c F_c^2).

    RepDistiller `FactorTransfer` defaults p1 = 2, p2 = 1 (L1 between the normalised factors).
    """
    return ft_per_sample(factor_s, factor_t).mean()


# ----------------------------------------------------------------------------- VID
def vid_per_sample(
    pred_mean: torch.Tensor, target: torch.Tensor, pred_var: torch.Tensor
) -> torch.Tensor:
    """Gaussian negative log-likelihood 0.5 * ((mu - t)^2 / var + log var) averaged per sample.

    `pred_var` has one variance per channel (shape [C]); the constant 0.5 log(2 pi) is dropped,
    as in the VID authors' code used by RepDistiller.
    """
    _same_shape("vid", pred_mean, target)
    var = pred_var.view(1, -1, *([1] * (pred_mean.dim() - 2)))
    nll = 0.5 * ((pred_mean - target.detach()).pow(2) / var + torch.log(var))
    return _flat(nll).mean(1)


# ----------------------------------------------------------------------------- SP
def sp_masked(f_s: torch.Tensor, f_t: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """SP on the selected subset, times n/B (see `sp`)."""
    batch = f_s.shape[0]
    pairs = pair_gate(gate)
    s, t = _flat(f_s), _flat(f_t.detach())
    g_s, g_t = s @ s.t(), t @ t.t()
    if pairs is not None:
        g_s, g_t = g_s * pairs.to(g_s.dtype), g_t * pairs.to(g_t.dtype)
    total = (F.normalize(g_t, dim=1) - F.normalize(g_s, dim=1)).pow(2).sum()
    n = selected_count(gate, batch)
    n = n.clamp_min(1) if isinstance(n, torch.Tensor) else n
    return total / (n * batch)  # = (total / n^2) * n / B


def sp(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """L = ||norm_rows(G_t) - norm_rows(G_s)||_F^2 / B^2, G = F F^T over flattened features
    (RepDistiller `Similarity`)."""
    return sp_masked(f_s, f_t, None)


# ----------------------------------------------------------------------------- CC
def cc_masked(e_s: torch.Tensor, e_t: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """CC on the selected subset (consecutive pairs among the selected samples), times n/B.

    A subset with fewer than two samples has no pair and gives 0 (the reference yields NaN).
    """
    batch = e_s.shape[0]
    delta = (_flat(e_s) - _flat(e_t)).abs()  # e_t not detached: see the module docstring
    if gate is None:
        if batch < 2:
            return delta.sum() * 0
        return (delta[:-1] * delta[1:]).sum(1).mean()
    gate = gate.to(delta.dtype)
    rank = gate.cumsum(0)  # 1-based rank of each selected sample among the selected ones
    consecutive = (rank[None, :] - rank[:, None] == 1).to(delta.dtype) * pair_gate(gate)
    total = (consecutive * (delta @ delta.t())).sum()
    n = gate.sum()
    return total * n / ((n - 1).clamp_min(1) * batch)  # = mean over n-1 pairs, times n/B


def cc(e_s: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
    """L = 1/(B-1) * sum_i <|e_s,i - e_t,i|, |e_s,i+1 - e_t,i+1|> over consecutive samples.

    This is the correlation-congruence code the CC authors sent to the CRD benchmark
    (RepDistiller `Correlation`), applied to the learned 128-d embeddings of both nets.
    """
    return cc_masked(e_s, e_t, None)


# ----------------------------------------------------------------------------- RKD
def _pdist(e: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix with a zero diagonal (squared distances clamped at 1e-12)."""
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(PDIST_EPS).sqrt()
    return d * (1 - torch.eye(e.shape[0], device=e.device, dtype=e.dtype))


def _angles(e: torch.Tensor) -> torch.Tensor:
    """cos of the angle at vertex i between j and k: [i, j, k] = <u(e_j - e_i), u(e_k - e_i)>."""
    u = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)
    return torch.bmm(u, u.transpose(1, 2))


def _mean_normalised(d: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """d / mean of the off-diagonal distances inside the subset (masked entries become 0)."""
    mean = (d * pairs).sum() / pairs.sum().clamp_min(1)
    return d * pairs / _safe(mean)


def rkd_masked(
    e_s: torch.Tensor,
    e_t: torch.Tensor,
    gate: torch.Tensor | None,
    w_dist: float = 25.0,
    w_angle: float = 50.0,
) -> torch.Tensor:
    """RKD on the selected subset, times n/B (see `rkd`)."""
    s, t = _flat(e_s), _flat(e_t.detach())
    batch = s.shape[0]
    off_diagonal = 1 - torch.eye(batch, device=s.device, dtype=s.dtype)
    g = torch.ones(batch, device=s.device, dtype=s.dtype) if gate is None else gate.to(s.dtype)
    pairs = g[:, None] * g[None, :] * off_diagonal
    triples = g[:, None, None] * g[None, :, None] * g[None, None, :]
    n = g.sum().clamp_min(1)

    dist = F.smooth_l1_loss(
        _mean_normalised(_pdist(s), pairs), _mean_normalised(_pdist(t), pairs), reduction="none"
    ).sum()
    angle = (F.smooth_l1_loss(_angles(s), _angles(t), reduction="none") * triples).sum()
    # subset means: dist / n^2 and angle / n^3; times n / B for the gate
    return (w_dist * dist / n + w_angle * angle / (n * n)) / batch


def rkd(
    e_s: torch.Tensor, e_t: torch.Tensor, w_dist: float = 25.0, w_angle: float = 50.0
) -> torch.Tensor:
    """L = w_d * mean smoothL1(psi_D(s), psi_D(t)) + w_a * mean smoothL1(psi_A(s), psi_A(t)).

    psi_D: pairwise distances divided by their mean over off-diagonal pairs, averaged over all
    B^2 entries; psi_A: cosines of the angle e_j - e_i, e_k - e_i, averaged over all B^3
    triples. Weights 25 and 50 (RepDistiller `RKDLoss`).
    """
    return rkd_masked(e_s, e_t, None, w_dist, w_angle)


# ----------------------------------------------------------------------------- PKT
def _cosine_probabilities(e: torch.Tensor, pairs: torch.Tensor | None) -> torch.Tensor:
    """Rows of (cos + 1) / 2 over the subset, normalised to sum to 1 (masked rows stay 0)."""
    u = e / (e.norm(dim=1, keepdim=True) + PKT_EPS)
    sim = (u @ u.t() + 1.0) / 2.0
    if pairs is not None:
        sim = sim * pairs
    return sim / _safe(sim.sum(1, keepdim=True))


def pkt_masked(e_s: torch.Tensor, e_t: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """PKT on the selected subset, times n/B (see `pkt`)."""
    s, t = _flat(e_s), _flat(e_t.detach())
    batch = s.shape[0]
    pairs = pair_gate(None if gate is None else gate.to(s.dtype))
    p_s, p_t = _cosine_probabilities(s, pairs), _cosine_probabilities(t, pairs)
    total = (p_t * torch.log((p_t + PKT_EPS) / (p_s + PKT_EPS))).sum()
    n = selected_count(gate, batch)
    n = n.clamp_min(1) if isinstance(n, torch.Tensor) else n
    return total / (n * batch)  # = (total / n^2) * n / B


def pkt(e_s: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
    """L = mean_{i,j} p_t,ij log((p_t,ij + eps) / (p_s,ij + eps)), eps = 1e-7, where
    p_ij = ((cos_ij + 1) / 2) / sum_j ((cos_ij + 1) / 2) (RepDistiller `PKT`; note the mean,
    not the sum, over the B^2 entries)."""
    return pkt_masked(e_s, e_t, None)
