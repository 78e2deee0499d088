r"""LIF neurons (Norse functional API) and the hierarchical connectivity of the RHM networks.

Neuron (current-based LIF, ``norse.torch.functional.lif.lif_feed_forward_step``, Euler, dt)::

    i'  = i + I_in(t)
    v'  = v + dt / tau_mem * (v_leak - v + i')          (pre-reset potential, returned as v_pre)
    z   = H(v' - v_th),   i <- (1 - dt / tau_syn) i'
    reset "zero" (Norse's):    v <- (1 - z) v' + z v_reset
    reset "subtract":          v <- v' - z (v_th - v_reset)      (the overshoot above threshold is kept)

Response to a constant synaptic current ``i = D`` (``v_inf = v_leak + D``, ``alpha = dt / tau_mem``,
:func:`response_counts`): ``v_n = v_inf - (v_inf - v_0)(1 - alpha)^n``, so from a start ``v_0`` the
first spike comes at step ``n(v_0) = floor(ln((v_inf - v_th) / (v_inf - v_0)) / ln(1 - alpha)) + 1``
(``v_inf > v_th``); with reset "zero" every later spike ``n(v_reset)`` steps after the previous one
(:func:`first_passage_counts`).  With reset "subtract" and a negligible leak the count after T steps
is ``floor((v_0 - v_reset + T alpha v_inf) / (v_th - v_reset))``: a staircase linear in the drive
(:func:`subtractive_counts`).

Dithered start (``v_init = "uniform"``, :data:`INITIAL_POTENTIALS`): every neuron starts every window at its own
``v_0 = v_reset + U (v_th - v_reset)``, ``U ~ U[0, 1)``.  With reset by subtraction the charge balance of a window
is exact: summing the update over the T steps,

    count (v_th - v_reset) = v_0 - v_T + T alpha D + alpha sum_t (v_leak - v_t)        (D = v_inf - v_leak)

so the count is the nominal ``T alpha D / (v_th - v_reset)`` (``T rho_h a`` of :mod:`.network`) up to the
boundary term ``v_0 - v_T`` and the leak's ``sum (v_leak - v_t)``.  From a fixed start the boundary term is a
deterministic rounding error of up to one spike; from a uniform start it averages out: in the integrate-and-fire
limit (negligible leak) ``E[floor((u + c) / theta)] = c / theta`` for ``u ~ U[0, theta)``, ``c >= 0``, so the mean
count is exactly ``max(0, T alpha v_inf) / (v_th - v_reset)`` (stochastic rounding, :func:`dithered_counts`).  With
the leak, the time-average of ``v`` on the firing orbit is about ``(v_reset + v_th) / 2``, so at rest
``v_leak = v_th / 2`` the leak term roughly cancels above the rheobase; below it (``v_inf <= v_th``) no start in
``[v_reset, v_th)`` ever reaches threshold, so the rheobase is unchanged.  :func:`mean_response_counts` gives the
mean over starts.

Connectivity (filter = stride = s, :mod:`spiking_rhm.network`, shared with ``rate_models``): layer l sees
*patches* ``[N, P_l, K_l]`` of its channel-last input ``[N, P_{l-1}, C_{l-1}]``
(``K_l = s C_{l-1}``, tap-major; the FCN takes one patch of everything).  The input current is::

    I_in = gain_l * W^l . patch,      gain_l = g / (ss * rho_{l-1} * sqrt(K_l)),   ss = 1 / (dt / tau_syn)

so that the mean steady potential is ``v_leak + g * W^l xhat / sqrt(K_l)`` with ``xhat`` the input
rate in units of its nominal rate ``rho``: ``g`` times the rate network's pre-activation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, lif_feed_forward_step

from spiking_rhm.errors import ConfigError
from spiking_rhm.network import Connectivity, Local, Shared, patches
from spiking_rhm.spikes import uniform_draws

Tensor = torch.Tensor

__all__ = ["LIFFeedForwardState", "LIFParameters", "lif_layer_step", "initial_lif_state", "Connectivity",
           "Shared", "Local", "patches", "RESETS", "INITIAL_POTENTIALS", "StartPotential", "response_counts",
           "mean_response_counts", "first_passage_counts", "subtractive_counts", "dithered_counts"]


def reset_to_value(v_pre: Tensor, z: Tensor, p: LIFParameters) -> Tensor:
    """Norse's reset: ``v <- (1 - z) v' + z v_reset``."""
    return (1 - z) * v_pre + z * p.v_reset


def reset_by_subtraction(v_pre: Tensor, z: Tensor, p: LIFParameters) -> Tensor:
    """``v <- v' - z (v_th - v_reset)``: the charge above threshold carries over to the next spike."""
    return v_pre - z * (p.v_th - p.v_reset)


RESETS = {"zero": reset_to_value, "subtract": reset_by_subtraction}
"""Reset rules by name (``spiking.reset``)."""

class StartPotential(NamedTuple):
    """Start of a window: ``v_0 = low + spread U`` with ``U ~ U[0, 1)`` per neuron and window (spread 0: ``low``)."""

    low: float
    spread: float = 0.0


INITIAL_POTENTIALS = {
    "rest": lambda p: StartPotential(float(p.v_leak)),
    "half": lambda p: StartPotential(0.5 * float(p.v_th)),
    "uniform": lambda p: StartPotential(float(p.v_reset), float(p.v_th) - float(p.v_reset)),
}
"""Membrane potential at the start of a window by name (``spiking.v_init``): rest, half the threshold, or
``uniform`` -- an independent draw in ``[v_reset, v_th)`` per neuron and window (dither: the count becomes an
unbiased estimate of the nominal rate in the integrate-and-fire limit, module docstring)."""


def lif_layer_step(current: Tensor, state: LIFFeedForwardState, p: LIFParameters, dt: float = 1e-3,
                   reset: str = "zero") -> tuple[Tensor, Tensor, LIFFeedForwardState]:
    """One Norse LIF step; also returns the pre-reset potential ``v_pre`` (for the surrogate psi).

    Norse returns only the post-reset potential; ``v_pre`` repeats its Euler update of v in the
    same order of operations (``tests/backends/norse/test_neurons.py`` checks it against Norse where
    no spike resets it).  Without autograd the SuperSpike threshold is evaluated as the Heaviside step it
    is in the forward pass (no ``autograd.Function`` call per step).  ``reset="subtract"`` replaces Norse's reset by :func:`reset_by_subtraction`.
    """
    if p.method == "super" and not torch.is_grad_enabled():
        p = p._replace(method="heaviside")  # the same forward (SuperSpike's is the Heaviside) without autograd
    z, new = lif_feed_forward_step(current, state, p, dt)
    v_pre = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + (state.i + current))
    if reset != "zero":
        new = LIFFeedForwardState(v=RESETS[reset](v_pre, z, p), i=new.i)
    return z, v_pre, new


def initial_lif_state(shape: tuple[int, ...], p: LIFParameters, dtype: torch.dtype, device,
                      v0: float | None = None, spread: float = 0.0,
                      generator: torch.Generator | None = None) -> LIFFeedForwardState:
    """``v = v0 + spread U`` (``v0`` default: rest, ``v_leak``; ``U ~ U[0, 1)`` per neuron, drawn from
    ``generator``, which a ``spread > 0`` needs), ``i = 0``."""
    v = torch.full(shape, float(p.v_leak) if v0 is None else float(v0), dtype=dtype, device=device)
    if spread:
        if generator is None:
            raise ConfigError("a dithered start potential (spiking.v_init = uniform) is drawn from the run's "
                              "spike generator: pass generator=")
        v = v + float(spread) * uniform_draws(shape, v, generator)
    return LIFFeedForwardState(v=v, i=torch.zeros(shape, dtype=dtype, device=device))


# --------------------------------------------------------------------------- response to a constant drive
def response_counts(drive: Tensor, T: int, p: LIFParameters, dt: float = 1e-3, reset: str = "zero",
                    v0: float | None = None, spread: float = 0.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """Spike counts of T :func:`lif_layer_step` steps with the synaptic current held at ``drive``.

    ``drive`` (any shape) is the steady-state potential above rest, ``v_inf = v_leak + drive``
    (the back end's ``g a``): the current starts at its steady state ``i = drive`` and every step
    adds the ``drive dt / tau_syn`` that the synaptic decay removes, so ``i' = drive`` throughout.
    ``spread > 0``: every element starts at its own ``v0 + spread U`` (:func:`initial_lif_state`).
    """
    state = initial_lif_state(tuple(drive.shape), p, drive.dtype, drive.device, v0, spread, generator)
    return _held_counts(drive, state.v, T, p, dt, reset)


def _held_counts(drive: Tensor, v_start: Tensor, T: int, p: LIFParameters, dt: float, reset: str) -> Tensor:
    """Counts of T steps from the potentials ``v_start`` with the synaptic current held at ``drive``."""
    ss = steady_state_factor(p, dt)
    state = LIFFeedForwardState(v=v_start, i=drive * (1 - 1 / ss))
    counts = torch.zeros_like(drive)
    for _ in range(int(T)):
        z, _, state = lif_layer_step(drive / ss, state, p, dt, reset)
        counts = counts + z
    return counts


def mean_response_counts(drive: Tensor, T: int, p: LIFParameters, dt: float = 1e-3, reset: str = "zero",
                         v0: float | None = None, spread: float = 0.0, points: int = 256) -> Tensor:
    """The mean of :func:`response_counts` over the start ``v0 + spread U``, ``U ~ U[0, 1)``: the midpoint rule on
    ``points`` starts (the count is a step function of the start, so the error is below ``1 / points`` per step
    of it); ``spread = 0``: the count from ``v0``."""
    if not spread:
        return response_counts(drive, T, p, dt, reset, v0)
    low = float(p.v_leak) if v0 is None else float(v0)
    starts = low + spread * (torch.arange(points, dtype=drive.dtype, device=drive.device) + 0.5) / points
    grid = drive.unsqueeze(-1).expand(*drive.shape, points).contiguous()
    return _held_counts(grid, starts.expand_as(grid).clone(), T, p, dt, reset).mean(-1)


def _first_passage(v_inf: float, v_from: float, v_th: float, alpha: float) -> float:
    """Steps from ``v_from`` to the first step with ``v > v_th`` under ``v <- v + alpha (v_inf - v)``."""
    if v_from > v_th:
        return 1.0
    if v_inf <= v_th:
        return math.inf
    return math.floor(math.log((v_inf - v_th) / (v_inf - v_from)) / math.log(1 - alpha)) + 1


def first_passage_counts(drive: float, T: int, v_leak: float, v_th: float, v_reset: float, tau_mem: float,
                         dt: float = 1e-3, v0: float | None = None) -> int:
    """Closed form of :func:`response_counts` for reset ``zero`` (module docstring)."""
    alpha, v_inf = dt / tau_mem, v_leak + drive
    first = _first_passage(v_inf, v_leak if v0 is None else v0, v_th, alpha)
    if first > T:
        return 0
    return 1 + int((T - first) // _first_passage(v_inf, v_reset, v_th, alpha))


def subtractive_counts(drive: float, T: int, v_leak: float, v_th: float, v_reset: float, tau_mem: float,
                       dt: float = 1e-3, v0: float | None = None) -> int:
    """Count of reset ``subtract`` when the leak ``alpha v`` is negligible (each step adds
    ``alpha v_inf``): ``floor((v_0 - v_reset + T alpha v_inf) / (v_th - v_reset))``, a staircase linear in the drive."""
    alpha = dt / tau_mem
    v0 = v_leak if v0 is None else v0
    return max(0, math.floor((v0 - v_reset + T * alpha * (v_leak + drive)) / (v_th - v_reset)))


def dithered_counts(drive: float, T: int, v_leak: float, v_th: float, v_reset: float, tau_mem: float,
                    dt: float = 1e-3) -> float:
    """Mean of :func:`subtractive_counts` over a start ``v_0 ~ U[v_reset, v_th)`` (negligible leak): with
    ``theta = v_th - v_reset`` and ``c = T alpha v_inf``, ``E floor((u + c) / theta) = c / theta`` for
    ``u ~ U[0, theta)`` and ``c >= 0`` (stochastic rounding), 0 for ``c < 0``."""
    return max(0.0, T * dt / tau_mem * (v_leak + drive)) / (v_th - v_reset)


def steady_state_factor(p: LIFParameters, dt: float) -> float:
    """``ss``: a constant input I per step gives a synaptic current ``i' = ss * I`` at steady state."""
    return 1.0 / (dt * float(p.tau_syn_inv))


def layer_gain(g: float, p: LIFParameters, dt: float, rho_in: float, fan_in: int) -> float:
    """``g / (ss * rho_in * sqrt(K))`` (see the module docstring)."""
    return g / (steady_state_factor(p, dt) * rho_in * math.sqrt(fan_in))
