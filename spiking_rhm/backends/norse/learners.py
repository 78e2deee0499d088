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
* :class:`BPTTLearner` -- rule ``bp``: surrogate-gradient backprop through time of the
  readout cross-entropy (Norse ``method="super"``), the non-local reference.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch

from spiking_rhm.backends.norse.network import (
    NetworkSpec,
    NorseParameters,
    Recorder,
    Weights,
    initial_state,
    rates,
    readout,
    readout_gradient,
    run_window,
    tap_inputs,
)
from spiking_rhm.backends.norse.traces import make_eligibility
from spiking_rhm.errors import ConfigError
from spiking_rhm.plasticity import (
    active_fraction,
    eligibility_scale,
    learning_context,
    non_local_needs,
    weight_gradients,
)
from spiking_rhm.rules.base import LearningContext, Rule, get_rule
from spiking_rhm.rules.branch import branch_step

Tensor = torch.Tensor


class PresentedBatch(NamedTuple):
    spikes: Tensor  # [T, N, C, d] anchor view
    target: Tensor  # [N, n_out] one-hot
    views: dict[int, Tensor] | None = None  # resampling level -> spikes of the positive view


class StepResult(NamedTuple):
    grads: list[Tensor]  # per hidden layer, shape of W^l
    grad_readout: Tensor
    logits: Tensor
    layers: list[Tensor]  # h^l [N, H, P] of the anchor view
    signals: list[Tensor] | None  # L^l [N, H, P] (None for BPTT)
    loss: float  # readout cross-entropy
    context: LearningContext | None = None  # what the rule saw (None for BPTT)


class Learner:
    """Base: ``step(weights, batch, lr) -> StepResult``; the optimiser applies the gradients."""

    rules: ClassVar[tuple[str, ...] | None] = None  # rule names handled; None: any registered rule
    rule: Rule  # the registered rule the learner runs (its capabilities, lr conventions, record fields)

    def __init__(self, rule_name: str, options: dict[str, Any], spec: NetworkSpec, params: NorseParameters,
                 generator: torch.Generator, delay: int = 0, eligibility: str = "factored",
                 scale: str = "expected", dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu"):
        self.rule_name, self.spec, self.params = rule_name, spec, params
        self.delay, self.eligibility, self.dtype, self.device = int(delay), eligibility, dtype, device
        eligibility_scale(scale)  # an unknown name: a clear error now
        self.scale = scale
        if self.delay < 0:
            raise ConfigError(f"spiking.delay must be >= 0 steps, got {delay}")

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

    def positive_view_levels(self):
        return self.rule.positive_view_levels(self.spec.depth)

    def data_use(self):
        return self.rule.data_use(self.spec.depth)

    def step(self, weights, batch, lr, recorder=None):
        spec, p = self.spec, self.params
        N = batch.spikes.shape[1]
        traces = [make_eligibility(self.eligibility, p.elig, p.dt, p.pre) for _ in range(spec.depth)]
        state = initial_state(spec, p, N, batch.spikes.dtype, batch.spikes.device)
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


class BPTTLearner(Learner):
    """Surrogate-gradient BPTT of the readout cross-entropy through all T steps (rule ``bp``)."""

    rules = ("bp",)

    def __init__(self, rule_name, options, spec, params, generator, **kw):
        super().__init__(rule_name, options, spec, params, generator, **kw)
        if options:
            raise ConfigError(f"rule 'bp' on the norse back end takes no options, got {sorted(options)}")
        self.rule = get_rule("bp")  # what it computes (its signals are BPTT's here); its lr conventions
        self.default_lr = self.rule.default_lr

    def step(self, weights, batch, lr, recorder=None):
        spec, p = self.spec, self.params
        params = [w.detach().requires_grad_(True) for w in weights.parameters()]
        state = initial_state(spec, p, batch.spikes.shape[1], batch.spikes.dtype, batch.spikes.device)
        with torch.enable_grad():
            res, _ = run_window(batch.spikes, params[:-1], spec, p, state, None, True, recorder)
            _, logits = readout(res.readout_counts, res.steps, params[-1], p)
            loss = -(torch.log_softmax(logits, -1) * batch.target).sum(-1).mean()
            grads = torch.autograd.grad(loss, params)
        layers = [rates(c.detach(), res.steps, p) for c in res.counts]
        return StepResult(list(grads[:-1]), grads[-1], logits.detach(), layers, None, float(loss.detach()))


LEARNERS: tuple[type[Learner], ...] = (BPTTLearner, ThreeFactorLearner)


def make_learner(rule_name: str, options: dict[str, Any], spec: NetworkSpec, params: NorseParameters,
                 generator: torch.Generator, **kw) -> Learner:
    """The first learner of :data:`LEARNERS` that accepts ``rule_name``."""
    for cls in LEARNERS:
        if cls.accepts(rule_name):
            return cls(rule_name, dict(options), spec, params, generator, **kw)
    raise ConfigError(f"no learner for rule {rule_name!r}")  # pragma: no cover
