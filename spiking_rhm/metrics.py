r"""Metrics of learned representations and of learning curves (science.md section 6).

* :func:`synonymic_sensitivity` -- how much a layer's activity changes when synonyms are
  exchanged below level l, relative to how much it changes between datapoints::

      S_l(f) = mean_i ||f(x_i) - f(R_l x_i)||^2  /  mean_{i,j} ||f(x_i) - f(x_j)||^2

  (the reference ``observables/stability.py`` formula; the denominator averages over
  all pairs, diagonal included).  S = 0 means invariance.
* :func:`pstar` -- sample complexity P*(eps): the smallest P at which the seed-mean test
  error falls to eps, interpolated linearly in log P, with a bootstrap interval over seeds.
* :func:`clustering_error` -- whether the first layer groups synonymous bottom tuples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np

from spiking_rhm.errors import SpikingRHMError

LayerFn = Callable[[np.ndarray], Sequence]  # int inputs [N, d] -> per-layer activations [N, ...]


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _flat_layers(layer_fn: LayerFn, inputs: np.ndarray) -> list[np.ndarray]:
    out = layer_fn(inputs)
    if not isinstance(out, (list, tuple)):
        raise SpikingRHMError("layer_fn must return a list of per-layer activations")
    return [_as_numpy(a).reshape(inputs.shape[0], -1) for a in out]


def synonymic_sensitivity(layer_fn: LayerFn, rhm, sample, generator: np.random.Generator,
                          batch_size: int = 2048) -> dict:
    r"""Synonymic sensitivity of every layer to resampling at every level.

    ``S[k][i] = mean_n ||f_k(x_n) - f_k(R_l x_n)||^2 / mean_{n,n'} ||f_k(x_n) - f_k(x_n')||^2``
    for layer ``k`` and level ``l = levels[i]``, ``levels = [L-1, ..., 0]`` (L-1: exchange of
    bottom synonyms only; 0: everything but the class redrawn).

    ``layer_fn`` maps int inputs ``[N, d]`` (numpy int64) to a list of activations, each
    ``[N, ...]`` (flattened here).  The denominator uses the identity
    ``mean_{n,n'} ||a_n - a_n'||^2 = 2 (mean_n ||a_n||^2 - ||mean_n a_n||^2)`` over the whole
    sample (the reference uses the first 2000 points; same quantity, less noise).
    A layer with constant activity has an undefined S, reported as NaN.

    Returns ``{"levels": [L-1..0], "layers": [[S per level] per layer], "n": N}``.
    """
    n = int(sample.inputs.shape[0])
    if n < 2:
        raise SpikingRHMError("synonymic sensitivity needs at least 2 datapoints")
    levels = list(range(rhm.L - 1, -1, -1))
    resampled = [rhm.resample(sample, level, generator).inputs for level in levels]
    sq_norm = None  # per layer: sum_n ||a_n||^2
    total = None  # per layer: sum_n a_n
    numer = None  # per layer, per level: sum_n ||a_n - a'_n||^2
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        base = _flat_layers(layer_fn, sample.inputs[start:stop])
        if sq_norm is None:
            sq_norm = [0.0] * len(base)
            total = [np.zeros(a.shape[1]) for a in base]
            numer = [[0.0] * len(levels) for _ in base]
        for k, a in enumerate(base):
            sq_norm[k] += float(np.einsum("ij,ij->", a, a))
            total[k] += a.sum(axis=0)
        for i, moved in enumerate(resampled):
            for k, b in enumerate(_flat_layers(layer_fn, moved[start:stop])):
                diff = base[k] - b
                numer[k][i] += float(np.einsum("ij,ij->", diff, diff))
    layers = []
    for k in range(len(sq_norm)):
        mean_a = total[k] / n
        denom = 2.0 * (sq_norm[k] / n - float(mean_a @ mean_a))
        if denom <= 1e-12 * max(1.0, sq_norm[k] / n):
            layers.append([math.nan] * len(levels))
        else:
            layers.append([numer[k][i] / n / denom for i in range(len(levels))])
    return {"levels": levels, "layers": layers, "n": n}


# ---------------------------------------------------------------------------
# sample complexity P*
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PStar:
    """P*(eps) with its bootstrap interval.

    ``status``: ``reached`` (interpolated between two bracketing P), ``below_range``
    (the smallest P already has error <= eps: ``value`` = that P is an upper bound),
    ``not_reached`` (``value`` = inf: the error never falls to eps in the range).
    ``low``/``high``: bootstrap percentile interval over seeds (``high`` = inf when some
    resamples never reach eps).
    """

    value: float
    low: float
    high: float
    status: str
    eps: float
    n_seeds: int

    @property
    def reached(self) -> bool:
        return self.status != "not_reached"

    def to_dict(self) -> dict:
        return asdict(self)


def pstar_point(P: Sequence[float], mean_error: Sequence[float], eps: float) -> tuple[float, str]:
    r"""First crossing of ``eps`` by the curve ``mean_error(P)``, linear in log P.

    With ``k`` the first index where ``e_k <= eps``::

        log P* = log P_{k-1} + (e_{k-1} - eps) / (e_{k-1} - e_k) * (log P_k - log P_{k-1})

    NaN points (no data) are skipped.
    """
    P = np.asarray(P, dtype=np.float64)
    e = np.asarray(mean_error, dtype=np.float64)
    keep = np.isfinite(e)
    P, e = P[keep], e[keep]
    if P.size == 0:
        return math.inf, "not_reached"
    hits = np.flatnonzero(e <= eps)
    if hits.size == 0:
        return math.inf, "not_reached"
    k = int(hits[0])
    if k == 0:
        return float(P[0]), "below_range"
    frac = (e[k - 1] - eps) / (e[k - 1] - e[k])
    log_p = math.log(P[k - 1]) + frac * (math.log(P[k]) - math.log(P[k - 1]))
    return float(math.exp(log_p)), "reached"


def pstar(P: Sequence[float], errors_by_seed, eps: float = 0.1, n_boot: int = 2000,
          confidence: float = 0.9, seed: int = 0) -> PStar:
    """P*(eps) from test errors ``errors_by_seed[seed_index][P_index]`` (NaN = missing run).

    The point estimate uses the seed-mean curve (:func:`pstar_point`); the interval is the
    bootstrap percentile interval of the same estimate over seeds resampled with
    replacement (``n_boot`` resamples, ``confidence`` coverage).
    """
    P = np.asarray(P, dtype=np.float64)
    err = np.atleast_2d(np.asarray(errors_by_seed, dtype=np.float64))
    if P.ndim != 1 or err.shape[1] != P.size:
        raise SpikingRHMError(f"errors_by_seed must be [n_seeds, {P.size}], got {list(err.shape)}")
    if P.size and (np.any(P <= 0) or np.any(np.diff(P) <= 0)):
        raise SpikingRHMError("P must be positive and strictly increasing")
    if not 0 < confidence < 1:
        raise SpikingRHMError(f"confidence must lie in (0, 1), got {confidence}")
    err = err[np.isfinite(err).any(axis=1)]
    n_seeds = err.shape[0]
    if n_seeds == 0:
        return PStar(math.inf, math.inf, math.inf, "not_reached", eps, 0)
    value, status = pstar_point(P, _nanmean(err), eps)
    low, high = bootstrap_interval(lambda rows: pstar_point(P, _nanmean(err[rows]), eps)[0], n_seeds,
                                   n_boot=n_boot, confidence=confidence, seed=seed)
    return PStar(value, low, high, status, float(eps), n_seeds)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n_rows: int, n_boot: int = 2000,
                       confidence: float = 0.9, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(rows)`` over ``n_boot`` resamples ``rows`` of
    ``range(n_rows)`` drawn with replacement (``numpy.random.default_rng(seed)``).

    ``statistic`` gets the resampled row indices, so statistics of several arrays resample their rows
    jointly (paired).  A NaN statistic sorts last, like inf.  ``(low, high)`` = the resamples at ranks
    ``floor(a (n_boot - 1))`` and ``ceil((1 - a)(n_boot - 1))`` of the sorted list, ``a = (1 - confidence) / 2``.
    """
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        boots[b] = statistic(rng.integers(0, n_rows, size=n_rows))
    boots.sort()
    alpha = (1.0 - confidence) / 2.0
    low = float(boots[int(math.floor(alpha * (n_boot - 1)))])
    high = float(boots[int(math.ceil((1.0 - alpha) * (n_boot - 1)))])
    return low, high


@dataclass(frozen=True)
class PStarRatio:
    """``P*(a) / P*(b)`` over paired rows, with its paired bootstrap interval (:func:`pstar_ratio`).

    ``a``/``b``: the two P* over the shared rows (:func:`pstar_point` of their mean curves) and
    ``a_status``/``b_status`` theirs (as :class:`PStar`'s). ``value``: ``inf`` when ``a`` never reaches eps
    (also when neither does), ``0`` when only ``b`` never reaches it.
    """

    value: float
    low: float
    high: float
    a: float
    b: float
    a_status: str
    b_status: str
    n_pairs: int

    def to_dict(self) -> dict:
        return asdict(self)


def ratio_value(a: float, b: float) -> float:
    """``a / b`` for P* values (never NaN): inf when ``a`` is inf (whatever ``b``), 0 when only ``b`` is."""
    if math.isinf(a):
        return math.inf
    return 0.0 if math.isinf(b) else a / b


def pstar_ratio(P_a: Sequence[float], errors_a, P_b: Sequence[float], errors_b, eps: float = 0.1,
                n_boot: int = 2000, confidence: float = 0.9, seed: int = 0) -> PStarRatio:
    r"""``P*(a) / P*(b)`` with a paired bootstrap interval; row ``i`` of ``errors_a`` and of ``errors_b`` are
    the same (grammar, seed) pair (``errors_x[row][P_index]`` as in :func:`pstar`, NaN = missing run).

    Pairs where either curve has no finished run are dropped. Point estimate: the ratio of the two
    seed-mean-curve P* (:func:`pstar_point`); interval: :func:`bootstrap_interval` (the same resampling and
    seed as :func:`pstar`'s) of that ratio, each resample drawing the same pairs for both curves.
    A ratio whose numerator never reaches eps is inf (one whose denominator only never reaches it is 0).
    """
    P_a, P_b = (np.asarray(x, dtype=np.float64) for x in (P_a, P_b))
    err_a, err_b = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in (errors_a, errors_b))
    for P, err in ((P_a, err_a), (P_b, err_b)):
        if P.ndim != 1 or err.shape[1] != P.size:
            raise SpikingRHMError(f"errors must be [n_pairs, {P.size}], got {list(err.shape)}")
    if err_a.shape[0] != err_b.shape[0]:
        raise SpikingRHMError(f"paired errors need the same rows, got {err_a.shape[0]} and {err_b.shape[0]}")
    keep = np.isfinite(err_a).any(axis=1) & np.isfinite(err_b).any(axis=1)
    err_a, err_b = err_a[keep], err_b[keep]
    if not 0 < confidence < 1:
        raise SpikingRHMError(f"confidence must lie in (0, 1), got {confidence}")
    n_pairs = int(keep.sum())
    if n_pairs == 0:
        return PStarRatio(math.inf, math.inf, math.inf, math.inf, math.inf, "not_reached", "not_reached", 0)
    (a, a_status), (b, b_status) = (pstar_point(P, _nanmean(err), eps) for P, err in ((P_a, err_a), (P_b, err_b)))

    def ratio(rows):
        return ratio_value(pstar_point(P_a, _nanmean(err_a[rows]), eps)[0],
                           pstar_point(P_b, _nanmean(err_b[rows]), eps)[0])

    low, high = bootstrap_interval(ratio, n_pairs, n_boot=n_boot, confidence=confidence, seed=seed)
    return PStarRatio(ratio_value(a, b), low, high, a, b, a_status, b_status, n_pairs)


def _nanmean(a: np.ndarray) -> np.ndarray:
    count = np.isfinite(a).sum(axis=0)
    total = np.where(np.isfinite(a), a, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# ---------------------------------------------------------------------------
# clustering error of the first layer
# ---------------------------------------------------------------------------
def bottom_tuples(rhm) -> tuple[np.ndarray, np.ndarray]:
    """Every bottom-level production ``[n_pairs, s]`` and its parent symbol, ordered by parent."""
    table = rhm.rules[-1]  # [n_parents, m, s], -1 rows for unused parents
    parents = np.flatnonzero(table[:, 0, 0] >= 0)
    tuples = table[parents].reshape(-1, rhm.s)
    return tuples, np.repeat(parents, rhm.m)


def clustering_error(first_layer_fn: Callable[[np.ndarray], object], rhm, seed: int = 0,
                     n_init: int = 10, position: int = 0) -> float:
    """Clustering error of the first layer (reference ``observables/clustering.py``).

    Each bottom production (``m`` per used parent) is placed at the first patch, every
    other position holding symbol 0; the first-layer activity at ``position`` (layout
    ``[N, H, positions]``, or ``[N, features]``) is clustered by k-means into
    ``#tuples / m`` clusters (best of ``n_init`` seeded k-means++ runs).  Error =
    1 - fraction of tuples whose cluster is the modal cluster of their synonym group.
    """
    from scipy.cluster.vq import kmeans2

    tuples, parents = bottom_tuples(rhm)
    inputs = np.zeros((tuples.shape[0], rhm.d), dtype=np.int64)
    inputs[:, : rhm.s] = tuples
    act = _as_numpy(first_layer_fn(inputs))
    if act.ndim == 3:
        act = act[:, :, position]
    act = act.reshape(act.shape[0], -1)
    k = tuples.shape[0] // rhm.m
    rng = np.random.default_rng(seed)
    best, best_inertia = None, math.inf
    for _ in range(n_init):
        centroids, labels = kmeans2(act, k, minit="++", seed=rng)
        inertia = float(((act - centroids[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    correct = 0
    for parent in np.unique(parents):
        group = best[parents == parent]
        correct += int(np.bincount(group).max())
    return 1.0 - correct / tuples.shape[0]


# ---------------------------------------------------------------------------------------------
# linear probe: the converged readout used to evaluate frozen or self-supervised features
# ---------------------------------------------------------------------------------------------
PROBE_L2 = 1e-4
PROBE_MAX_ITER = 500


class ProbeFit(NamedTuple):
    """A fitted linear probe: its scores and the affine map on the *raw* features, ``logits = f W + b``."""

    metrics: dict
    weight: np.ndarray  # [D, n_classes]
    bias: np.ndarray  # [n_classes]


def fit_linear_probe(train_features, train_labels, test_features, test_labels, n_classes: int,
                     l2: float = PROBE_L2, max_iter: int = PROBE_MAX_ITER) -> ProbeFit:
    r"""Multinomial logistic regression on frozen features, trained to convergence (L-BFGS).

    Features are standardised with the training mean and std; the loss is
    ``CE(f W + b, y) + l2 * ||W||^2`` on the full training set.  This is the standard
    linear-evaluation protocol of self-supervised learning: it makes the `random-features`
    control and every unsupervised rule reach the best linear readout of their features,
    which an online delta rule on badly conditioned ReLU features does not in a few
    thousand steps.  The standardisation is folded into the returned map
    (``W / sd``, ``b - (mu / sd) W``), so a deployed network can use it as its readout.
    """
    import torch
    import torch.nn.functional as F

    Xtr = torch.as_tensor(train_features, dtype=torch.float64).reshape(len(train_labels), -1)
    Xte = torch.as_tensor(test_features, dtype=torch.float64).reshape(len(test_labels), Xtr.shape[1])
    ytr = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    yte = torch.as_tensor(np.asarray(test_labels), dtype=torch.long)
    mu, sd = Xtr.mean(0), Xtr.std(0, unbiased=False).clamp_min(1e-8)
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    W = torch.zeros(Xtr.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(Xtr @ W + b, ytr) + l2 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)  # returns the loss at the start (W = 0: ln n_classes), not at the optimum
    with torch.no_grad():
        loss = float(F.cross_entropy(Xtr @ W + b, ytr))  # the fitted probe's train cross-entropy
        train_error = float(((Xtr @ W + b).argmax(1) != ytr).double().mean())
        test_error = float(((Xte @ W + b).argmax(1) != yte).double().mean()) if len(yte) else float("nan")
        weight = W / sd[:, None]
        bias = b - (mu / sd) @ W
    metrics = {"train_error": train_error, "test_error": test_error, "train_loss": loss, "l2": l2,
               "features": int(Xtr.shape[1])}
    return ProbeFit(metrics, weight.numpy(), bias.numpy())


DELTA_EPOCHS = 100
DELTA_MIN_STEPS = 2000
DELTA_LR = 1.0
DELTA_BATCH = 128


def fit_delta_readout(train_features, train_labels, test_features, test_labels, n_classes: int,
                      epochs: int = DELTA_EPOCHS, min_steps: int = DELTA_MIN_STEPS, lr: float = DELTA_LR,
                      batch_size: int = DELTA_BATCH, seed: int = 0) -> ProbeFit:
    r"""A local readout on frozen features: the delta rule on centred features with a bias.

    ``x = (f - mu) / (g sqrt(D))`` with ``mu`` the training mean and one scalar gain ``g`` (the rms of
    ``f - mu`` over units), so ``||x|| ~ 1``; then online mini-batch SGD (momentum 0.9, cosine schedule,
    ``max(epochs, ceil(min_steps / steps per epoch))`` epochs) on the cross-entropy of ``z = x W + b``::

        W <- W - lr (x^T (softmax(z) - y*)) / B,     b <- b - lr mean_B (softmax(z) - y*)

    a per-synapse product of the centred pre-synaptic activity and the output error (no second-order
    solver, no per-unit standardisation, unlike :func:`fit_linear_probe`).  The map is returned on the raw
    features, like the probe's.
    """
    import torch
    import torch.nn.functional as F

    Xtr = torch.as_tensor(np.asarray(train_features), dtype=torch.float64).reshape(len(train_labels), -1)
    Xte = torch.as_tensor(np.asarray(test_features), dtype=torch.float64).reshape(len(test_labels), Xtr.shape[1])
    ytr = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    yte = torch.as_tensor(np.asarray(test_labels), dtype=torch.long)
    D = Xtr.shape[1]
    mu = Xtr.mean(0)
    gain = float((Xtr - mu).pow(2).mean().sqrt().clamp_min(1e-8)) * math.sqrt(D)
    Xtr_c, Xte_c = (Xtr - mu) / gain, (Xte - mu) / gain
    W = torch.zeros(D, n_classes, dtype=torch.float64)
    b = torch.zeros(n_classes, dtype=torch.float64)
    vW, vb = torch.zeros_like(W), torch.zeros_like(b)  # momentum buffers (torch.optim.SGD's convention)
    Y = F.one_hot(ytr, n_classes).to(torch.float64)
    n = len(ytr)
    batch = min(batch_size, n)
    per_epoch = -(-n // batch)
    n_epochs = max(epochs, -(-min_steps // per_epoch))
    total, step = n_epochs * per_epoch, 0
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n_epochs):
        perm = torch.randperm(n, generator=gen)
        for k in range(per_epoch):
            idx = perm[k * batch:(k + 1) * batch]
            x = Xtr_c[idx]
            err = (torch.softmax(x @ W + b, 1) - Y[idx]) / len(idx)  # output error of the delta rule
            vW.mul_(0.9).add_(x.t() @ err)
            vb.mul_(0.9).add_(err.sum(0))
            eta = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            W.sub_(eta * vW)
            b.sub_(eta * vb)
            step += 1
    with torch.no_grad():
        train_logits = Xtr_c @ W + b
        train_error = float((train_logits.argmax(1) != ytr).double().mean())
        train_loss = float(F.cross_entropy(train_logits, ytr))
        test_logits = Xte_c @ W + b
        test_error = float((test_logits.argmax(1) != yte).double().mean()) if len(yte) else float("nan")
        test_loss = float(F.cross_entropy(test_logits, yte)) if len(yte) else float("nan")
        weight = W / gain
        bias = b - (mu / gain) @ W
    metrics = {"train_error": train_error, "test_error": test_error, "train_loss": train_loss, "test_loss": test_loss,
               "epochs": n_epochs, "steps": total, "lr": lr, "features": int(D)}
    return ProbeFit(metrics, weight.numpy(), bias.numpy())


def probe_scores(fit: ProbeFit, features, labels) -> dict:
    """``{"error", "loss"}`` of a fitted probe's map ``f W + b`` on other points (e.g. validation points)."""
    import torch
    import torch.nn.functional as F

    X = torch.as_tensor(np.asarray(features), dtype=torch.float64).reshape(len(labels), -1)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if not len(y):
        return {"error": float("nan"), "loss": float("nan")}
    logits = X @ torch.as_tensor(fit.weight) + torch.as_tensor(fit.bias)
    return {"error": float((logits.argmax(1) != y).double().mean()), "loss": float(F.cross_entropy(logits, y))}


def linear_probe(train_features, train_labels, test_features, test_labels, n_classes: int,
                 l2: float = PROBE_L2, max_iter: int = PROBE_MAX_ITER) -> dict:
    """The scores of :func:`fit_linear_probe` (train/test error, final loss, l2, feature count)."""
    return fit_linear_probe(train_features, train_labels, test_features, test_labels, n_classes, l2,
                            max_iter).metrics
