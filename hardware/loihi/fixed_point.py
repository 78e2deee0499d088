r"""Loihi fixed-point parameters of a current-based LIF layer, and an integer reference model.

Lava's bit-accurate LIF (``lava.proc.lif.models.PyLifModelBitAcc``) and Sparse/Dense synapses
(``PySparseModelBitAcc``) compute, per step, in integers::

    a      = (sum_{i spiking} w_i) << e            (w: 8-bit, even in [-256, 254] in mixed sign mode; e = weight_exp)
    u      = sgn(u) (|u (4096 - du - 1)| >> 12) + (a << 6)          24-bit, wraps
    v      = sgn(v) (|v (4096 - dv)| >> 12) + u + (b_mant << b_exp)   24-bit, clipped
    spike  = v > (vth << 6);   v = 0 on spike

(``a`` reaches the neuron one step after the spikes that caused it.)  The float network of
:mod:`hardware.loihi.network` is ``u = (1 - du) u + a``, ``v = (1 - dv) v + u + b``; a layer is
mapped by one scale ``S`` (real potential x -> integer ``x S``) chosen per layer as large as the
widths allow, with the weights filling the 8-bit range:

* ``vth S / 64`` must fit 17 bits, ``|v|`` and ``|u|`` 23 bits with a margin for the largest
  drive, and the largest possible input ``a`` per step the 16-bit activation port;
* weights ``w_real S / 64 = w 2^e``: one shared exponent ``e`` per layer, 8-bit mantissas;
* ``du = round(4096 du_real) - 1`` (Loihi adds 1), ``dv = round(4096 dv_real)``;
* the bias (13-bit mantissa, 3-bit exponent) is rounded so that the integer rest potential
  does not exceed the threshold when the float one does not (``v_leak = v_th`` here: the
  float neurons rest exactly at threshold, and a rounded-up rest would make them fire
  spontaneously).

:func:`simulate_fixed` is an independent numpy implementation of the integer equations above
(tests compare it with Lava's bit-accurate models spike for spike, ``tests/hardware/``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from spiking_rhm.errors import ConfigError
from spiking_rhm.quantisation import mantissas

DECAY_UNITY = 4096  # 12-bit decays
ACT_SHIFT = 6  # activation and threshold are MSB-aligned by 6 bits
UV_BITS = 24
MAX_UV = 2 ** (UV_BITS - 1)
VTH_MAX = 2**17 - 1
BIAS_MANT_MAX = 2**12 - 1  # 13-bit signed
BIAS_EXP_MAX = 7
ACT_MAX = 2**15 - 1  # 16-bit activation port
WEIGHT_MIN, WEIGHT_MAX = -256, 254  # mixed sign mode: 8 bits + sign, lowest bit truncated
HEADROOM = 4.0  # |v|, |u| must stay below MAX_UV / HEADROOM at the largest drive


class FloatLIF(NamedTuple):
    """Real-valued Lava LIF layer: ``u = (1 - du) u + W z``, ``v = (1 - dv) v + u + bias``, spike if ``v > vth``."""

    weight: np.ndarray  # [n_out, n_in], per spike, in units of u
    du: float
    dv: float
    bias: np.ndarray  # [n_out]
    vth: float
    v_init: np.ndarray  # [n_out]


class FixedLIF(NamedTuple):
    """The same layer in Loihi integers (see the module docstring); ``scale`` = S of the real -> int map."""

    weight: np.ndarray  # int32 [n_out, n_in], even, in [-256, 254]
    weight_exp: int
    du: int
    dv: int
    bias_mant: np.ndarray  # int [n_out]
    bias_exp: np.ndarray  # int [n_out]
    vth: int
    v_init: np.ndarray  # int [n_out], the integer rest potential
    scale: float

    def dequantised_weight(self) -> np.ndarray:
        """The real weights (units of u) the integers stand for: ``w 2^e 64 / S``."""
        return self.weight.astype(np.float64) * 2.0**self.weight_exp * 2**ACT_SHIFT / self.scale


def _decay(x: np.ndarray | int, d: int) -> np.ndarray:
    """``sgn(x) (|x (4096 - d)| >> 12)`` in int64."""
    x = np.asarray(x, dtype=np.int64)
    return np.sign(x) * ((np.abs(x) * (DECAY_UNITY - d)) >> 12)


def rest_potential(bias: int, dv: int, v0: int, max_steps: int = 100_000) -> int:
    """The integer potential that ``v <- decay(v) + bias`` settles to from ``v0`` (no input)."""
    v = int(v0)
    for _ in range(max_steps):
        nxt = int(_decay(v, dv)) + bias
        if nxt == v:
            return v
        v = nxt
    return v


def _bias(b_real: float, dv: int, v_target: int, vth_eff: int, never_above: bool) -> tuple[int, int, int]:
    """(mantissa, exponent, rest potential) of the bias ``b_real`` (in integer potential units)."""
    exp = 0
    while abs(b_real) / 2**exp > BIAS_MANT_MAX and exp < BIAS_EXP_MAX:
        exp += 1
    mant = int(round(b_real / 2**exp))
    if abs(mant) > BIAS_MANT_MAX:
        raise ConfigError(f"bias {b_real:.3g} does not fit Loihi's 13-bit mantissa and 3-bit exponent")
    rest = rest_potential(mant << exp, dv, v_target)
    while never_above and rest > vth_eff and mant > -BIAS_MANT_MAX:
        mant -= 1
        rest = rest_potential(mant << exp, dv, rest)
    return mant, exp, rest


def quantise(layer: FloatLIF, scale: float | None = None, headroom: float = 1.0) -> FixedLIF:
    """Loihi integers for a float layer.

    ``scale=None`` picks, over the weight exponents ``e``, the largest scale ``S`` that fits the
    widths with the weights filling the 8-bit range (``max |w_real| S / 64 = 254 * 2^e / headroom``;
    ``headroom > 1`` leaves room for weights that learning makes larger); ``S`` is
    then no power of two, and the threshold ``round(vth S / 64)`` carries a relative rounding below
    ``1 / vth_int`` (reported by :func:`threshold_error`).  A given ``scale`` is used as it is.
    """
    if not headroom >= 1:
        raise ConfigError(f"weight headroom must be >= 1, got {headroom}")
    W = np.asarray(layer.weight, dtype=np.float64)
    if not (0 < layer.du <= 1 and 0 <= layer.dv <= 1):
        raise ConfigError(f"decays must be in (0, 1], got du = {layer.du}, dv = {layer.dv}")
    if layer.vth <= 0:
        raise ConfigError(f"Loihi thresholds are positive, got {layer.vth}")
    du = int(np.clip(round(layer.du * DECAY_UNITY) - 1, 0, DECAY_UNITY - 1))
    dv = int(np.clip(round(layer.dv * DECAY_UNITY), 0, DECAY_UNITY - 1))
    row = np.abs(W).sum(1).max() if W.size else 0.0
    drive = max(layer.vth, float(np.abs(layer.v_init).max(initial=0)), float(np.abs(layer.bias).max(initial=0))
                / max(layer.dv, 1e-12), row / layer.du)
    w_abs = float(np.abs(W).max()) if W.size else 0.0
    if scale is not None:
        candidates = [(float(scale), math.ceil(math.log2(w_abs * scale / 2**ACT_SHIFT / WEIGHT_MAX)) if w_abs else 0)]
    elif w_abs > 0:  # S = 254 * 2^e * 64 / max|w|: the weights use the whole 8-bit range
        candidates = [(WEIGHT_MAX * 2.0**e * 2**ACT_SHIFT / (w_abs * headroom), e) for e in range(24, -25, -1)]
    else:
        candidates = [(2.0**k, 0) for k in range(30, 0, -1)]
    for S, e in candidates:
        if layer.vth * S / 2**ACT_SHIFT > VTH_MAX or drive * S * HEADROOM >= MAX_UV or layer.vth * S / 2**ACT_SHIFT < 1:
            continue
        # even mantissas 2 k: k = round(w S / (64 2^e 2)), the factor is spiking_rhm.quantisation.fill_factor(W, 8)
        q = 2 * mantissas(W, S / 2**ACT_SHIFT / 2.0**e / 2, WEIGHT_MIN // 2, WEIGHT_MAX // 2).astype(np.int32)
        if (np.abs(q).sum(1).max(initial=0) * 2.0**e) > ACT_MAX:
            continue
        vth = int(round(layer.vth * S / 2**ACT_SHIFT))
        vth_eff = vth << ACT_SHIFT
        mants, exps, rests, done = [], [], [], {}
        for b, v0 in zip(np.broadcast_to(layer.bias, (W.shape[0],)), np.broadcast_to(layer.v_init, (W.shape[0],))):
            key = (float(b), float(v0))  # neurons of a layer mostly share bias and rest: solve each pair once
            if key not in done:
                done[key] = _bias(key[0] * S, dv, int(round(key[1] * S)), vth_eff, never_above=v0 <= layer.vth)
            m, x, r = done[key]
            mants.append(m)
            exps.append(x)
            rests.append(r)
        return FixedLIF(q, int(e), du, dv, np.array(mants, dtype=np.int32), np.array(exps, dtype=np.int32), vth,
                        np.array(rests, dtype=np.int32), float(S))
    raise ConfigError("no scale fits this layer into Loihi's widths (weights, 24-bit potentials, 16-bit input); "
                      "the drive is too large")


def threshold_error(layer: FloatLIF, fixed: FixedLIF) -> float:
    """Relative error of the integer threshold: ``|vth_int 64 / S - vth| / vth``."""
    return abs(fixed.vth * 2**ACT_SHIFT / fixed.scale - layer.vth) / layer.vth


def lif_step(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, layer: FixedLIF,
             bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of Lava's bit-accurate LIF: ``(u, v before the reset, spikes)`` (int64; reset ``v`` where spiking)."""
    cur = _decay(u, layer.du + 1) + (a_in << ACT_SHIFT)
    cur = np.where(cur > MAX_UV, cur - 2 * MAX_UV, cur)
    cur = np.where(cur <= -MAX_UV, cur + 2 * MAX_UV, cur)
    volt = np.clip(_decay(v, layer.dv) + cur + bias, -MAX_UV + 1, MAX_UV - 1)
    return cur, volt, volt > (layer.vth << ACT_SHIFT)


def simulate_fixed(layers: Sequence[FixedLIF], spikes: np.ndarray) -> list[np.ndarray]:
    """Integer reference of a chain of layers: input ``spikes [steps, N, n_in]`` (0/1) -> trains ``[steps, N, n_l]``.

    ``N`` independent copies (a batch) run side by side.  Step ``t`` of layer ``l`` sees the
    synaptic input caused by layer ``l-1``'s spikes of step ``t-1`` (one step per synapse, as in
    Lava), so layer ``l`` (0-based) lags the input by ``l + 1`` steps.
    """
    steps, N = spikes.shape[:2]
    u = [np.zeros((N, L.weight.shape[0]), dtype=np.int64) for L in layers]
    v = [np.broadcast_to(L.v_init.astype(np.int64), (N, L.weight.shape[0])).copy() for L in layers]
    a_buf = [np.zeros((N, L.weight.shape[0]), dtype=np.int64) for L in layers]
    out = [np.zeros((steps, N, L.weight.shape[0]), dtype=np.int8) for L in layers]
    bias = [(L.bias_mant.astype(np.int64) << L.bias_exp.astype(np.int64)) for L in layers]
    weights_t = [L.weight.astype(np.int64).T for L in layers]
    for t in range(steps):
        pre = spikes[t].astype(np.int64)
        for l, L in enumerate(layers):
            a_in = a_buf[l]
            acc = pre @ weights_t[l]
            a_buf[l] = acc << L.weight_exp if L.weight_exp >= 0 else acc >> -L.weight_exp
            u[l], volt, z = lif_step(u[l], v[l], a_in, L, bias[l])
            v[l] = np.where(z, 0, volt)
            out[l][t] = z
            pre = z.astype(np.int64)
    return out


__all__ = ["FixedLIF", "FloatLIF", "lif_step", "quantise", "rest_potential", "simulate_fixed", "threshold_error"]
