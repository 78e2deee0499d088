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
from typing import Any, ClassVar, NamedTuple, Protocol, Sequence

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
                     active: Sequence[Tensor | float] | None = None) -> Update:
    """The rule's signals on ``ctx``, ``grad W^l = c^l contract(L^l, e^l) / sqrt(K_l)`` and the rule's state
    after :meth:`~spiking_rhm.rules.base.Rule.update_state` with learning rate ``lr``."""
    signals = rule.learning_signals(ctx, state)
    new_state = rule.update_state(ctx, state, lr)
    return Update(list(signals), combine(signals, eligibilities, fan_in, shared, scale, active), new_state)


__all__ = ["ELIGIBILITY_SCALES", "NON_LOCAL_FIELDS", "Eligibility", "EligibilityScale", "ExpectedScale", "RateEligibility",
           "RawScale", "Update", "active_fraction", "combine", "eligibility_scale", "gradient_factor",
           "learning_context", "non_local_needs", "weight_gradients"]
