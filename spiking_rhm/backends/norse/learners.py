r"""How the Norse back end turns a presented batch into weight gradients.

* :class:`ThreeFactorLearner` -- every registered rule (``spiking_rhm.rules``)::

      present x for T steps (plastic: eligibility e accumulates online)
      [pairs: delay steps without input, then the positive view R_l(x) for T steps; e only decays]
      h^l = rates, y = readout  ->  LearningContext  ->  L^l = rule.learning_signals(ctx)
      grad W^l = c^l sum_{b, p} L^l_bjp e_bpjk / sqrt(K_l)    (SGD: W <- W - eta grad = W - eta c L e)

  Branch-local rules (``rule.capabilities.branch``, :mod:`spiking_rhm.rules.branch`): the
  signal lives on the tap branches ``z^l_k = W^l_k x^l_k / sqrt(K_l)`` and the eligibility is the
  pre-synaptic factor alone, the window's normalised pre-synaptic spike count ``x^l`` (the integral
  of the pre trace), optionally through the rule's transform ``Q^l_k``:
  ``grad W^l_(k) = sum_{b,p} L^l_bjkp (Q^l_k x^l_bkp) / sqrt(K_l)``.

  ``c^l`` (``eligibility_scale``): ``expected`` (default) ``= f^l_active / ebar^l`` makes the
  trace's population mean equal the rate eligibility's (:mod:`.traces`), so the rate back end's
  learning rates carry over; ``none``: ``c = 1``.

  The learning signal is delivered once, at the end of the sequence; the eligibility of the
  first view has decayed by ``exp(-(delay + T) dt / tau_elig)`` by then.  When the rule asks
  for positive views at several resampling levels (one per layer), each level is a separate
  continuation of the same network state after the delay (a batch of branches).
  ``plasticity = "online"`` (:meth:`ThreeFactorLearner._stream`): the rule's signal is formed every
  ``update_every`` = k steps from the network's running state (rates of the steps so far, the running
  readout), delivered ``modulator_delay`` = d steps later, and multiplied with the eligibility *then*
  (``e(s + d)``: the trace bridges the delay; after the window the network runs silent, non-plastic
  steps until the last signal has arrived)::

      g(s) = (1 / n_u) c^l(s + d) contract(L^l(s), e^l(s + d)) / sqrt(K_l),     n_u = ceil(T / k)
      W <- W - eta v,   v <- mu v + g(s) + lambda W                      (at step s + d, inside the window)

  ``1 / n_u`` makes the window's updates sum to one window update, so learning rates carry over; the
  momentum ``mu`` and weight decay ``lambda`` are ``cfg.optim``'s, so with ``k >= T`` and ``d = 0`` the
  online form is the window form exactly (tested).  The readout still learns once per window.
* :class:`EpropLearner` -- rule ``eprop`` (Bellec et al. 2020, :mod:`spiking_rhm.rules.eprop`): the same
  stream with a learning signal at every k-th step from a leaky readout, summed over the window
  (``plasticity = "window"``) or applied as it arrives (``"online"``).
* :class:`BPTTLearner` -- rule ``bp``: surrogate-gradient backprop through time of the
  readout cross-entropy (Norse ``method="super"``), the non-local reference.

Fixed-point-aware training (``weight_bits``, :meth:`Learner.forward_weights`): every learner runs the
network with its hidden weights quantised, ``W_q = Q_b(W)`` (:mod:`spiking_rhm.quantisation`), so the spikes,
eligibilities, signals and BPTT gradients are those of ``W_q``; the update is applied to the float master
weights ``W`` (straight-through: ``dW_q / dW = 1``).  Online plasticity re-quantises after every in-window update.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import torch

from spiking_rhm.backends.norse.network import (
    NetworkSpec,
    NorseParameters,
    Recorder,
    Weights,
    initial_state,
    network_step,
    rates,
    readout,
    readout_gradient,
    run_window,
    tap_inputs,
)
from spiking_rhm.backends.norse.traces import EligibilityParameters, make_eligibility
from spiking_rhm.errors import ConfigError
from spiking_rhm.plasticity import (
    OnlineUpdates,
    active_fraction,
    eligibility_scale,
    learning_context,
    non_local_needs,
    sgd_step,
    weight_gradients,
)
from spiking_rhm.quantisation import check_weight_bits, quantise_weight
from spiking_rhm.rules.base import LearningContext, Rule, get_rule
from spiking_rhm.rules.branch import branch_step

Tensor = torch.Tensor


class PresentedBatch(NamedTuple):
    spikes: Tensor  # [T, N, C, d] anchor view
    target: Tensor  # [N, n_out] one-hot
    views: dict[int, Tensor] | None = None  # resampling level -> spikes of the positive view
    generator: torch.Generator | None = None  # draws the dithered start potentials (spiking.v_init = uniform)


class StepResult(NamedTuple):
    grads: list[Tensor]  # per hidden layer, shape of W^l
    grad_readout: Tensor
    logits: Tensor
    layers: list[Tensor]  # h^l [N, H, P] of the anchor view
    signals: list[Tensor] | None  # L^l [N, H, P] (None for BPTT)
    loss: float  # readout cross-entropy
    context: LearningContext | None = None  # what the rule saw (None for BPTT)
    applied: bool = False  # True: ``grads`` were already applied to the hidden weights within the window


class Learner:
    """Base: ``step(weights, batch, lr) -> StepResult``; the optimiser applies the gradients."""

    rules: ClassVar[tuple[str, ...] | None] = None  # rule names handled; None: any registered rule
    rule: Rule  # the registered rule the learner runs (its capabilities, lr conventions, record fields)

    def __init__(self, rule_name: str, options: dict[str, Any], spec: NetworkSpec, params: NorseParameters,
                 generator: torch.Generator, delay: int = 0, eligibility: str = "factored",
                 scale: str = "expected", dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu", plasticity: str = "window", update_every: int = 1,
                 modulator_delay: int = 0, momentum: float = 0.0, weight_decay: float = 0.0,
                 weight_bits: int | None = None):
        self.rule_name, self.spec, self.params = rule_name, spec, params
        self.weight_bits = check_weight_bits(weight_bits)
        self.delay, self.eligibility, self.dtype, self.device = int(delay), eligibility, dtype, device
        eligibility_scale(scale)  # an unknown name: a clear error now
        self.scale = scale
        if self.delay < 0:
            raise ConfigError(f"spiking.delay must be >= 0 steps, got {delay}")
        if plasticity not in ("window", "online"):
            raise ConfigError(f"unknown spiking.plasticity {plasticity!r}; valid: window, online")
        if int(update_every) < 1 or int(modulator_delay) < 0:
            raise ConfigError(f"spiking.update_every must be >= 1 and spiking.modulator_delay >= 0, got "
                              f"{update_every}, {modulator_delay}")
        self.plasticity, self.update_every, self.modulator_delay = plasticity, int(update_every), int(modulator_delay)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.velocity: list[Tensor] | None = None  # online plasticity: the momentum buffers of the hidden weights

    @classmethod
    def accepts(cls, rule_name: str) -> bool:
        return cls.rules is None or rule_name in cls.rules

    default_lr: float = 0.1

    def positive_view_levels(self) -> list[int] | None:
        return None

    def data_use(self) -> dict:
        return {}

    def step(self, weights: Weights, batch: PresentedBatch, lr: float, recorder: Recorder | None = None
             ) -> StepResult:
        raise NotImplementedError

    def forward_weights(self, weights: Weights) -> Weights:
        """The weights the network runs with: ``weights`` themselves, or with ``weight_bits`` their hidden
        weights quantised (:func:`spiking_rhm.quantisation.quantise_weight`, one scale per layer).  The
        update computed with them is returned for (or applied to) ``weights``, the float master weights:
        a straight-through estimator."""
        if self.weight_bits is None:
            return weights
        return Weights([quantise_weight(w, self.weight_bits) for w in weights.hidden], weights.readout)


def _cross_entropy(logits: Tensor, target: Tensor) -> float:
    return float(-(torch.log_softmax(logits, -1) * target).sum(-1).mean())


class ThreeFactorLearner(Learner):
    """``grad W = sum L e``: the rule's learning signal times the back end's eligibility trace."""

    rules = None

    def __init__(self, rule_name, options, spec, params, generator, **kw):
        super().__init__(rule_name, options, spec, params, generator, **kw)
        self.rule = get_rule(rule_name, **options)
        missing = non_local_needs(self.rule)
        if missing:
            raise ConfigError(f"rule {rule_name!r} needs {', '.join(missing)} (backprop through the layers), which "
                              f"the norse back end does not compute; use rule 'bp' (surrogate-gradient BPTT)")
        self.default_lr = self.rule.default_lr
        self.branch = self.rule.capabilities.branch
        taps = {"taps": spec.patch or 1} if self.branch else {}  # dense: one patch; the rule rejects < 2
        self.rule_state = self.rule.init_state(spec.layer_shapes(), spec.n_out, generator, dtype=self.dtype,
                                               device=self.device, **taps)
        if self.streams and (self.branch or self.rule.capabilities.second_view):
            raise ConfigError(f"rule {rule_name!r} has no online form here (spiking.plasticity = online takes rules "
                              f"with one view and a signal on the soma; branch rules and pair sequences learn per "
                              f"window)")

    @property
    def streams(self) -> bool:
        """True when the window is run step by step with learning signals inside it (:meth:`_stream`)."""
        return self.plasticity == "online"

    def trace_parameters(self) -> EligibilityParameters:
        """The eligibility filter of the streamed form (``tau_elig``)."""
        return self.params.elig

    def positive_view_levels(self):
        return self.rule.positive_view_levels(self.spec.depth)

    def data_use(self):
        return self.rule.data_use(self.spec.depth)

    def step(self, weights, batch, lr, recorder=None):
        if self.streams:
            return self._stream(weights, batch, lr, recorder)
        weights = self.forward_weights(weights)  # the grads below are returned for the master weights
        spec, p = self.spec, self.params
        N = batch.spikes.shape[1]
        traces = [make_eligibility(self.eligibility, p.elig, p.dt, p.pre) for _ in range(spec.depth)]
        state = initial_state(spec, p, N, batch.spikes.dtype, batch.spikes.device, batch.generator)
        with torch.no_grad():
            first, state = run_window(batch.spikes, weights.hidden, spec, p, state, traces, True, recorder)
            layers = [rates(c, first.steps, p) for c in first.counts]
            hbar, logits = readout(first.readout_counts, first.steps, weights.readout, p)
            positive = self._positive_views(weights, batch, state, traces) if batch.views else None
            if self.positive_view_levels() is not None and positive is None:
                raise ConfigError(f"rule {self.rule_name!r} needs positive views; the batch has none")
            ctx = learning_context(self.rule, layers, logits, batch.target,
                                   pre_activations=[(v - p.psi.v_th).transpose(1, 2) for v in first.v_mean],
                                   positive=positive, weights=list(weights.hidden))
            if self.branch:
                return self._branch_step(weights, batch, ctx, first, lr, hbar, logits)
            update = weight_gradients(self.rule, ctx, self.rule_state, traces, spec.fan_in,
                                      spec.connectivity.shared, lr, self.scale,
                                      [active_fraction(c) for c in first.counts])
            self.rule_state, signals, grads = update.state, update.signals, update.grads
            grad_out = readout_gradient(hbar, logits, batch.target)
        return StepResult(grads, grad_out, logits, layers, signals, _cross_entropy(logits, batch.target), ctx)

    # ----------------------------------------------------------------- streamed (online) form
    def _stream(self, weights, batch, lr, recorder=None) -> StepResult:
        """Step by step: a learning signal every ``update_every`` steps from the running state, delivered
        ``modulator_delay`` steps later and multiplied with the eligibility then (module docstring;
        :class:`spiking_rhm.plasticity.OnlineUpdates`)."""
        spec, p = self.spec, self.params
        T, N = batch.spikes.shape[:2]
        apply = self.plasticity == "online"
        traces = [make_eligibility("synapse", self.trace_parameters(), p.dt, p.pre) for _ in range(spec.depth)]
        state = initial_state(spec, p, N, batch.spikes.dtype, batch.spikes.device, batch.generator)
        lif, pre = list(state.lif), list(state.pre)  # advanced in place by network_step
        counts = [torch.zeros_like(s.v) for s in lif]  # running sums, accumulated in place
        v_sum = [torch.zeros_like(s.v) for s in lif]
        zero_in = batch.spikes.new_zeros(batch.spikes.shape[1:])
        online = OnlineUpdates(self.rule, T, self.update_every, self.modulator_delay, spec.fan_in,
                               spec.connectivity.shared, self.scale)
        total = [torch.zeros_like(w) for w in weights.hidden]
        master, weights = weights, self.forward_weights(weights)
        signals = ctx = logits = hbar = None
        u = None
        with torch.no_grad():
            t = 0
            while t < T or online.waiting:
                x = batch.spikes[t] if t < T else zero_in
                zs, vs = network_step(x, weights.hidden, spec, p, lif, pre, traces, t < T, recorder, t)
                if t < T:
                    for c, z, a, v in zip(counts, zs, v_sum, vs):
                        c.add_(z)
                        a.add_(v)
                    top, u = self.stream_readout(zs[-1], counts[-1], u, t + 1)
                    if t in online.points:
                        hbar, logits, ctx = running_context(self.rule, counts, top, t + 1, weights, batch.target, p,
                                                            v_sum)
                        signals, self.rule_state = online.signal(t, ctx, self.rule_state, lr,
                                                                 [active_fraction(c) for c in counts])
                for g in online.deliver(t, traces):
                    for a, gi in zip(total, g):
                        a.add_(gi)
                    if apply:
                        self._apply(master, g, lr)
                        weights = self.forward_weights(master)
                t += 1
            grad_out = readout_gradient(hbar, logits, batch.target)
        layers = list(ctx.layers)
        return StepResult(total, grad_out, logits, layers, signals, _cross_entropy(logits, batch.target), ctx,
                          applied=apply)

    def stream_readout(self, z_top: Tensor, counts_top: Tensor, u: Tensor | None, steps: int
                       ) -> tuple[Tensor, Tensor | None]:
        """The readout's input after ``steps`` steps in count units ``[N, P, H]`` and the leaky state: the
        counts so far (``spiking.readout = counts``) or the membrane readout ``u <- k u + (1 - k) z`` read as
        ``steps u / (1 - k^steps)`` (``membrane``, as :func:`~.network.run_window` reads it at the end)."""
        if self.params.readout != "membrane":
            return counts_top, None
        return leaky_readout(z_top, u, steps, self.params.dt, self.params.tau_readout_inv)

    def _apply(self, weights: Weights, grads: list[Tensor], lr: float) -> None:
        """``v <- mu v + g + lambda W; W <- W - eta v`` in place (:func:`spiking_rhm.plasticity.sgd_step`)."""
        self.velocity = sgd_step(weights.hidden, grads, lr, self.momentum, self.weight_decay, self.velocity)

    def _branch_step(self, weights, batch, ctx, first, lr, hbar, logits) -> StepResult:
        x = tap_inputs(batch.spikes, ctx.layers, first.steps, self.params, self.spec.patch)
        signals, grads = branch_step(self.rule, self.rule_state, ctx, x, weights.hidden,
                                     self.spec.connectivity.shared)
        self.rule_state = self.rule.update_state(ctx, self.rule_state, lr)
        grad_out = readout_gradient(hbar, logits, batch.target)
        return StepResult(grads, grad_out, logits, list(ctx.layers), signals, _cross_entropy(logits, batch.target),
                          ctx)

    def _positive_views(self, weights, batch, state, traces) -> list[Tensor]:
        spec, p = self.spec, self.params
        T = batch.spikes.shape[0]
        if self.delay:
            silence = batch.spikes.new_zeros(self.delay, *batch.spikes.shape[1:])
            _, state = run_window(silence, weights.hidden, spec, p, state, traces, plastic=False)
        levels = self.positive_view_levels()
        second = {}
        for level in sorted(set(levels)):
            if level not in batch.views:
                raise ConfigError(f"positive view at resampling level {level} missing from the batch")
            res, _ = run_window(batch.views[level], weights.hidden, spec, p, state)
            second[level] = res
        for tr in traces:
            tr.decay(T)  # the second view is not plastic: e only decays while it is shown
        return [rates(second[level].counts[l], second[level].steps, p) for l, level in enumerate(levels)]


def running_context(rule: Rule, counts: list[Tensor], top: Tensor, steps: int, weights: Weights, target: Tensor,
                    params: NorseParameters, v_sum: list[Tensor] | None = None
                    ) -> tuple[Tensor, Tensor, LearningContext]:
    """``(hbar, logits, ctx)`` of the running state after ``steps`` steps of a window, for an online signal:
    the rates ``count / (steps rho_h)`` of the spike counts so far, the readout of ``top`` (count units) and
    the mean pre-reset potentials ``v_sum / steps`` (when given) -- what every back end's online form hands
    the rule (:class:`spiking_rhm.plasticity.OnlineUpdates`)."""
    layers = [rates(c, steps, params) for c in counts]
    hbar, logits = readout(top, steps, weights.readout, params)
    fields = {} if v_sum is None else {"pre_activations": [(v / steps - params.psi.v_th).transpose(1, 2)
                                                           for v in v_sum]}
    ctx = learning_context(rule, layers, logits, target, weights=list(weights.hidden), **fields)
    return hbar, logits, ctx


def leaky_readout(z: Tensor, u: Tensor | None, steps: int, dt: float, tau_inv: float) -> tuple[Tensor, Tensor]:
    """``u <- k u + (1 - k) z`` (``k = exp(-dt / tau)``, from ``u = 0``) and its count-equivalent
    ``steps u / (1 - k^steps)`` after ``steps`` steps."""
    k = math.exp(-dt * tau_inv)
    u = (1 - k) * z if u is None else k * u + (1 - k) * z
    return u * (steps / (1 - k ** steps)), u


class EpropLearner(ThreeFactorLearner):
    """e-prop (Bellec et al. 2020) on the feed-forward LIF hierarchy (rule ``eprop``)::

        zbar_i(t) = a zbar_i(t-1) + (1 - a) z_i(t)               (the pre trace, a = exp(-dt / tau_pre))
        e_ji(t)   = psi_j(t) zbar_i(t);   ebar_ji(t) = kappa ebar_ji(t-1) + (1 - kappa) e_ji(t)
        y(t)      = leaky readout of the top layer (kappa = exp(-dt / tau_readout)), logits = hbar(t) beta / H
        L^l_j(t)  = sum_k B^l_jk (softmax(y(t)) - y*)_k / (H B)
        grad W^l  = (1 / n_u) sum_{t every k steps} c^l(t) sum_{b,p} L^l_bpj(t) ebar_bpjk(t + d) / sqrt(K_l)

    ``kappa`` filters both the readout and the eligibility, as in the paper (``spiking.tau_elig`` is not
    used).  ``plasticity = "window"`` sums the window's terms into one update (the paper's protocol);
    ``"online"`` applies each as it arrives.
    """

    rules = ("eprop",)

    @property
    def streams(self) -> bool:
        return True

    def trace_parameters(self) -> EligibilityParameters:
        return EligibilityParameters(self.params.tau_readout_inv)

    def stream_readout(self, z_top, counts_top, u, steps):
        return leaky_readout(z_top, u, steps, self.params.dt, self.params.tau_readout_inv)


class BPTTLearner(Learner):
    """Surrogate-gradient BPTT of the readout cross-entropy through all T steps (rule ``bp``)."""

    rules = ("bp",)

    def __init__(self, rule_name, options, spec, params, generator, **kw):
        super().__init__(rule_name, options, spec, params, generator, **kw)
        if options:
            raise ConfigError(f"rule 'bp' on the norse back end takes no options, got {sorted(options)}")
        if self.plasticity != "window":
            raise ConfigError("rule 'bp' (surrogate-gradient BPTT) learns once per window: spiking.plasticity "
                              "must be 'window'")
        self.rule = get_rule("bp")  # what it computes (its signals are BPTT's here); its lr conventions
        self.default_lr = self.rule.default_lr

    def step(self, weights, batch, lr, recorder=None):
        spec, p = self.spec, self.params
        # with weight_bits: the gradient at the quantised weights, for the master weights (straight-through)
        params = [w.detach().requires_grad_(True) for w in self.forward_weights(weights).parameters()]
        state = initial_state(spec, p, batch.spikes.shape[1], batch.spikes.dtype, batch.spikes.device,
                              batch.generator)
        with torch.enable_grad():
            res, _ = run_window(batch.spikes, params[:-1], spec, p, state, None, True, recorder)
            _, logits = readout(res.readout_counts, res.steps, params[-1], p)
            loss = -(torch.log_softmax(logits, -1) * batch.target).sum(-1).mean()
            grads = torch.autograd.grad(loss, params)
        layers = [rates(c.detach(), res.steps, p) for c in res.counts]
        return StepResult(list(grads[:-1]), grads[-1], logits.detach(), layers, None, float(loss.detach()))


LEARNERS: tuple[type[Learner], ...] = (BPTTLearner, EpropLearner, ThreeFactorLearner)


def make_learner(rule_name: str, options: dict[str, Any], spec: NetworkSpec, params: NorseParameters,
                 generator: torch.Generator, **kw) -> Learner:
    """The first learner of :data:`LEARNERS` that accepts ``rule_name``."""
    for cls in LEARNERS:
        if cls.accepts(rule_name):
            return cls(rule_name, dict(options), spec, params, generator, **kw)
    raise ConfigError(f"no learner for rule {rule_name!r}")  # pragma: no cover
