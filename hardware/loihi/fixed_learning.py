r"""Loihi's bit-approximate learning engine for the three-factor rule: integer design and a numpy model.

Lava's ``LearningConnectionModelBitApproximate`` (``lava.magma.core.model.py.connection``) runs a
``Loihi3FLearningRule`` in integers.  Per learning epoch (``t_epoch = 1``: every step) and synapse
``i -> j``:

* traces are 7-bit (0..127): ``x1 <- floor(a x1) + [r_x < frac(a x1)] + I z_i`` (``a = exp(-1/tau)``,
  integer impulse ``I``); the neuron-sent ``y`` factors are 7-bit and decayed the same way with
  ``tau = 65535`` (``r_y``);  ``r_x``, ``r_y`` are *one* uniform number per step and process
  (``np.random.default_rng(rng_seed)``, ``rng_seed + 2``), shared by all synapses;
* a synaptic variable ``s`` (weight: 8 bits + sign, tag: 8 bits + sign) is MSB-aligned to a 15-bit
  accumulator ``A = s << 7``; each product of the rule adds
  ``((dep * f_1 * ... * f_n * m) >> max(0, sum(widths) + 4 - 15)) << (e + 7)``
  (factor widths: x, y 7; t, w, d 9; scaling ``m 2^e``, ``|m| < 8``, ``e >= -7``), saturated to 15 bits;
* ``s <- (floor(A / 128) + [r < frac(A / 128)])`` (stochastic rounding with *one* uniform ``r`` per
  step and process, ``np.random.default_rng(2)`` whatever the rule's seed), clipped to
  ``[-256, 255]`` (weights) / ``[-257, 255]`` (tags).

The Norse learner's tag ``t <- k t + (1-k) psi_j(t) xbar_i(t-1)`` then reads, with the integer
factors ``Y1 = round(127 psi)`` (the neuron's 7-bit ``y1``), ``X = x1`` and ``Y3``::

    dt = 2^-7 m1 u0 x1 y1  -  2^-7 m2 x0 y1  -  2^-7 m3 u0 t y3           (I m1 = 8 m2)
       => T <- T - T Y3 m3 / 4096 + (X - I z_i) Y1 m1 / 1024               (tag units)
    dw = 2^e_w m_w u0 t y2
       => W <- W + T Y2 m_w 2^e_w / 32                                      (weight units)

``Y3 m3 / 4096 ~= 1 - k``; ``X - I z_i = a x1(t-1)`` is the trace before the current pre spike
(Lava's synapses delay by one step: the pairing of the float engine, :mod:`hardware.loihi.learning`).
One tag unit is ``q_t = (1-k) c 128 / (a m2 127)`` of the Norse eligibility; the learning signal
``y2`` (real, per tag) becomes ``Y2 = round(y2 / q_y)``, 7 bits + sign, with
``q_y = w_q m_w 2^e_w / (32 q_t)`` (``w_q``: the real value of one weight unit).  The mask of the
synapses that exist is not a factor of the rule (a 9-bit ``d`` would cost 9 bits of every product):
on Loihi the synapses are sparse; the dense simulation masks on the host.

:class:`BitApproxLayer` is an independent numpy implementation of those integer equations, step by
step in Lava's order, with Lava's random streams (``tests/hardware`` compare it with Lava's engine
integer for integer).  The numpy engine of :mod:`hardware.loihi.training` uses it with the random
streams continued across presentations, as a chip that keeps running would (Lava restarts them, and
truncates the weights to even values, in every new process).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from hardware.loihi.fixed_point import FixedLIF, lif_step
from spiking_rhm.errors import ConfigError

TRACE_MAX = 2**7 - 1  # 7-bit traces and y factors
Y_TAU = 2**16 - 1  # Lava's decay of neuron-sent (Loihi3F) y factors
ACC_BITS = 15  # learning accumulator (plus sign)
ACC_MAX = 2**ACC_BITS - 1
ACC_MIN = -(2**ACC_BITS) - 1  # Lava's saturation bounds
SYN_SHIFT = 7  # synaptic variables (8 bits + sign) -> 15-bit accumulator
MANT_BITS = 4  # the rule's scaling mantissa
WIDTH = {"x": 7, "y": 7, "t": 9, "w": 9, "d": 9}
WEIGHT_RANGE = (-256, 255)
TAG_RANGE = (-257, 255)  # Lava clips tags to [-(2^8) - 1, 2^8 - 1]
CONN_SEED = 2  # Lava's ConnVarRandom default seed (the rule's rng_seed is not used for it)


class LavaRandom:
    """Lava's per-process random streams (``TraceRandom`` for x and y, ``ConnVarRandom``), same draws.

    ``conn_seed`` is the rounding stream's seed (Lava: always 2)."""

    def __init__(self, rng_seed: int, conn_seed: int = CONN_SEED) -> None:
        self._gens = [np.random.default_rng(s) for s in (rng_seed, rng_seed + 1, rng_seed + 2, rng_seed + 3)]
        self._conn = np.random.default_rng(conn_seed)
        self._draw_traces()
        self.r_conn = self._conn.random(1)[0]

    def _draw_traces(self) -> None:
        g = self._gens
        self.r_x, _ = g[0].random(1)[0], g[1].integers(0, 2**7, size=1, dtype=int)[0]
        self.r_y, _ = g[2].random(1)[0], g[3].integers(0, 2**7, size=1, dtype=int)[0]

    def advance_step(self) -> None:
        """The draws of one Lava step: the trace streams twice (spiking phase), the rounding stream once."""
        self._draw_traces()
        self._draw_traces()
        self.r_conn = self._conn.random(1)[0]


def stochastic_decay(values: np.ndarray, tau: float, r: float) -> np.ndarray:
    """``floor(exp(-1/tau) v) + [r < frac]`` (Lava's ``_decay_trace``)."""
    decayed = np.exp(-1 / np.asarray(tau, dtype=np.float64)) * values
    return (np.floor(decayed) + (r < decayed % 1)).astype(np.int64)


def product(dep, factors: list[tuple[np.ndarray, int]], m: int, e: int) -> np.ndarray:
    """One product of a learning rule in the accumulator's units (Lava's ``LearningRuleApplierBitApprox``)."""
    acc = np.asarray(dep, dtype=np.int64)
    width = MANT_BITS
    for value, w in factors:
        acc = acc * np.clip(value, -(2**w), 2**w - 1)
        width += w
    acc = (acc * m) >> max(0, width - ACC_BITS)
    return np.clip(acc << (e + SYN_SHIFT), ACC_MIN, ACC_MAX)


def round_variable(acc: np.ndarray, r: float, lo: int, hi: int) -> np.ndarray:
    """Accumulator -> synaptic variable: stochastic rounding with the shared ``r``, then saturation."""
    scaled = acc / 2**SYN_SHIFT
    value = np.floor(scaled) + (r < scaled % 1)
    return np.clip(value.astype(np.int64), lo, hi)


class Scaling(NamedTuple):
    """A product's scaling ``m 2^e``."""

    m: int
    e: int

    @property
    def value(self) -> float:
        return self.m * 2.0**self.e

    def literal(self) -> str:
        return f"{self.m} * 2^{self.e}"


class FixedRule(NamedTuple):
    """The integer form of the three-factor rule for one layer (see the module docstring)."""

    impulse: int  # I
    pre_tau: float  # tau of x1, steps
    pair: Scaling  # m1 (e = -7)
    now: Scaling  # m2 (e = -7): removes the current pre spike
    decay: Scaling  # m3 2^e3, with y3
    y3: int
    weight: Scaling | None  # m_w 2^e_w (None: not fixed yet)
    tag_unit: float  # q_t: Norse eligibility per tag unit

    def dt_rule(self) -> str:
        return (f"{self.pair.literal()} * u0 * x1 * y1 - {self.now.literal()} * x0 * y1 - "
                f"{self.decay.literal()} * u0 * t * y3")

    def dw_rule(self) -> str:
        return f"{self.weight.literal()} * u0 * t * y2"

    def signal_unit(self, weight_unit: float) -> float:
        """``q_y``: the real learning signal (weight per Norse eligibility) of one unit of ``Y2``."""
        return weight_unit * self.weight.value / (32 * self.tag_unit)


def scalings(e_min: int = -7, e_max: int = 8) -> list[Scaling]:
    """Every positive scaling Lava's rule strings express (``1 <= m <= 7``), ascending."""
    return sorted({Scaling(m, e) for m in range(1, 8) for e in range(e_min, e_max + 1)}, key=lambda s: s.value)


def design(pre_tau: float, tag_decay: float, c: float) -> FixedRule:
    """Integer rule for a pre trace of ``pre_tau`` steps (``a = exp(-1 / pre_tau)``), tag decay ``k``
    per step and eligibility scale ``c = (1 - a) / rho_in``.

    The impulse is the largest ``I`` (with ``I m1 = 8 m2``, ``m2 = 1``) whose saturated trace
    ``I / (1 - a)`` fits 7 bits and whose largest tag ``a I / (1 - a) 127 m1 / 1024 / (1 - k)`` fits
    8 bits; ``Y3 m3 2^e3`` is the best approximation of ``(1 - k) 4096``.
    """
    if not (pre_tau > 0 and 0 < tag_decay < 1):
        raise ConfigError(f"need pre_tau > 0 and a tag decay in (0, 1), got {pre_tau}, {tag_decay}")
    a, k = float(np.exp(-1 / np.float64(pre_tau))), tag_decay
    chosen = None
    for impulse, m1 in ((8, 1), (4, 2), (2, 4)):
        x_max = impulse / (1 - a)
        if x_max <= TRACE_MAX and a * x_max * TRACE_MAX * m1 / 1024 / (1 - k) <= TAG_RANGE[1]:
            chosen = (impulse, m1)
            break
    if chosen is None:
        raise ConfigError(f"the pre trace (tau = {pre_tau:.3g} steps) or the tag (tau = "
                          f"{-1 / math.log(k):.3g} steps) is too long for Loihi's 7-bit traces and 8-bit tags")
    impulse, m1 = chosen
    best = min(((y3, s) for y3 in range(1, TRACE_MAX + 1) for s in scalings(-7, 4)),
               key=lambda p: (abs(p[0] * p[1].value * 2**SYN_SHIFT / 4096 - (1 - k)), -p[0]))
    tag_unit = (1 - k) * c * 128 / (a * 127)
    return FixedRule(impulse, float(pre_tau), Scaling(m1, -7), Scaling(1, -7), best[1], best[0],
                     Scaling(1, -7), tag_unit)


def with_weight_scaling(rule: FixedRule, largest_signal: float, weight_unit: float, target: int = 64) -> FixedRule:
    """Pick ``m_w 2^e_w`` so that the largest learning signal seen is about ``target`` units of ``Y2``."""
    wanted = largest_signal * 32 * rule.tag_unit / (weight_unit * target)
    options = scalings()
    fit = next((s for s in options if s.value >= wanted), options[-1])
    return rule._replace(weight=fit)


def quantise_psi(psi: np.ndarray) -> np.ndarray:
    """The neuron's 7-bit ``y1``: ``round(127 psi)``."""
    return np.rint(TRACE_MAX * psi).astype(np.int64)


class BitApproxLayer:
    """One plastic layer on Loihi in integers: a ``LearningDense`` in Lava's bit-approximate model fed by
    the integer ``ThreeFactorLIF`` (:class:`hardware.loihi.models.PyThreeFactorLIFModelFixed`).

    ``weight [N, n_out, n_in]`` holds the integer weights of N copies of the layer (the diagonal
    blocks of Lava's block-diagonal matrix; the other blocks never carry a spike);  ``neuron`` the
    layer's integers (its weight field is not used); ``v_scale = 1 / S`` turns potentials to real
    units for ``psi``.  :meth:`step` is one Lava time step; the random streams are shared by the copies.
    """

    def __init__(self, weight: np.ndarray, neuron: FixedLIF, rule: FixedRule, random: LavaRandom,
                 psi_vth: float, psi_beta: float, v_scale: float, plastic: tuple[int, int], tag_decay: float,
                 pre_decay: float, truncate: bool = True) -> None:
        w = np.asarray(weight, dtype=np.int64)
        self.weight = (w >> 1) << 1 if truncate else w  # Lava truncates to 8-bit mixed-sign weights on start
        N, n_out, n_in = w.shape
        self.neuron, self.rule, self.random = neuron, rule, random
        self.bias = neuron.bias_mant.astype(np.int64) << neuron.bias_exp.astype(np.int64)
        self.u = np.zeros((N, n_out), dtype=np.int64)
        self.v = np.broadcast_to(neuron.v_init.astype(np.int64), (N, n_out)).copy()
        self.a_buf = np.zeros((N, n_out), dtype=np.int64)
        self.x1 = np.zeros((N, n_in), dtype=np.int64)
        self.tag = np.zeros(w.shape, dtype=np.int64)
        self.factor = np.zeros((N, n_out), dtype=np.int64)  # Y2, set by the host
        self.v_sum = np.zeros((N, n_out), dtype=np.int64)
        self.ebar = np.zeros((N, n_out))
        self.psi_vth, self.psi_beta, self.v_scale = psi_vth, psi_beta, v_scale
        self.plastic, self.k, self.a = plastic, tag_decay, pre_decay
        self.time_step = 0

    def step(self, pre: np.ndarray) -> np.ndarray:
        """Lava step ``t``: the neuron integrates the input of step ``t - 1``, the synapse takes the
        pre spikes ``pre [N, n_in]`` of step ``t``, then the learning phase.  Returns the spikes ``[N, n_out]``."""
        self.time_step += 1
        t, rule, rnd = self.time_step, self.rule, self.random
        # neuron (spiking phase)
        self.u, volt, z = lif_step(self.u, self.v, self.a_buf, self.neuron, self.bias)
        psi = 1.0 / (1.0 + self.psi_beta * np.abs(volt * self.v_scale - self.psi_vth)) ** 2
        plastic = self.plastic[0] <= t < self.plastic[1]
        y1 = quantise_psi(psi) if plastic else np.zeros_like(volt)
        if plastic:
            warm = 1.0 - self.a ** (t - self.plastic[0] + 1)
            self.ebar = self.k * self.ebar + (1 - self.k) * (y1 / TRACE_MAX) * warm
            self.v_sum += volt
        self.v = np.where(z, 0, volt)
        y = np.stack([y1, self.factor.copy(), np.full_like(y1, rule.y3)])
        # synapse (spiking phase): activation for the next step, then the trace randoms advance
        spikes = np.asarray(pre, dtype=bool)
        acc = np.einsum("bji,bi->bj", self.weight, spikes.astype(np.int64))
        self.a_buf = acc << self.neuron.weight_exp if self.neuron.weight_exp >= 0 else acc >> -self.neuron.weight_exp
        rnd.advance_step()
        # learning phase
        x1 = np.clip(stochastic_decay(self.x1, rule.pre_tau, rnd.r_x) + rule.impulse * spikes, 0, TRACE_MAX)
        y = stochastic_decay(y, Y_TAU, rnd.r_y)
        x0 = spikes.astype(np.int64)[:, None, :]
        y1c, y2c, y3c = (y[i][:, :, None] for i in range(3))
        tag_acc = self.tag << SYN_SHIFT
        for term in (product(1, [(x1[:, None, :], WIDTH["x"]), (y1c, WIDTH["y"])], rule.pair.m, rule.pair.e),
                     product(x0, [(y1c, WIDTH["y"])], -rule.now.m, rule.now.e),
                     product(1, [(self.tag, WIDTH["t"]), (y3c, WIDTH["y"])], -rule.decay.m, rule.decay.e)):
            tag_acc = np.clip(tag_acc + term, ACC_MIN, ACC_MAX)
        if rule.weight is not None:  # (unset until the first learning signal; y2 = 0 before it)
            w_acc = np.clip((self.weight << SYN_SHIFT)
                            + product(1, [(self.tag, WIDTH["t"]), (y2c, WIDTH["y"])], rule.weight.m, rule.weight.e),
                            ACC_MIN, ACC_MAX)
            self.weight = round_variable(w_acc, rnd.r_conn, *WEIGHT_RANGE)
        elif np.any(self.factor):
            raise ConfigError("a learning signal reached a layer whose rule has no weight scaling")
        self.tag = round_variable(tag_acc, rnd.r_conn, *TAG_RANGE)
        self.x1 = x1
        return z


__all__ = ["BitApproxLayer", "FixedRule", "LavaRandom", "Scaling", "design", "product", "quantise_psi",
           "round_variable", "stochastic_decay", "with_weight_scaling"]
