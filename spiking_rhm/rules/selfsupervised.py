r"""Layer-wise self-supervised rules: CLAPP (same-layer, DFB, both), InfoNCE, VICReg.

Every hidden layer ``l`` has its own loss; hidden layers never see labels.  A pair mode
(:mod:`spiking_rhm.rules.pairs`) splits ``h^l`` into targets ``t`` and gives each a
*detached* context ``c``; a scoring turns them into sites ``[B, D, N]``; one predictor
``B`` per (context source, target part) scores ``u = t^T B c`` at every site.  Negatives:
the context of the previous batch item at the same site (``roll`` by one along the batch),
or every other batch item for InfoNCE.  Gradients reach ``h^l`` only through ``t`` (the
contexts -- other parts of the same layer, the positive view, or the top layer -- are
detached), so ``L^l = d ell^l / d h^l`` is local to layer ``l``::

    CLAPP hinge   ell = mean_sites [ max(0, 1 - u+) + max(0, 1 + u-) ],  u+- = t^T B c+-
                  L   = -(gamma+ B c+ + gamma- B c-) / n,   gamma = y 1[y u < 1], y = +1 / -1
                  Delta B = -lr d ell/d B = lr (gamma+ t c+^T + gamma- t c-^T) / n
    InfoNCE       ell = -mean_sites log softmax_b'( cos(t_b, B c_b') / tau )_b
    VICReg        ell = w_i |t - B c|^2 + w_v mean relu(gamma_v - std_b(t)) + w_c sum_{i!=j} C_ij^2 / D

``n`` is the number of (sample, site) pairs; the per-layer loss averages over the parts
of the pair mode and sums over context sources (CLAPP-both = same-layer + top-layer).
Equations and deviations: ``docs/rules_selfsupervised.md``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping, NamedTuple

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.rules.base import LearningContext, Rule, field_by_name, register
from spiking_rhm.rules.pairs import PAIR_MODES, SCORINGS, get_pair_mode, get_scoring

Tensor = torch.Tensor


# --------------------------------------------------------------------------- objectives
# Each objective works on sites t [B, D, N], c [B, Dc, N] with a predictor B [D, Dc]:
# ``loss`` is differentiable in t (and B); ``grads`` gives (d loss/d t, d loss/d B) by formula.
class HingeObjective:
    """CLAPP hinge with one negative (the context of batch item b-1)."""

    option_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: Mapping[str, Any]):
        self.options = options

    @staticmethod
    def scores(t: Tensor, c: Tensor, B: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        pred = torch.einsum("ij,bjn->bin", B, c)  # dendritic prediction B c
        pred_neg = torch.roll(pred, 1, 0)  # B c of batch item b-1
        return (t * pred).sum(1), (t * pred_neg).sum(1), pred, pred_neg

    def loss(self, t, c, B):
        u_pos, u_neg, _, _ = self.scores(t, c, B)
        return (torch.relu(1 - u_pos) + torch.relu(1 + u_neg)).mean()

    def factors(self, t, c, B) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(gamma+, gamma-, B c+, B c-): gamma = y 1[y u < 1], one scalar per sample and site."""
        u_pos, u_neg, pred, pred_neg = self.scores(t, c, B)
        return (u_pos < 1).to(t.dtype), -(u_neg > -1).to(t.dtype), pred, pred_neg

    def grads(self, t, c, B):
        g_pos, g_neg, pred, pred_neg = self.factors(t, c, B)
        n = g_pos.numel()
        g_pos, g_neg = g_pos.unsqueeze(1) / n, g_neg.unsqueeze(1) / n
        d_t = -(g_pos * pred + g_neg * pred_neg)
        d_pred = -(g_pos * t + torch.roll(g_neg * t, -1, 0))  # pred_neg[b] = pred[b-1]
        return d_t, torch.einsum("bin,bjn->ij", d_pred, c)


def _unit(x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """x / sqrt(|x|^2 + eps^2) along dim 1, and that norm."""
    norm = torch.sqrt((x * x).sum(1, keepdim=True) + eps**2)
    return x / norm, norm


def _unit_backward(x: Tensor, norm: Tensor, g: Tensor) -> Tensor:
    """Gradient w.r.t. x of a loss whose gradient w.r.t. x / norm is g."""
    return g / norm - x * (x * g).sum(1, keepdim=True) / norm**3


class InfoNCEObjective:
    """Cosine similarity / temperature between t_b and B c_b', softmax over the batch (per site)."""

    option_defaults: ClassVar[Mapping[str, Any]] = {"temperature": 0.1}

    def __init__(self, options):
        if not options["temperature"] > 0:
            raise ConfigError(f"temperature must be > 0, got {options['temperature']!r}")
        self.tau = float(options["temperature"])

    def _logits(self, t, c, B):
        q = torch.einsum("ij,bjn->bin", B, c)
        kt, nt = _unit(t)
        kq, nq = _unit(q)
        return torch.einsum("bdn,edn->nbe", kt, kq) / self.tau, (q, kt, nt, kq, nq)

    def loss(self, t, c, B):
        logits, _ = self._logits(t, c, B)
        labels = torch.arange(t.shape[0], device=t.device)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.repeat(logits.shape[0]))

    def grads(self, t, c, B):
        logits, (q, kt, nt, kq, nq) = self._logits(t, c, B)
        n_sites, batch = logits.shape[0], logits.shape[1]
        G = (torch.softmax(logits, -1) - torch.eye(batch, dtype=t.dtype, device=t.device)) / (
            self.tau * batch * n_sites)
        d_kt = torch.einsum("nbe,edn->bdn", G, kq)
        d_kq = torch.einsum("nbe,bdn->edn", G, kt)
        d_t = _unit_backward(t, nt, d_kt)
        d_q = _unit_backward(q, nq, d_kq)
        return d_t, torch.einsum("bin,bjn->ij", d_q, c)


class VICRegObjective:
    """Invariance to the prediction B c, variance hinge and decorrelation of t, per site over the batch."""

    option_defaults: ClassVar[Mapping[str, Any]] = {"inv_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0,
                                                    "var_target": 1.0}
    eps: ClassVar[float] = 1e-4

    def __init__(self, options):
        for key in ("inv_weight", "var_weight", "cov_weight"):
            if not options[key] >= 0:
                raise ConfigError(f"{key} must be >= 0, got {options[key]!r}")
        if not options["var_target"] > 0:
            raise ConfigError(f"var_target must be > 0, got {options['var_target']!r}")
        self.w_inv, self.w_var, self.w_cov = (float(options[k]) for k in ("inv_weight", "var_weight", "cov_weight"))
        self.target = float(options["var_target"])

    def _stats(self, t):
        X = t - t.mean(0, keepdim=True)
        std = torch.sqrt((X * X).sum(0) / (t.shape[0] - 1) + self.eps)  # [D, N]
        C = torch.einsum("bin,bjn->nij", X, X) / (t.shape[0] - 1)
        off = C - torch.diag_embed(torch.diagonal(C, dim1=1, dim2=2))
        return X, std, off

    def loss(self, t, c, B):
        pred = torch.einsum("ij,bjn->bin", B, c)
        _, std, off = self._stats(t)
        D = t.shape[1]
        inv = ((t - pred) ** 2).mean()
        var = torch.relu(self.target - std).mean()
        cov = (off**2).sum((1, 2)).mean() / D
        return self.w_inv * inv + self.w_var * var + self.w_cov * cov

    def grads(self, t, c, B):
        pred = torch.einsum("ij,bjn->bin", B, c)
        X, std, off = self._stats(t)
        batch, D, N = t.shape
        d_inv = 2 * (t - pred) / t.numel()
        d_var = X * (-(std < self.target).to(t.dtype) / (D * N * (batch - 1) * std))
        d_cov = 4 * torch.einsum("bjn,nji->bin", X, off) / ((batch - 1) * N * D)
        d_t = self.w_inv * d_inv + self.w_var * d_var + self.w_cov * d_cov
        return d_t, torch.einsum("bin,bjn->ij", -self.w_inv * d_inv, c)


# --------------------------------------------------------------------------- rules
COMMON_OPTIONS: Mapping[str, Any] = {
    "pairs": "sibling",  # resample | mask | sibling  (see spiking_rhm.rules.pairs)
    "scoring": "position",  # position | flat | pooled
    "resample_level": None,  # pairs=resample: None -> R_{L-l} for layer l; int k -> R_k for all layers
    "mask_fraction": 0.5,  # pairs=mask (and sibling's fallback on single-position layers)
    "predictor_decay": 0.0,  # weight decay of the predictors B in update_state
}


class SSLState(NamedTuple):
    """Layer shapes ``(H_l, P_l)``, the pair mode's static layout per layer, the predictors ``B`` per layer by key."""

    layer_shapes: list[tuple[int, int]]
    pairs: list[dict]
    predictors: list[dict[str, Tensor]]
    __getitem__ = field_by_name


class LayerwiseSSLRule(Rule):
    """Shared machinery: pairs -> sites -> objective, explicit signals and predictor updates."""

    family = "self-supervised"
    supervised = False
    local = True
    default_lr = 0.05
    objective_class: ClassVar[type] = HingeObjective

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        # a rule's options are derived from its objective: the common ones plus the objective's own
        cls.option_defaults = {**COMMON_OPTIONS, **cls.objective_class.option_defaults}

    def __init__(self, **options: Any):
        super().__init__(**options)
        opts = self.options
        self.pair_mode = get_pair_mode(opts["pairs"])
        self.scoring = get_scoring(opts["scoring"])
        level = opts["resample_level"]
        if level is not None and (isinstance(level, bool) or not isinstance(level, int) or level < 0):
            raise ConfigError(f"resample_level must be None or a non-negative integer, got {level!r}")
        if not 0 < opts["mask_fraction"] < 1:
            raise ConfigError(f"mask_fraction must be in (0, 1), got {opts['mask_fraction']!r}")
        if not opts["predictor_decay"] >= 0:
            raise ConfigError(f"predictor_decay must be >= 0, got {opts['predictor_decay']!r}")
        self.objective = self.objective_class(opts)

    # -- what the back end must know -------------------------------------------------
    def needs_second_view(self) -> bool:
        return self.pair_mode.needs_second_view

    def positive_view_levels(self, L: int) -> list[int] | None:
        """R_l level of the positive view of each hidden layer, or None if no second view is needed."""
        return self.pair_mode.positive_view_levels(L, self.options["resample_level"])

    def data_use(self, L: int) -> dict:
        """What the pairs use beyond the P training inputs (to be stored in every record)."""
        levels = self.positive_view_levels(L)
        return {"pairs": self.pair_mode.name, "scoring": self.scoring.name,
                "uses_grammar": self.pair_mode.uses_grammar, "positive_view_levels": levels,
                "label_information": bool(levels) and 0 in levels}

    # -- context sources (overridden by clapp-dfb / clapp-both) ------------------------
    def context_sets(self, ctx: LearningContext, l: int, info: dict) -> dict[str, list[Tensor]]:
        """Detached contexts of every target of layer l, by source name (one predictor per source, part)."""
        return {"lat": self.pair_mode.contexts(ctx.layers, ctx.positive, l, info)}

    def _top_contexts(self, ctx, l, info) -> list[Tensor]:
        """Top-layer context for every target; the top layer itself uses its lateral context."""
        if l == len(ctx.layers):
            return self.pair_mode.contexts(ctx.layers, ctx.positive, l, info)
        n_parts = len(self.pair_mode.targets(ctx.layers[l - 1].detach(), info))
        return [self.pair_mode.top_context(ctx.layers, ctx.positive)] * n_parts

    # -- state -----------------------------------------------------------------------
    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu") -> SSLState:
        shapes = [tuple(int(x) for x in s) for s in layer_shapes]
        if not shapes:
            raise ConfigError(f"rule {self.name!r} needs at least one hidden layer")
        L = len(shapes)
        if self.pair_mode.needs_second_view:
            self.positive_view_levels(L)  # validates resample_level against L
        infos = [self.pair_mode.layer_info(shapes, l, generator, self.options) for l in range(1, L + 1)]
        dummy = [torch.zeros(2, H, P, dtype=dtype) for H, P in shapes]
        ctx = LearningContext(layers=dummy, positive=dummy)
        predictors = []
        for l in range(1, L + 1):
            layer = {}
            for key, _, t, c in self._terms(ctx, infos[l - 1], l):
                t_s, c_s = self.scoring.sites(t, c)
                D, Dc = t_s.shape[1], c_s.shape[1]
                B = torch.randn(D, Dc, generator=generator, dtype=dtype) / math.sqrt(Dc)
                layer[key] = B.to(device)
            predictors.append(layer)
        return SSLState(shapes, infos, predictors)

    # -- the algebra -----------------------------------------------------------------
    def _terms(self, ctx: LearningContext, info: dict, l: int):
        """(predictor key, part index, target [B, D, N] with grad, detached context) for layer l."""
        targets = self.pair_mode.targets(ctx.layers[l - 1], info)
        for source, contexts in self.context_sets(ctx, l, info).items():
            for k, (t, c) in enumerate(zip(targets, contexts)):
                yield f"{source}{k}", k, t, c

    def _check(self, ctx: LearningContext, state: SSLState) -> None:
        shapes = state.layer_shapes
        if len(ctx.layers) != len(shapes):
            raise ConfigError(f"rule {self.name!r}: state is for {len(shapes)} layers, context has {len(ctx.layers)}")
        for l, (h, (H, P)) in enumerate(zip(ctx.layers, shapes), 1):
            if h.dim() != 3 or tuple(h.shape[1:]) != (H, P):
                raise ConfigError(f"rule {self.name!r}: layer {l} activity has shape {tuple(h.shape)}, "
                                  f"expected [B, {H}, {P}]")
            if h.shape[0] < 2:
                raise ConfigError(f"rule {self.name!r} needs a batch of >= 2 samples (negatives / batch statistics)")

    def _n_parts(self, ctx, state, l) -> int:
        return len(self.pair_mode.targets(ctx.layers[l - 1].detach(), state.pairs[l - 1]))

    def local_losses(self, ctx: LearningContext, state: SSLState) -> list[Tensor]:
        self._check(ctx, state)
        losses = []
        for l in range(1, len(ctx.layers) + 1):
            total = 0.0
            n_parts = self._n_parts(ctx, state, l)
            for key, _, t, c in self._terms(ctx, state.pairs[l - 1], l):
                t_s, c_s = self.scoring.sites(t, c)
                total = total + self.objective.loss(t_s, c_s, state.predictors[l - 1][key]) / n_parts
            losses.append(total)
        return losses

    def _explicit(self, ctx: LearningContext, state: SSLState, l: int) -> tuple[Tensor, dict[str, Tensor]]:
        """(L^l, {key: d ell^l / d B}) by the formulas of the objective."""
        info = state.pairs[l - 1]
        h = ctx.layers[l - 1].detach()
        detached = LearningContext(layers=[x.detach() for x in ctx.layers],
                                   positive=None if ctx.positive is None else [x.detach() for x in ctx.positive])
        n_parts = self._n_parts(ctx, state, l)
        part_grads: list[Tensor | None] = [None] * n_parts
        d_B = {}
        for key, k, t, c in self._terms(detached, info, l):
            t_s, c_s = self.scoring.sites(t, c)
            d_ts, d_B[key] = self.objective.grads(t_s, c_s, state.predictors[l - 1][key])
            d_t = self.scoring.adjoint(d_ts, t.shape) / n_parts
            d_B[key] = d_B[key] / n_parts
            part_grads[k] = d_t if part_grads[k] is None else part_grads[k] + d_t
        return self.pair_mode.assemble(part_grads, info, h.shape), d_B

    def learning_signals(self, ctx: LearningContext, state: SSLState) -> list[Tensor]:
        self._check(ctx, state)
        with torch.no_grad():
            return [self._explicit(ctx, state, l)[0] for l in range(1, len(ctx.layers) + 1)]

    def update_state(self, ctx: LearningContext, state: SSLState, lr: float) -> SSLState:
        """Predictor learning: B <- B - lr (d ell / d B + decay B) (for CLAPP the gated Hebbian t c^T)."""
        self._check(ctx, state)
        decay = self.options["predictor_decay"]
        new = []
        with torch.no_grad():
            for l in range(1, len(ctx.layers) + 1):
                _, d_B = self._explicit(ctx, state, l)
                old = state.predictors[l - 1]
                new.append({key: B - lr * (d_B[key] + decay * B) for key, B in old.items()})
        return state._replace(predictors=new)


class _TopContext:
    """Mixin: context from the top layer (DFB) instead of the same layer."""

    def context_sets(self, ctx, l, info):
        return {"fb": self._top_contexts(ctx, l, info)}


class _BothContexts:
    """Mixin: same-layer and top-layer contexts, each with its own predictor; losses summed."""

    def context_sets(self, ctx, l, info):
        return {"lat": self.pair_mode.contexts(ctx.layers, ctx.positive, l, info),
                "fb": self._top_contexts(ctx, l, info)}


@register
class CLAPP(LayerwiseSSLRule):
    name = "clapp"
    summary = "CLAPP hinge, same-layer context, trainable predictor; pairs=sibling|mask|resample"
    # (8,4,8,2,3), P = 4x, H = 128, 20 epochs, readout=all, 2 seeds: lr 4 -> test 0.628, lr 0.05 ~ random-features
    # 0.81 (docs/results_ssl_research.md)
    default_lr = 4.0
    objective_class = HingeObjective
    dendritic_signal = True  # L = gamma B c: the context's dendritic prediction (clapp-dfb, clapp-both inherit)

    def broadcast_factors(self, ctx: LearningContext, state: SSLState, l: int) -> list[tuple[str, Tensor, Tensor,
                                                                                            Tensor, Tensor]]:
        """Per term (key, gamma+, gamma-, B c+, B c-) at the scored sites of layer l (for tests/analysis)."""
        info = state.pairs[l - 1]
        out = []
        with torch.no_grad():
            for key, _, t, c in self._terms(ctx, info, l):
                t_s, c_s = self.scoring.sites(t.detach(), c)
                out.append((key, *self.objective.factors(t_s, c_s, state.predictors[l - 1][key])))
        return out


@register
class CLAPPDFB(_TopContext, CLAPP):
    name = "clapp-dfb"
    summary = "CLAPP hinge with the context from the top layer (direct feedback of the top code)"
    default_lr = 0.05  # not re-measured at larger lr (docs/results_ssl_research.md)


@register
class CLAPPBoth(_BothContexts, CLAPP):
    name = "clapp-both"
    summary = "CLAPP hinge, same-layer + top-layer contexts summed (CLAPP++both)"
    default_lr = 0.05  # not re-measured at larger lr (docs/results_ssl_research.md)


@register
class LayerInfoNCE(LayerwiseSSLRule):
    name = "infonce"
    summary = "layer-wise InfoNCE, cosine(t, B c) / temperature, batch negatives"
    # (8,4,8,2,3), P = 4x, H = 128, 20 epochs, readout=all, 2 seeds: lr 16 -> test 0.587 (best local SSL rule found;
    # random-features 0.813, bp 0.0005); lr 0.05 ~ random-features (docs/results_ssl_research.md)
    default_lr = 16.0
    objective_class = InfoNCEObjective


@register
class LayerVICReg(LayerwiseSSLRule):
    name = "vicreg"
    summary = "layer-wise VICReg/LPL-like: invariance to B c + variance + decorrelation"
    objective_class = VICRegObjective


__all__ = ["CLAPP", "CLAPPBoth", "CLAPPDFB", "COMMON_OPTIONS", "HingeObjective", "InfoNCEObjective",
           "LayerInfoNCE", "LayerVICReg", "LayerwiseSSLRule", "PAIR_MODES", "SCORINGS", "SSLState", "VICRegObjective"]
