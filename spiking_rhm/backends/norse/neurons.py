r"""LIF neurons (Norse functional API) and the hierarchical connectivity of the RHM networks.

Neuron (current-based LIF, ``norse.torch.functional.lif.lif_feed_forward_step``, Euler, dt)::

    i'  = i + I_in(t)
    v'  = v + dt / tau_mem * (v_leak - v + i')          (pre-reset potential, returned as v_pre)
    z   = H(v' - v_th),   v <- (1 - z) v' + z v_reset,   i <- (1 - dt / tau_syn) i'

Connectivity (filter = stride = s, the layout of ``rate_models.networks``): layer l sees
*patches* ``[N, P_l, K_l]`` of its channel-last input ``[N, P_{l-1}, C_{l-1}]``
(``K_l = s C_{l-1}``, tap-major; the FCN takes one patch of everything).  The input current is::

    I_in = gain_l * W^l . patch,      gain_l = g / (ss * rho_{l-1} * sqrt(K_l)),   ss = 1 / (dt / tau_syn)

so that the mean steady potential is ``v_leak + g * W^l xhat / sqrt(K_l)`` with ``xhat`` the input
rate in units of its nominal rate ``rho``: ``g`` times the rate network's pre-activation.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, lif_feed_forward_step

from spiking_rhm.errors import ConfigError

Tensor = torch.Tensor

__all__ = ["LIFFeedForwardState", "LIFParameters", "lif_layer_step", "initial_lif_state", "Connectivity",
           "Shared", "Local", "patches"]


def lif_layer_step(current: Tensor, state: LIFFeedForwardState, p: LIFParameters, dt: float = 1e-3
                   ) -> tuple[Tensor, Tensor, LIFFeedForwardState]:
    """One Norse LIF step; also returns the pre-reset potential ``v_pre`` (for the surrogate psi).

    Norse returns only the post-reset potential; ``v_pre`` repeats its Euler update of v
    (``tests/backends/norse/test_neurons.py`` checks it against Norse where no spike resets it).
    """
    z, new = lif_feed_forward_step(current, state, p, dt)
    v_pre = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + state.i + current)
    return z, v_pre, new


def initial_lif_state(shape: tuple[int, ...], p: LIFParameters, dtype: torch.dtype, device) -> LIFFeedForwardState:
    """Neurons at rest: ``v = v_leak``, ``i = 0``."""
    v = torch.full(shape, float(p.v_leak), dtype=dtype, device=device)
    return LIFFeedForwardState(v=v, i=torch.zeros(shape, dtype=dtype, device=device))


def patches(x: Tensor, size: int | None) -> Tensor:
    """Channel-last ``[N, P_in, C] -> [N, P_in / size, size * C]`` (tap-major, as ``rate_models``);
    ``size=None``: one patch of everything."""
    N, P, C = x.shape
    if size is None:
        return x.reshape(N, 1, P * C)
    if P % size:
        raise ConfigError(f"{P} positions are not divisible by the filter size {size}")
    return x.reshape(N, P // size, size * C)


class Connectivity:
    """How the weights of a layer act on its patches ``[N, P, K]`` -> currents ``[N, P, H]``."""

    name: ClassVar[str] = ""
    shared: ClassVar[bool] = True

    @staticmethod
    def weight_shape(P: int, H: int, K: int) -> tuple[int, ...]:
        raise NotImplementedError

    @staticmethod
    def apply(pat: Tensor, W: Tensor) -> Tensor:
        raise NotImplementedError


class Shared(Connectivity):
    """One weight matrix ``[H, K]`` for every position (CNN filter; dense layer when P = 1)."""

    name = "shared"
    shared = True

    @staticmethod
    def weight_shape(P, H, K):
        return (H, K)

    @staticmethod
    def apply(pat, W):
        return pat @ W.T


class Local(Connectivity):
    """Untied weights ``[P, H, K]``, one matrix per position (LCN)."""

    name = "local"
    shared = False

    @staticmethod
    def weight_shape(P, H, K):
        return (P, H, K)

    @staticmethod
    def apply(pat, W):
        return torch.einsum("npk,phk->nph", pat, W)


def steady_state_factor(p: LIFParameters, dt: float) -> float:
    """``ss``: a constant input I per step gives a synaptic current ``i' = ss * I`` at steady state."""
    return 1.0 / (dt * float(p.tau_syn_inv))


def layer_gain(g: float, p: LIFParameters, dt: float, rho_in: float, fan_in: int) -> float:
    """``g / (ss * rho_in * sqrt(K))`` (see the module docstring)."""
    return g / (steady_state_factor(p, dt) * rho_in * math.sqrt(fan_in))
