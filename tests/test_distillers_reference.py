"""Loop-based reference computations of the published distillation formulas (no tests here).

Written independently of sakd.distillers: plain Python floats and loops over samples, pairs,
channels and pixels, on nested lists. Each function takes the samples of one (sub)batch, so a
gated relational loss is checked as `ref(subset) * n / B` on an explicit boolean subset.
"""

from __future__ import annotations

import math

import torch


def as_lists(x: torch.Tensor) -> list:
    return x.detach().double().tolist()


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def normalize(a: list[float], eps: float = 1e-12) -> list[float]:
    n = max(math.sqrt(dot(a, a)), eps)
    return [x / n for x in a]


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def pixels(sample: list) -> list[list[float]]:
    """[C][H][W] -> list over pixels of the channel vector."""
    c, h, w = len(sample), len(sample[0]), len(sample[0][0])
    return [[sample[k][i][j] for k in range(c)] for i in range(h) for j in range(w)]


def channels(sample: list) -> list[list[float]]:
    """[C][H][W] -> list over channels of the flattened map."""
    return [[v for row in ch for v in row] for ch in sample]


def flatten(sample) -> list[float]:
    if isinstance(sample, float):
        return [sample]
    return [v for part in sample for v in flatten(part)]


def block_pool(sample: list, factor: int) -> list:
    """Average over non-overlapping factor x factor blocks (= adaptive pooling by a factor)."""
    h, w = len(sample[0]), len(sample[0][0])
    return [
        [
            [
                mean([ch[i * factor + a][j * factor + b] for a in range(factor)
                      for b in range(factor)])
                for j in range(w // factor)
            ]
            for i in range(h // factor)
        ]
        for ch in sample
    ]


# ---------------------------------------------------------------------------------------- KD
def kd(logits_s: list, logits_t: list, T: float) -> float:
    total = 0.0
    for zs, zt in zip(logits_s, logits_t, strict=True):
        ls = [z / T for z in zs]
        lt = [z / T for z in zt]
        log_zs = math.log(sum(math.exp(v) for v in ls))
        log_zt = math.log(sum(math.exp(v) for v in lt))
        for a, b in zip(ls, lt, strict=True):
            p_t = math.exp(b - log_zt)
            total += p_t * ((b - log_zt) - (a - log_zs))
    return total * T * T / len(logits_s)


# ------------------------------------------------------------------------- element-wise maps
def fitnet_sample(f_s, f_t) -> float:
    a, b = flatten(f_s), flatten(f_t)
    return mean([(x - y) ** 2 for x, y in zip(a, b, strict=True)])


def _channel_mean_power(sample: list, p: int) -> list[float]:
    return [mean([v**p for v in px]) for px in pixels(sample)]


def at_sample(f_s, f_t, p: int = 2) -> float:
    a = normalize(_channel_mean_power(f_s, p))
    b = normalize(_channel_mean_power(f_t, p))
    return mean([(x - y) ** 2 for x, y in zip(a, b, strict=True)])


def ft_sample(f_s, f_t) -> float:
    a = normalize(_channel_mean_power(f_s, 2))
    b = normalize(_channel_mean_power(f_t, 2))
    return mean([abs(x - y) for x, y in zip(a, b, strict=True)])


def nst_sample(f_s, f_t) -> float:
    s = [normalize(c) for c in channels(f_s)]
    t = [normalize(c) for c in channels(f_t)]

    def k(xs, ys):
        return mean([dot(x, y) ** 2 for x in xs for y in ys])

    return k(t, t) + k(s, s) - 2 * k(s, t)


def gated(per_sample: list[float], mask: list[float]) -> float:
    """Element-wise gating: sum of the selected samples' losses over the whole batch size."""
    return sum(v for v, m in zip(per_sample, mask, strict=True) if m) / len(mask)


# ----------------------------------------------------------------------------- relational
def sp(f_s: list, f_t: list) -> float:
    s = [flatten(x) for x in f_s]
    t = [flatten(x) for x in f_t]
    n = len(s)
    gs = [normalize([dot(s[i], s[j]) for j in range(n)]) for i in range(n)]
    gt = [normalize([dot(t[i], t[j]) for j in range(n)]) for i in range(n)]
    return sum((gt[i][j] - gs[i][j]) ** 2 for i in range(n) for j in range(n)) / (n * n)


def cc(e_s: list, e_t: list) -> float:
    delta = [[abs(a - b) for a, b in zip(x, y, strict=True)] for x, y in zip(e_s, e_t, strict=True)]
    return mean([dot(delta[i], delta[i + 1]) for i in range(len(delta) - 1)])


def _dist(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def rkd(e_s: list, e_t: list, w_dist: float = 25.0, w_angle: float = 50.0) -> float:
    n = len(e_s)

    def distances(e):
        d = [[_dist(e[i], e[j]) if i != j else 0.0 for j in range(n)] for i in range(n)]
        mu = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        return [[v / mu for v in row] for row in d]

    def angle(e, i, j, k):
        u = normalize([a - b for a, b in zip(e[j], e[i], strict=True)])
        v = normalize([a - b for a, b in zip(e[k], e[i], strict=True)])
        return dot(u, v)

    ds, dt = distances(e_s), distances(e_t)
    loss_d = mean([huber(ds[i][j] - dt[i][j]) for i in range(n) for j in range(n)])
    loss_a = mean([huber(angle(e_s, i, j, k) - angle(e_t, i, j, k))
                   for i in range(n) for j in range(n) for k in range(n)])
    return w_dist * loss_d + w_angle * loss_a


def pkt(e_s: list, e_t: list, eps: float = 1e-7) -> float:
    n = len(e_s)

    def probabilities(e):
        u = [[x / (math.sqrt(dot(v, v)) + eps) for x in v] for v in e]
        sim = [[(dot(u[i], u[j]) + 1) / 2 for j in range(n)] for i in range(n)]
        return [[v / sum(row) for v in row] for row in sim]

    ps, pt = probabilities(e_s), probabilities(e_t)
    return mean([pt[i][j] * math.log((pt[i][j] + eps) / (ps[i][j] + eps))
                 for i in range(n) for j in range(n)])


def subset_times_fraction(loss_fn, a: list, b: list, mask: list[float], **kw) -> float:
    """A relational loss on the explicit subset of selected samples, times n / B."""
    keep = [i for i, m in enumerate(mask) if m]
    if len(keep) == 0:
        return 0.0
    return loss_fn([a[i] for i in keep], [b[i] for i in keep], **kw) * len(keep) / len(mask)
