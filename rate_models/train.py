r"""The rate back end: one training run of any registered rule on the RHM.

Per step (batch ``x``, labels ``y``)::

    y_hat, activity = forward(params, x, cut=True)     # graph cut at every layer boundary
    ctx    = LearningContext(h^l, a^l, y_hat, y*, [bp signals, positive views, ...as the rule needs])
    grad W^l = sum_{b,p} L^l rho'(a^l) x^l / sqrt(K_l)      # spiking_rhm.plasticity.weight_gradients
    grad beta = autograd of CE(readout(features.detach()), y)  # the readout's delta rule
    SGD(momentum) step, cosine schedule;  rule state <- rule.update_state(ctx, state, lr)

:class:`RateBackend` presents batches; the loop (epochs, schedule, SGD, early stop, alignment,
scores, record) is :func:`spiking_rhm.training.train`, the same as the Norse back end's.

The update of ``W^l`` is the plasticity core's ``L x e`` with the rate eligibility
``e = rho'(a) x`` (``tests/rules`` check it against autograd of the rules' local losses);
branch rules use :func:`spiking_rhm.rules.branch.branch_step`.  Nothing here depends on
which rule runs: a rule says which optional context fields it ``needs``, whether its
hidden layers see labels (``supervised``), which second views it wants
(``positive_view_levels``) and whether its learning rate scales with the width.

Back-end options (valid for every rule, given with the rule options):
``readout`` = ``top`` (default) | ``all`` (concatenated position-averaged activities of all
hidden layers; unsupervised rules only), ``readout_lr`` (base lr of the readout; default:
the rule's lr for width-scaled rules, else 1.0; always multiplied by the readout's fan-in,
mean-field convention), ``online_readout`` = ``joint`` | ``frozen`` (default: joint for
supervised rules, frozen for unsupervised ones; below).

Evaluation: every record holds both scorings.  ``metrics.online_readout``: the rule's own local
readout -- for supervised rules the readout trained with the layers; for unsupervised rules (the
self-supervised family and the ``random-features`` control) by default (``online_readout =
frozen``) a delta rule on the centred frozen features with a bias, trained after the layers
(:func:`spiking_rhm.metrics.fit_delta_readout`; ``online_readout = joint`` keeps the readout
trained alongside on uncentred features).  ``metrics.probe``: a linear probe trained to
convergence (L-BFGS) on the frozen features.  The record's ``test_error`` is the online readout's
for supervised rules and the probe's for unsupervised ones (``metrics.evaluation``).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from rate_models.networks import (
    Activity,
    NetParams,
    Workspace,
    batched_forward,
    batched_gradients,
    bp_signals,
    branch_inputs,
    explicit_bias_update,
    feedback_vjp,
    forward,
    init_params,
    layer_vjp,
    relu_derivative,
    spec_from_config,
)
from spiking_rhm import training
from spiking_rhm.checkpoint import check_checkpoint_path
from spiking_rhm.device import resolve_device
from spiking_rhm.metrics import fit_linear_probe, probe_scores
from spiking_rhm.errors import ConfigError
from spiking_rhm.rhm import onehot
from spiking_rhm.plasticity import RateEligibility, learning_context, weight_gradients
from spiking_rhm.rules.base import LearningContext, Rule, get_rule
from spiking_rhm.rules.branch import branch_step, branch_weight_gradient
from spiking_rhm.training import Final, StepOutput, learning_rates

Tensor = torch.Tensor
BACKEND_OPTIONS: Mapping[str, Any] = {"readout": "top", "readout_lr": None, "online_readout": None}
READOUTS = ("top", "all")
N_ALIGNMENT_POINTS = 5
EVAL_CHUNK = 4096
SENSITIVITY_POINTS = 1000
PER_SAMPLE_POINTS = 32  # samples of an alignment batch whose own updates are compared with BP's


def split_options(options: Mapping[str, Any]) -> tuple[dict, dict]:
    """(rule options, back-end options) from ``cfg.rule_options``."""
    rule_opts, backend = training.split_options(options, BACKEND_OPTIONS)
    if backend["readout"] not in READOUTS:
        raise ConfigError(f"readout must be one of {', '.join(READOUTS)}, got {backend['readout']!r}")
    return rule_opts, backend


def build_rule(cfg) -> tuple[Rule, dict]:
    """The rule of ``cfg`` and the back-end options (unknown rule / option: a clear error)."""
    rule_opts, backend = split_options(cfg.rule_options)
    rule = get_rule(cfg.rule, **rule_opts)
    if backend["readout"] == "all" and rule.supervised:
        raise ConfigError(f"readout=all is for unsupervised rules; {cfg.rule!r} trains through its own top readout")
    backend["online_readout"] = training.online_readout_mode(backend["online_readout"], rule.supervised, cfg.rule)
    return rule, backend


class _Readout:
    """Linear mean-field readout ``y = f . beta / D`` on the chosen (detached) features."""

    def __init__(self, which: str, params: NetParams, generator: torch.Generator, device, dtype):
        self.which = which
        spec = params.spec
        if which == "top":
            self.beta = params.readout
        else:
            D = spec.width * spec.depth
            self.beta = torch.randn(D, spec.n_out, generator=generator, dtype=dtype).to(device).requires_grad_(True)

    @property
    def fan_in(self) -> int:
        return self.beta.shape[0]

    def logits(self, out: Tensor, activity: Activity) -> Tensor:
        if self.which == "top":
            return out
        feats = torch.cat([h.detach().mean(-1) for h in activity.post], 1)
        return feats @ self.beta / self.fan_in


class RateBackend:
    """The rate network as a :class:`spiking_rhm.training.Backend`: the whole training set as one tensor."""

    name = "rate"

    def __init__(self, cfg, checkpoint=None):
        rule, backend = build_rule(cfg)
        checkpoint = check_checkpoint_path(checkpoint)
        if checkpoint is not None and (backend["readout"] != "top" or cfg.net.bias):
            raise ConfigError("a checkpoint stores a network with readout = top and no bias (what the spiking back "
                              "ends and NIR represent); drop readout=all / net.bias or the checkpoint")
        self.cfg, self.rule, self.options, self.checkpoint = cfg, rule, backend, checkpoint
        self.label = cfg.rule
        self.supervised = rule.supervised
        self.n_alignment_points = N_ALIGNMENT_POINTS
        self.device = device = resolve_device(cfg.device)
        self.dtype = dtype = torch.float32
        self.rhm = rhm = cfg.rhm.build()
        P, P_test = cfg.sizes()
        self.spec = spec = spec_from_config(cfg)

        # -- data: the whole training set as one tensor on the device ---------------------
        train, self.test = rhm.split(P, P_test, seed=cfg.seed)
        test = self.test
        self.train, self.val = train, val = training.carve_validation(train, cfg.optim.validation)
        self.n_train = train.labels.shape[0]
        if val is not None:
            self.X_val = onehot(val.inputs, rhm.v, dtype=dtype, device=device)
            self.Y_val = torch.as_tensor(val.labels, device=device)
        self.X = onehot(train.inputs, rhm.v, dtype=dtype, device=device)
        self.Y = torch.as_tensor(train.labels, device=device)
        self.X_test = onehot(test.inputs, rhm.v, dtype=dtype, device=device)
        self.Y_test = torch.as_tensor(test.labels, device=device)

        # -- parameters, rule state ---------------------------------------------------------
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.view_rng = np.random.default_rng([cfg.seed, 2])
        self.params = params = init_params(spec, init_gen, dtype, device)
        for t in (*params.weights, *(b for b in params.biases if b is not None), params.readout):
            t.requires_grad_(True)
        taps = {"taps": spec.taps()} if rule.capabilities.branch else {}  # the rule rejects fewer than 2
        self.state = rule.init_state(spec.layer_shapes(), spec.n_out, init_gen, dtype, device, **taps)
        self.head = _Readout(backend["readout"], params, init_gen, device, dtype)
        self.levels = rule.positive_view_levels(spec.depth)
        self.distinct_levels = sorted(set(self.levels)) if self.levels else []
        # the learning signal is the loss's gradient: backprop written out (networks.batched_gradients of a stack
        # of one; alignment steps and the reference test take the generic three-factor path)
        self.fast_path = rule.gradient_signal and backend["readout"] == "top"
        self._stack_of_one: list[Tensor] | None = None
        self._work = Workspace()  # the fast path's and the test error's output buffers, reused every step

    def trainable(self):
        p = self.params
        return [*p.weights, *(b for b in p.biases if b is not None)], [self.head.beta]

    def learning_rates(self):
        base = self.cfg.optim.lr if self.cfg.optim.lr is not None else self.rule.default_lr
        return learning_rates(base, self.rule.width_scaled_lr, self.spec.width, self.options["readout_lr"],
                              self.head.fan_in)

    def _predict(self, x: Tensor) -> Tensor:
        out, act = forward(self.params, x)
        return self.head.logits(out, act)

    def _chunks(self, x: Tensor, y: Tensor, predict) -> Iterator[tuple[Tensor, Tensor]]:
        """(logits, labels) of ``x`` in chunks of ``EVAL_CHUNK`` points, without autograd."""
        with torch.no_grad():
            for i in range(0, x.shape[0], EVAL_CHUNK):
                yield predict(x[i:i + EVAL_CHUNK]), y[i:i + EVAL_CHUNK]

    def _evaluate(self, x: Tensor, y: Tensor) -> tuple[float, float]:
        if x.shape[0] == 0:
            return float("nan"), float("nan")
        wrong, loss = 0, 0.0
        for logits, labels in self._chunks(x, y, self._predict):
            wrong += int((logits.argmax(1) != labels).sum())
            loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        return wrong / x.shape[0], loss / x.shape[0]

    def _positive_views(self, idx: Tensor) -> list[Tensor]:
        sub = self.train.take(idx.cpu().numpy())
        by_level = {}
        with torch.no_grad():
            for level in self.distinct_levels:
                xv = onehot(self.rhm.resample(sub, level, self.view_rng).inputs, self.rhm.v, dtype=self.dtype,
                            device=self.device)
                by_level[level] = forward(self.params, xv)[1].post
        return [by_level[level][l] for l, level in enumerate(self.levels)]

    def step(self, idx, lr, align):
        if self.fast_path and not align:
            return self._gradient_step(idx)
        params, head, spec, rule = self.params, self.head, self.spec, self.rule
        idx_dev = idx.to(self.device)
        xb, yb = self.X[idx_dev], self.Y[idx_dev]
        out, act = forward(params, xb, cut=True)
        logits = head.logits(out, act)
        task_loss = F.cross_entropy(logits, yb)
        target = F.one_hot(yb, spec.n_out).to(self.dtype)
        ctx = learning_context(rule, act.post, logits.detach(), target, pre_activations=act.pre,
                               bp_signals=lambda: bp_signals(task_loss, act),
                               layer_vjp=lambda: partial(layer_vjp, act), weights=lambda: params.weights,
                               feedback_vjp=lambda: partial(feedback_vjp, params, act),
                               branch_inputs=lambda: branch_inputs(act, spec))
        generated = 0
        if self.levels:
            ctx.positive = self._positive_views(idx)
            generated = len(self.distinct_levels) * idx.shape[0]
        signals, grads, self.state = rate_update(rule, ctx, self.state, act, params, lr)
        cosine = per_sample = None
        if align:
            cosine, per_sample = _alignment(rule, signals, _alignment_grads(rule, signals, grads, ctx, spec), ctx,
                                            task_loss, act, params, head)
        (grad_beta,) = torch.autograd.grad(task_loss, [head.beta])  # the readout's delta rule
        biases = [-explicit_bias_update(sig, act, l) for l, (b, sig) in enumerate(zip(params.biases, signals), 1)
                  if b is not None]
        wrong = (logits.detach().argmax(1) != yb).sum()
        return StepOutput([*grads, *biases, grad_beta], task_loss.detach(), wrong, idx.shape[0], generated, cosine,
                          per_sample)

    def _gradient_step(self, idx):
        r"""Fast path of a rule whose signal is ``dLoss/dh^l``: ``grad W^l = sum L^l rho'(a^l) x / sqrt(K)`` is
        ``dLoss/dW^l`` (the readout's delta rule and the biases' ``0.1 sum L rho'(a)`` included), written out
        as backprop by :func:`rate_models.networks.batched_gradients` (one network: a stack of one), no
        autograd."""
        idx_dev = idx.to(self.device)
        grads, loss, wrong = batched_gradients(self.spec, self._stacked(), self.X[idx_dev][None],
                                               self.Y[idx_dev][None], self._work)
        return StepOutput([g[0] for g in grads], loss[0], wrong[0], idx.shape[0])

    def _stacked(self) -> list[Tensor]:
        """The trainable tensors as a stack of one run (views, made once: the updates are in place; readout =
        top), for the batched functions."""
        if self._stack_of_one is None:
            hidden, readout = self.trainable()
            self._stack_of_one = [t.detach()[None] for t in (*hidden, *readout)]
        return self._stack_of_one

    def test_error(self):
        if self.head.which != "top":
            return self._evaluate(self.X_test, self.Y_test)[0]
        n = self.Y_test.shape[0]  # readout = top: the batched forward (no activity kept, ReLU in place)
        top = lambda x: batched_forward(self.spec, self._stacked(), x[None], self._work)[0][0]  # noqa: E731
        wrong = sum(int((logits.argmax(1) != labels).sum())
                    for logits, labels in self._chunks(self.X_test, self.Y_test, top))
        return wrong / n if n else float("nan")

    def final(self, diverged):
        test_error, test_loss = self._evaluate(self.X_test, self.Y_test)
        train_error, train_loss = self._evaluate(self.X, self.Y)
        val = self.val is not None
        online_val = dict(zip(("error", "loss"), self._evaluate(self.X_val, self.Y_val))) if val else None
        probe, probe_val, self.local = None, None, None
        if not diverged:
            feats = [_features(self.params, self.head, x) for x in (self.X, self.X_test)]
            probe = fit_linear_probe(feats[0], self.Y.cpu(), feats[1], self.Y_test.cpu(), self.spec.n_out)
            val_feats = _features(self.params, self.head, self.X_val) if val else None
            if val:
                probe_val = probe_scores(probe, val_feats, self.Y_val.cpu())
            if self.options["online_readout"] == "frozen":  # the local readout, trained on the frozen layers
                self.local, scores = training.frozen_readout_scores(
                    feats[0], self.Y.cpu(), feats[1], self.Y_test.cpu(), self.spec.n_out, self.cfg.seed,
                    val_feats, self.Y_val.cpu() if val else None)
                test_error, test_loss, train_error, train_loss, local_val = scores
                online_val = local_val if val else online_val
        P_test = self.Y_test.shape[0]
        sensitivity = None if diverged else _sensitivity(self.params, self.rhm, self.test if P_test >= 2 else self.train,
                                                         self.cfg.seed, self.device)
        validation = {"online_readout": online_val, "probe": probe_val} if val else None
        return Final(test_error, test_loss, train_error, train_loss, probe, sensitivity, validation)

    def data_use(self):
        return self.rule.data_use(self.spec.depth)

    def checkpoint_weights(self):
        return self.params.weights, self.params.readout

    def record(self):
        rule = self.rule
        return {"rule": {"name": rule.name, "family": rule.family, "supervised": rule.supervised, "local": rule.local,
                         "options": dict(rule.options)},
                "readout": self.options["readout"], "device": str(self.device),
                **training.local_readout_record(getattr(self, "local", None))}


def train_rate(cfg, progress: bool = False, checkpoint=None) -> dict:
    """Train ``cfg`` with the rate back end; returns the metrics dict (never raises on divergence).

    ``checkpoint``: a path to save the trained network to (:mod:`spiking_rhm.checkpoint`; needs
    ``readout = top`` and no bias, the network the spiking back ends and NIR can represent).
    """
    start = time.perf_counter()
    backend = RateBackend(cfg, checkpoint)
    return training.train(backend, cfg, progress, backend.checkpoint, start)


def _alignment(rule: Rule, rule_signals: list[Tensor], rule_grads: list[Tensor], ctx: LearningContext,
               task_loss: Tensor, act: Activity, params: NetParams, head: _Readout
               ) -> tuple[list[float | None], list[float | None] | None]:
    r"""Per layer, the cosine between the rule's weight update and BP's on the same batch and weights, and the
    mean over the first ``PER_SAMPLE_POINTS`` samples of the cosine between each sample's own updates
    ``dW_n^l = rho'(a_n^l) L_n^l x_n^l`` (their inner products by
    :meth:`~spiking_rhm.plasticity.RateEligibility.sample_inner`, without forming them; None for branch rules,
    whose update is not of that form)."""
    weights = list(params.weights)
    signals = ctx.bp_signals if ctx.bp_signals is not None else _bp_reference(head, task_loss, act, ctx.target)
    bp_loss = sum((s.detach() * h).sum() for s, h in zip(signals, act.post))
    bp_grads = torch.autograd.grad(bp_loss, weights, retain_graph=True)
    batch = [training.cosine_similarity(r, b) for r, b in zip(rule_grads, bp_grads)]
    if rule.capabilities.branch:
        return batch, None
    n, shared = PER_SAMPLE_POINTS, params.spec.connectivity.shared
    per_sample = []
    for e, L, B in zip(_eligibilities(act), rule_signals, signals):
        if L is None:
            per_sample.append(None)
            continue
        e = RateEligibility(e.psi[:n], e.pre[:n])
        La, Lb = L[:n].detach().transpose(1, 2), B[:n].detach().transpose(1, 2)
        per_sample.append(training.mean_cosine_of_inner(e.sample_inner(La, Lb, shared), e.sample_inner(La, La, shared),
                                                        e.sample_inner(Lb, Lb, shared)))
    return batch, per_sample


def _eligibilities(act: Activity) -> list[RateEligibility]:
    """The rate eligibilities ``rho'(a^l) x^l`` of every layer (detached)."""
    return [RateEligibility(relu_derivative(a.detach()).transpose(1, 2), x.detach())
            for a, x in zip(act.pre, act.patches)]


def _alignment_grads(rule: Rule, signals: list[Tensor], grads: list[Tensor], ctx: LearningContext, spec
                     ) -> list[Tensor]:
    """The update the alignment compares with BP: branch rules' gradient before the pre-synaptic transform Q."""
    if not rule.capabilities.branch:
        return grads
    return [branch_weight_gradient(L, x, None, spec.connectivity.shared) for L, x in zip(signals, ctx.branch_inputs)]


def rate_update(rule: Rule, ctx: LearningContext, state, act: Activity, params: NetParams, lr: float
                ) -> tuple[list[Tensor], list[Tensor], object]:
    r"""``(L^l, grad W^l, new rule state)`` of one batch through the plasticity core.

    Soma rules: :func:`spiking_rhm.plasticity.weight_gradients` with the rate eligibility
    ``e = rho'(a^l) x^l`` (``grad W^l = sum L rho'(a) x / sqrt(K)``); branch rules:
    :func:`spiking_rhm.rules.branch.branch_step` on the layers' tap inputs (eligibility ``Q x``).
    """
    spec = params.spec
    shared = spec.connectivity.shared
    if rule.capabilities.branch:
        signals, grads = branch_step(rule, state, ctx, ctx.branch_inputs, [W.detach() for W in params.weights], shared)
        return signals, grads, rule.update_state(ctx, state, lr)
    traces = _eligibilities(act)
    fan_in = [x.shape[-1] for x in act.patches]
    update = weight_gradients(rule, ctx, state, traces, fan_in, shared, lr)
    return update.signals, update.grads, update.state


def _bp_reference(head: _Readout, task_loss: Tensor, act: Activity, target: Tensor) -> list[Tensor]:
    """``dLoss/dh^l`` of the readout's cross-entropy by backprop (readout=all: every layer feeds it directly)."""
    if head.which == "top":
        return bp_signals(task_loss, act)
    feats = torch.cat([h.mean(-1) for h in act.post], 1)
    loss = F.cross_entropy(feats @ head.beta.detach() / head.fan_in, target.argmax(1))
    direct = torch.autograd.grad(loss, act.post, retain_graph=True)
    signals = [direct[-1]]
    for l in range(len(act.post) - 1, 0, -1):  # signal on h^l = direct part + backprop from layer l+1
        signals.append(direct[l - 1] + layer_vjp(act, l + 1, signals[-1] * (act.pre[l] > 0)))
    return signals[::-1]


def _features(params: NetParams, head: _Readout, x: Tensor) -> Tensor:
    """The readout's features (position-averaged top layer, or all layers for readout=all), on the CPU."""
    with torch.no_grad():
        parts = []
        for i in range(0, x.shape[0], EVAL_CHUNK):
            post = forward(params, x[i:i + EVAL_CHUNK])[1].post
            layers = post[-1:] if head.which == "top" else post
            parts.append(torch.cat([h.mean(-1) for h in layers], 1).cpu())
        return torch.cat(parts) if parts else torch.zeros(0, head.fan_in)


def _sensitivity(params: NetParams, rhm, sample, seed: int, device) -> dict | None:
    """Synonymic sensitivity of every hidden layer (``spiking_rhm.metrics``) on up to 1000 points."""
    try:
        from spiking_rhm.metrics import synonymic_sensitivity
    except ImportError:  # HOOK: metrics module not available in this checkout
        return None
    n = min(SENSITIVITY_POINTS, sample.labels.shape[0])
    sub = sample.take(np.arange(n))

    def layer_fn(inputs: np.ndarray):
        with torch.no_grad():
            x = onehot(inputs, rhm.v, dtype=torch.float32, device=device)
            return [h.reshape(h.shape[0], -1).cpu().numpy() for h in forward(params, x)[1].post]

    return synonymic_sensitivity(layer_fn, rhm, sub, np.random.default_rng([seed, 3]))


__all__ = ["BACKEND_OPTIONS", "READOUTS", "build_rule", "resolve_device", "split_options", "train_rate"]
