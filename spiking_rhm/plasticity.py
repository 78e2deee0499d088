r"""The plasticity core of every back end: learning signal x eligibility, written once.

For hidden layer ``l`` with fan-in ``K_l``::

    grad W^l = c^l * contract(L^l, e^l) / sqrt(K_l)         (SGD: W <- W - eta grad W)
    contract(L, e) = sum_{b, p} L_bpj e_bpjk   ([H, K] shared weights; [P, H, K] untied, summed over b only)

* ``L^l`` is the rule's learning signal (:meth:`~spiking_rhm.rules.base.Rule.learning_signals`) on a
  :class:`~spiking_rhm.rules.base.LearningContext` built by :func:`learning_context`.
* ``e^l`` is the back end's eligibility, anything with ``contract(L [B, P, H], shared)`` and
  ``expected_value()`` (:class:`Eligibility`): the rate network's ``rho'(a) x``
  (:class:`RateEligibility`), the Norse traces (``backends.norse.traces``), Brian2's per-synapse
  traces (``backends.brian2.learning``); Lava's learning engine forms the same product on chip
  and takes its factor ``c^l / sqrt(K_l)`` from :func:`gradient_factor`.
* ``c^l`` is the eligibility scale (:data:`ELIGIBILITY_SCALES`): ``none`` -> 1; ``expected`` ->
  ``f_active / ebar`` (fraction of units that fired over the trace's expected value for a pre
  neuron at its nominal rate), so a spiking trace has the rate eligibility's population mean and
  the rate back end's learning rates carry over.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Callable, ClassVar, NamedTuple, Protocol, Sequence

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.rules.base import NON_LOCAL_FIELDS, LearningContext, Rule, RuleState

Tensor = torch.Tensor


class Eligibility(Protocol):
    """One layer's eligibility as the core reads it."""

    def contract(self, L: Tensor, shared: bool) -> Tensor:
        """``sum_{b[, p]} L_bpj e_bpjk`` for ``L`` ``[B, P, H]``."""

    def expected_value(self) -> Tensor | float:
        """``ebar``, the scale of ``e`` for a pre neuron at its nominal rate (used by ``expected``)."""


class RateEligibility:
    r"""The rate network's eligibility ``e_bpjk = rho'(a_bpj) x_bpk`` (``psi = rho'(a)`` ``[B, P, H]``,
    ``pre`` = the layer's input patches ``[B, P, K]``), contracted without forming ``e``."""

    def __init__(self, psi: Tensor, pre: Tensor):
        self.psi, self.pre = psi, pre

    def contract(self, L: Tensor, shared: bool) -> Tensor:
        g = L * self.psi
        if shared:
            return torch.einsum("bph,bpk->hk", g, self.pre)
        return torch.einsum("bph,bpk->phk", g, self.pre)

    def contract_samples(self, L: Tensor, shared: bool) -> Tensor:
        """Each sample's own term of :meth:`contract` (``[B, ...]``; their sum over ``b`` is ``contract``)."""
        g = L * self.psi
        if shared:
            return torch.einsum("bph,bpk->bhk", g, self.pre)
        return torch.einsum("bph,bpk->bphk", g, self.pre)

    def sample_inner(self, La: Tensor, Lb: Tensor, shared: bool) -> Tensor:
        r"""``[B]``: each sample's ``<dW_b(La), dW_b(Lb)>`` of its own terms (:meth:`contract_samples` of
        ``La`` and of ``Lb``, ``[B, P, H]`` each) without forming them, from Gram matrices of the positions
        (float64)::

            shared (sum over positions):  sum_{p,q} (g_bp . g'_bq) (x_bp . x_bq)
            untied (one update per p):    sum_p (g_bp . g'_bp) |x_bp|^2,        g = La psi, g' = Lb psi

        ``[B, P, P]`` products in place of two ``[B, H, K]`` updates: the per-sample alignment of a
        ``256 x 512`` layer costs ~0.1 ms instead of ~50 ms (32 samples)."""
        psi, x = self.psi.double(), self.pre.double()
        ga, gb = La.double() * psi, Lb.double() * psi
        if shared:
            return (ga @ gb.transpose(1, 2) * (x @ x.transpose(1, 2))).sum((1, 2))
        return ((ga * gb).sum(2) * (x * x).sum(2)).sum(1)

    def expected_value(self) -> float:
        return 1.0  # already the rate eligibility: the ``expected`` scale would be f_active


# --------------------------------------------------------------------------- scale of the update
class EligibilityScale:
    """The factor ``c^l`` of ``grad W^l = c^l contract(L, e) / sqrt(K)`` (registry below)."""

    name: ClassVar[str] = ""

    @staticmethod
    def factor(expected: Eligibility | Tensor | float, active_fraction: Tensor | float) -> Tensor | float:
        """``c`` from ``ebar`` (a number, or an eligibility's ``expected_value()``) and the active fraction."""
        raise NotImplementedError


def _expected(expected) -> Tensor | float:
    return expected.expected_value() if hasattr(expected, "expected_value") else expected


class RawScale(EligibilityScale):
    """``c = 1``: the trace as it is (3-16x smaller than the rate eligibility at T = 10)."""

    name = "none"

    @staticmethod
    def factor(expected, active_fraction):
        return 1.0


class ExpectedScale(EligibilityScale):
    """``c = f_active / ebar``: the normalised trace has the rate eligibility's population mean
    ``E[rho'(a) x] = f_active`` (fraction of units that fired) for a pre neuron at its nominal rate."""

    name = "expected"

    @staticmethod
    def factor(expected, active_fraction):
        expected = _expected(expected)
        if not math.isfinite(float(expected)):
            raise ConfigError("scale 'expected' needs a plastic window (ebar was not accumulated)")
        return active_fraction / expected if float(expected) > 0 else 0.0 * active_fraction


ELIGIBILITY_SCALES: dict[str, type[EligibilityScale]] = {c.name: c for c in (RawScale, ExpectedScale)}


def eligibility_scale(name: str) -> type[EligibilityScale]:
    if name not in ELIGIBILITY_SCALES:
        raise ConfigError(f"unknown eligibility_scale {name!r}; valid: {', '.join(ELIGIBILITY_SCALES)}")
    return ELIGIBILITY_SCALES[name]


def active_fraction(counts: Tensor) -> Tensor:
    """Fraction of units (samples x positions x neurons) that fired in the window."""
    return (counts > 0).to(counts.dtype).mean()


def gradient_factor(c: Tensor | float, fan_in: int) -> Tensor | float:
    """``c^l / sqrt(K_l)``, the factor of ``contract(L, e)`` in ``grad W^l``."""
    return c / math.sqrt(fan_in)


# --------------------------------------------------------------------------- context and gradients
def learning_context(rule: Rule, layers: Sequence[Tensor], output: Tensor | None, target: Tensor | None,
                     **fields: Any) -> LearningContext:
    """The :class:`LearningContext` a back end hands ``rule``.

    ``fields``: further context fields; a zero-argument callable is a field computed only when the rule
    ``needs`` it (e.g. ``bp_signals``); fields for branch rules (``branches``, ``branch_inputs``) only
    when the rule's signal lives on branches.
    """
    ctx = LearningContext(layers=layers, output=output, target=target)
    caps = rule.capabilities
    branch_fields = {"branches", "branch_inputs"}
    for name, value in fields.items():
        if callable(value) and not isinstance(value, Tensor):
            wanted = name in caps.needs or (name in branch_fields and caps.branch)
            if not wanted:
                continue
            value = value()
        setattr(ctx, name, value)
    return ctx


def non_local_needs(rule: Rule) -> list[str]:
    """The context fields ``rule`` needs that only backprop through the layers computes."""
    return rule.capabilities.non_local


def combine(signals: Sequence[Tensor], eligibilities: Sequence[Eligibility], fan_in: Sequence[int], shared: bool,
            scale: str = "none", active: Sequence[Tensor | float] | None = None) -> list[Tensor]:
    """``grad W^l = c^l contract(L^l, e^l) / sqrt(K_l)`` per layer (``L^l`` ``[B, H, P]``; ``active``: the
    layers' fractions of firing units, needed by the ``expected`` scale)."""
    if len(eligibilities) != len(signals):
        raise ConfigError(f"{len(eligibilities)} eligibility layers but {len(signals)} learning signals")
    how = eligibility_scale(scale)
    if active is None:
        if how is not RawScale:
            raise ConfigError(f"eligibility scale {scale!r} needs the layers' active fractions")
        active = [1.0] * len(signals)
    return [e.contract(L.transpose(1, 2), shared) * gradient_factor(how.factor(e, f), K)
            for e, L, K, f in zip(eligibilities, signals, fan_in, active)]


class Update(NamedTuple):
    signals: list[Tensor]  # L^l [B, H, P]
    grads: list[Tensor]  # grad W^l, the layout of W^l
    state: RuleState  # the rule's state after its own local learning


def weight_gradients(rule: Rule, ctx: LearningContext, state: RuleState, eligibilities: Sequence[Eligibility],
                     fan_in: Sequence[int], shared: bool, lr: float, scale: str = "none",
                     active: Sequence[Tensor | float] | None = None,
                     deliver: Callable[[list[Tensor]], list[Tensor]] | None = None) -> Update:
    """The rule's signals on ``ctx``, ``grad W^l = c^l contract(L^l, e^l) / sqrt(K_l)`` and the rule's state
    after :meth:`~spiking_rhm.rules.base.Rule.update_state` with learning rate ``lr``.

    ``deliver``: a back end that delivers the signals physically (a dendrite, docs/brian2.md "Dendritic delivery")
    maps ``L^l`` to the third factor it measures, ``L~^l`` (same layout), which then takes ``L^l``'s place."""
    signals = rule.learning_signals(ctx, state)
    if deliver is not None:
        signals = [torch.as_tensor(d, dtype=L.dtype) for d, L in zip(deliver(list(signals)), signals)]
    new_state = rule.update_state(ctx, state, lr)
    return Update(list(signals), combine(signals, eligibilities, fan_in, shared, scale, active), new_state)


# --------------------------------------------------------------------------- online plasticity
class OnlineUpdates:
    r"""Online plasticity inside a window of ``T`` steps, written once for every back end that streams it.

    A learning signal is formed at the signal points ``s`` (every ``k``-th step and the last, 0-based) from
    the network's running state, delivered ``d`` steps later and contracted with the eligibility *then*::

        g(s) = (1 / n_u) c^l(s + d) contract(L^l(s), e^l(s + d)) / sqrt(K_l),     n_u = ceil(T / k)

    (``1 / n_u``: the window's updates sum to one window update).  The back end runs its network to the
    steps of :meth:`stops`, calls :meth:`signal` at a point and :meth:`deliver` at every stop, applies the
    updates (:func:`sgd_step`) and runs on, without input and plasticity after the window, while
    :attr:`waiting`.
    """

    def __init__(self, rule: Rule, steps: int, every: int, delay: int, fan_in: Sequence[int], shared: bool,
                 scale: str = "none"):
        if int(every) < 1 or int(delay) < 0:
            raise ConfigError(f"spiking.update_every must be >= 1 and spiking.modulator_delay >= 0, got {every}, {delay}")
        self.rule, self.steps, self.every, self.delay = rule, int(steps), int(every), int(delay)
        self.fan_in, self.shared, self.scale = list(fan_in), shared, scale
        self.n_updates = math.ceil(self.steps / self.every)
        self.points = frozenset(t for t in range(self.steps) if (t + 1) % self.every == 0 or t == self.steps - 1)
        self.pending: deque = deque()

    def stops(self) -> list[int]:
        """The steps after which the back end must stop: the signal points and the deliveries."""
        return sorted(self.points | {t + self.delay for t in self.points})

    @property
    def waiting(self) -> bool:
        """True while a formed signal has not been delivered."""
        return bool(self.pending)

    def signal(self, t: int, ctx: LearningContext, state: RuleState, lr: float, active: Sequence[Tensor | float]
               ) -> tuple[list[Tensor], RuleState]:
        """At point ``t``: the rule's signals on ``ctx`` (queued for step ``t + d`` with the layers' active
        fractions ``active``) and the rule's state after its own learning with rate ``lr / n_u``."""
        signals = self.rule.learning_signals(ctx, state)
        state = self.rule.update_state(ctx, state, lr / self.n_updates)
        self.pending.append((t + self.delay, signals, list(active)))
        return signals, state

    def deliver(self, t: int, eligibilities: Sequence[Eligibility] | Any) -> list[list[Tensor]]:
        """The updates ``g`` of every signal arriving at step ``t`` with the eligibility of that step
        (``eligibilities``: a sequence, or a zero-argument callable giving it, called only when one arrives)."""
        out = []
        while self.pending and self.pending[0][0] == t:
            _, sig, active = self.pending.popleft()
            traces = eligibilities() if callable(eligibilities) else eligibilities
            g = combine(sig, traces, self.fan_in, self.shared, self.scale, active)
            out.append([gi / self.n_updates for gi in g])
        return out


def sgd_step(weights: Sequence[Tensor], grads: Sequence[Tensor], lr: float, momentum: float = 0.0,
             weight_decay: float = 0.0, velocity: list | None = None) -> list:
    """``v <- mu v + g + lambda W; W <- W - eta v`` in place (torch's SGD, first buffer = g); the velocity
    buffers (``None`` before the first step) are returned."""
    velocity = [None] * len(grads) if velocity is None else velocity
    for i, (w, g) in enumerate(zip(weights, grads)):
        if weight_decay:
            g = g + weight_decay * w
        if momentum:
            v = velocity[i]
            velocity[i] = g.clone() if v is None else v.mul_(momentum).add_(g)
            g = velocity[i]
        w.sub_(lr * g)
    return velocity


__all__ = ["ELIGIBILITY_SCALES", "NON_LOCAL_FIELDS", "Eligibility", "EligibilityScale", "ExpectedScale", "RateEligibility",
           "OnlineUpdates", "RawScale", "Update", "active_fraction", "combine", "eligibility_scale", "gradient_factor",
           "learning_context", "non_local_needs", "sgd_step", "weight_gradients"]
