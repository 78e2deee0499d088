r"""Local traces of the three-factor rule, as pure step functions ``(x, state, p, dt) -> (out, state)``.

For a synapse i -> j (one per sample b and, in a conv layer, per position p)::

    pre trace      xbar_i(t) = a xbar_i(t-1) + (1 - a) z_i(t),          a = exp(-dt / tau_pre)
    surrogate      psi_j(t)  = 1 / (1 + beta |v_j(t) - v_th|)^2          (SuperSpike, peak 1 at threshold)
    eligibility    e_ji(t)   = k e_ji(t-1) + (1 - k) g(t) psi_j(t) xbar_i(t),   k = exp(-dt / tau_elig)

``g(t)`` in {0, 1} is the *plastic* flag (1 while the sample whose update is wanted is shown;
0 during a delay and during the second view of a self-supervised pair, so that ``e`` then only
decays).  Closed forms (tested): ``xbar(t) = (1-a) sum_{t'<=t} a^{t-t'} z(t')`` and
``e(t) = (1-k) sum_{t'<=t} k^{t-t'} g(t') psi(t') xbar(t')``.

The eligibility is kept **per sample and per position** (shape ``[B, P, H, K]``): the learning
signal ``L^l_j`` of a conv layer differs between positions and samples, so summing ``e`` over
positions before the signal arrives would be exact only for a position-independent ``L``.
Weight sharing sums the products ``L e`` over positions instead (:meth:`SynapseEligibility.contract`).

Two implementations of the same trace (``tests/backends/norse/test_traces.py`` proves them equal):

* :class:`SynapseEligibility` keeps ``e`` itself, ``[B, P, H, K]``, updated online each step;
* :class:`FactoredEligibility` keeps the factors ``psi(t)``, ``xbar(t)`` of the plastic steps
  (``[T, B, P, H]`` and ``[T, B, P, K]``, activity-sized, never ``[T, B, H, K]``) and forms
  ``sum_t k^{N-1-t} ... `` only when the learning signal arrives: the same number, one matmul.

**Expected value (scale normalisation).**  ``e`` is smaller than the rate eligibility
``rho'(a) x`` for three reasons: the filter's weights sum to ``1 - k^T < 1``, the pre trace
starts at 0 (``E[xbar(t)] = rho (1 - a^{t+1})`` for a pre neuron firing at its nominal rate rho),
and psi is a bump of peak 1 whose population mean is far below the rate network's
``E[rho'(a)]`` (the fraction of active units).  Every accumulator also keeps the *expected
eligibility per unit of nominal pre rate*, over the plastic steps only::

    ebar = sum_{plastic t} (1 - k) k^{N_p - 1 - i(t)} <psi(t)> (1 - a^{t+1})

(``<psi(t)>`` = population mean of psi at step t, ``i(t)`` = index among the plastic steps,
``t`` = steps since the pre trace started).  The learner divides ``e`` by ``ebar`` and multiplies
by the layer's fraction of active (firing) units: the normalised eligibility has the rate
eligibility's population mean, so for a rate code and large T the spiking update matches the
rate update in scale as well as direction (``tests/backends/norse/test_rule_convergence.py``).
``ebar`` ignores non-plastic steps, so the decay across a delay is kept, not normalised away.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.plasticity import ELIGIBILITY_SCALES, eligibility_scale  # noqa: F401  (re-exported)

Tensor = torch.Tensor


# --------------------------------------------------------------------------- parameters and state
class PreTraceParameters(NamedTuple):
    """Low-pass filter of pre-synaptic spikes, ``tau_pre_inv = 1 / tau_pre`` (1/s)."""

    tau_pre_inv: float = 1 / 1e-2


class SurrogateParameters(NamedTuple):
    """SuperSpike surrogate derivative ``1 / (1 + beta |v - v_th|)^2``; beta in 1/(membrane units)."""

    v_th: float = 1.0
    beta: float = 5.0


class EligibilityParameters(NamedTuple):
    """Low-pass filter of ``psi x xbar``, ``tau_elig_inv = 1 / tau_elig`` (1/s)."""

    tau_elig_inv: float = 1 / 2e-2


class PreTraceState(NamedTuple):
    x: Tensor


class EligibilityState(NamedTuple):
    e: Tensor  # [B, P, H, K]


def decay_factor(tau_inv: float, dt: float) -> float:
    """``exp(-dt / tau)``: the exact one-step decay of a first-order low-pass filter."""
    return math.exp(-dt * tau_inv)


# --------------------------------------------------------------------------- step functions
def pre_trace_step(z: Tensor, state: PreTraceState, p: PreTraceParameters, dt: float = 1e-3
                   ) -> tuple[Tensor, PreTraceState]:
    """``xbar <- a xbar + (1 - a) z``: a normalised trace, xbar -> rate per step for steady firing."""
    a = decay_factor(p.tau_pre_inv, dt)
    x = a * state.x + (1 - a) * z
    return x, PreTraceState(x)


def surrogate_derivative(v: Tensor, p: SurrogateParameters) -> Tensor:
    """``psi = 1 / (1 + beta |v - v_th|)^2`` (pseudo-derivative of the spike w.r.t. v, peak 1)."""
    return 1.0 / (1.0 + p.beta * (v - p.v_th).abs()) ** 2


def eligibility_step(psi: Tensor, pre: Tensor, state: EligibilityState, p: EligibilityParameters,
                     dt: float = 1e-3, plastic: bool = True) -> tuple[Tensor, EligibilityState]:
    """``e <- k e + (1 - k) g psi (x) xbar`` for psi ``[B, P, H]``, xbar ``[B, P, K]``, e ``[B, P, H, K]``."""
    k = decay_factor(p.tau_elig_inv, dt)
    e = state.e * k
    if plastic:
        e = e + (1 - k) * psi.unsqueeze(-1) * pre.unsqueeze(-2)
    return e, EligibilityState(e)


def eligibility_decay(state: EligibilityState, p: EligibilityParameters, dt: float, steps: int
                      ) -> EligibilityState:
    """``steps`` non-plastic steps at once: ``e <- k^steps e``."""
    return EligibilityState(state.e * decay_factor(p.tau_elig_inv, dt) ** steps)


# --------------------------------------------------------------------------- accumulators
class Eligibility:
    """Eligibility of one layer: step online, decay, and contract with a learning signal.

    ``contract(L, shared)`` returns ``sum_{b[, p]} L_bpj e_bpjk``: ``[H, K]`` for shared weights
    (conv / dense; sum over positions) or ``[P, H, K]`` for untied weights (LCN).
    """

    name: ClassVar[str] = ""

    def __init__(self, p: EligibilityParameters, dt: float, pre: PreTraceParameters | None = None):
        self.p, self.dt = p, dt
        self.pre_decay = 0.0 if pre is None else decay_factor(pre.tau_pre_inv, dt)  # a (0: no warm-up)
        self.expected: Tensor | float = 0.0  # ebar (module docstring)
        self.n_steps = 0

    def step(self, psi: Tensor, pre: Tensor, plastic: bool = True) -> None:
        """Advance by one step (subclasses store the factors, then call this)."""
        if plastic:
            k = decay_factor(self.p.tau_elig_inv, self.dt)
            warm = 1.0 - self.pre_decay ** (self.n_steps + 1)
            self.expected = k * self.expected + (1 - k) * psi.mean() * warm
        self.n_steps += 1

    def expected_value(self) -> Tensor | float:
        """``ebar``: the trace of a pre neuron at its nominal rate onto a post neuron with the mean psi."""
        return self.expected

    def decay(self, steps: int) -> None:
        raise NotImplementedError

    def value(self) -> Tensor:
        """The trace ``e`` ``[B, P, H, K]`` now (materialised on demand for the factored form)."""
        raise NotImplementedError

    def contract(self, L: Tensor, shared: bool) -> Tensor:
        raise NotImplementedError


class SynapseEligibility(Eligibility):
    """The trace itself, one number per (sample, position, post, pre), updated online.

    Stored post-major, ``[H, B, P, K]``, so that the per-step contraction with a learning signal is a
    batched matmul without copies (the streamed, per-step plasticity of the learners contracts at every
    step).  The decay is kept out of the stored tensor: it holds ``u = e / k^n`` (``n`` steps since the
    trace started) and a scalar ``k^n``, so a step is one in-place pass,
    ``u <- u + ((1 - k) / k^n) psi (x) xbar`` (same ``e`` as :func:`eligibility_step`, up to rounding),
    and a decay only multiplies the scalar; ``k^n`` is folded back into ``u`` before it gets small."""

    name = "synapse"
    RESCALE_BELOW: ClassVar[float] = 1e-6  # fold k^n into u below this (u stays ~1 / RESCALE_BELOW at most)

    def __init__(self, p, dt, pre=None):
        super().__init__(p, dt, pre)
        self._e: Tensor | None = None  # u = e / k^n, [H, B, P, K]
        self._scale = 1.0  # k^n

    @property
    def state(self) -> EligibilityState | None:
        return None if self._e is None else EligibilityState(self.value())

    def _decay_by(self, factor: float) -> None:
        self._scale *= factor
        if self._scale < self.RESCALE_BELOW and self._e is not None:
            self._e.mul_(self._scale)
            self._scale = 1.0

    def step(self, psi, pre, plastic=True):
        if self._e is None:
            B, P, H = psi.shape
            self._e = psi.new_zeros(H, B, P, pre.shape[-1])
        k = decay_factor(self.p.tau_elig_inv, self.dt)
        self._decay_by(k)
        if plastic:  # e <- k e + (1 - k) psi (x) xbar, as u <- u + (1 - k) / k^n psi (x) xbar
            self._e.addcmul_(psi.permute(2, 0, 1).unsqueeze(-1), pre.unsqueeze(0), value=(1 - k) / self._scale)
        super().step(psi, pre, plastic)

    def decay(self, steps):
        if self._e is not None:
            self._decay_by(decay_factor(self.p.tau_elig_inv, self.dt) ** steps)
        self.n_steps += int(steps)

    def value(self):
        if self._e is None:
            raise ConfigError("eligibility trace read before any step")
        return self._e.permute(1, 2, 0, 3) * self._scale

    def contract(self, L, shared):
        if self._e is None:
            raise ConfigError("eligibility trace read before any step")
        H, B, P, K = self._e.shape
        if shared:
            Lh = L.permute(2, 0, 1).reshape(H, 1, B * P).contiguous()  # a strided Lh (P = 1) sends bmm down a per-batch loop
            return torch.bmm(Lh, self._e.reshape(H, B * P, K)).squeeze(1) * self._scale
        return torch.einsum("bph,hbpk->phk", L, self._e) * self._scale


class FactoredEligibility(Eligibility):
    """Stores ``(1-k) psi(t)`` and ``xbar(t)`` of the plastic steps and their ages; contracts in one matmul."""

    name = "factored"

    def __init__(self, p, dt, pre=None):
        super().__init__(p, dt, pre)
        self.post: list[Tensor] = []
        self.pre: list[Tensor] = []
        self.when: list[int] = []

    def step(self, psi, pre, plastic=True):
        if plastic:
            self.post.append(psi)
            self.pre.append(pre)
            self.when.append(self.n_steps)
        super().step(psi, pre, plastic)

    def decay(self, steps):
        self.n_steps += int(steps)

    def _weights(self, like: Tensor) -> Tensor:
        k = decay_factor(self.p.tau_elig_inv, self.dt)
        ages = torch.tensor([self.n_steps - 1 - t for t in self.when], dtype=like.dtype, device=like.device)
        return (1 - k) * k ** ages

    def value(self):
        if not self.post:
            raise ConfigError("eligibility trace read before any plastic step")
        post, pre = torch.stack(self.post), torch.stack(self.pre)
        w = self._weights(post).view(-1, 1, 1, 1)
        return torch.einsum("tbph,tbpk->bphk", w * post, pre)

    def contract(self, L, shared):
        if not self.post:
            raise ConfigError("eligibility trace read before any plastic step")
        post, pre = torch.stack(self.post), torch.stack(self.pre)  # [T, B, P, H], [T, B, P, K]
        w = self._weights(post).view(-1, 1, 1, 1)
        mod = w * post * L.unsqueeze(0)
        if shared:
            T, B, P, H = mod.shape
            return mod.reshape(T * B * P, H).T @ pre.reshape(T * B * P, -1)
        return torch.einsum("tbph,tbpk->phk", mod, pre)


# the scale of the update (``c^l``) is the core's: spiking_rhm.plasticity.ELIGIBILITY_SCALES


ELIGIBILITY_MODES: dict[str, type[Eligibility]] = {c.name: c for c in (SynapseEligibility, FactoredEligibility)}


def make_eligibility(mode: str, p: EligibilityParameters, dt: float, pre: PreTraceParameters | None = None
                     ) -> Eligibility:
    if mode not in ELIGIBILITY_MODES:
        raise ConfigError(f"unknown eligibility mode {mode!r}; valid: {', '.join(ELIGIBILITY_MODES)}")
    return ELIGIBILITY_MODES[mode](p, dt, pre)
