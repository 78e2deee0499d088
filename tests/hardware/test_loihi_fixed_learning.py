"""Three-factor learning in Loihi integers (hardware/loihi/fixed_learning.py, learning.fixed_three_factor_step).

Independent checks: (1) the numpy model of the bit-approximate engine equals Lava's own
``LearningDense`` bit-approximate ProcessModel (with the integer ThreeFactorLIF) integer for
integer -- weights, tags, spikes; (2) the integer tag follows the float eligibility it encodes,
on average over the engine's random streams; (3) averaged over those streams, the integer
weight update follows the Norse float learner's update on the same (dequantised) weights.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

pytest.importorskip("nir")

from hardware_helpers import plastic_setup  # noqa: E402

from hardware.loihi import fixed_learning as fl  # noqa: E402
from hardware.loihi.fixed_point import FixedLIF  # noqa: E402
from hardware.loihi.learning import FixedChip, fixed_three_factor_step  # noqa: E402
from spiking_rhm.backends.norse.learners import PresentedBatch  # noqa: E402
from spiking_rhm.backends.norse.network import Weights  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402

LR = 300.0


def _setup(arch: str, rule: str = "dfa"):
    return plastic_setup(arch, rule)


@pytest.mark.lava
@pytest.mark.parametrize("arch,rule", [("lcn", "dfa"), ("fcn", "drtp")])
def test_numpy_model_equals_lavas_bit_approximate_engine(arch, rule):
    net, _, learner, spikes, target = _setup(arch, rule)
    chip = FixedChip(net, rng_seed=7)
    state = copy.deepcopy(learner.rule_state)
    ours = fixed_three_factor_step(chip, net, learner.rule, state, spikes, target, LR, engine="numpy",
                                   continuous=False)  # a fresh process, as Lava runs it (sets the weight scaling)
    lava = fixed_three_factor_step(chip, net, learner.rule, copy.deepcopy(learner.rule_state), spikes, target, LR,
                                   engine="lava")
    for l, (a, b) in enumerate(zip(ours.counts, lava.counts)):
        np.testing.assert_array_equal(a, b)
        assert a.sum() > 0, f"layer {l + 1} is silent: the comparison would prove little"
    for l in range(len(ours.weights)):
        assert np.abs(ours.deltas[l]).sum() > 50, f"layer {l + 1}: too few weight changes to compare"
        assert np.abs(ours.tags[l]).sum() > 20
        np.testing.assert_array_equal(ours.weights[l], lava.weights[l])
        np.testing.assert_array_equal(ours.tags[l], lava.tags[l])
        np.testing.assert_array_equal(ours.deltas[l], lava.deltas[l])


def _rest_neuron(n_out: int, n_in: int) -> tuple[FixedLIF, float]:
    """Integer LIF resting at 0.92 of its threshold (no input): psi = 0.52."""
    S = 64000.0
    rest = 1000 * 64 - 5000
    bias = rest * 400 // 4096  # dv = 400: the decay the bias replaces
    return FixedLIF(np.zeros((n_out, n_in), dtype=np.int32), 0, 100, 400, np.full(n_out, bias // 2, dtype=np.int32),
                    np.ones(n_out, dtype=np.int32), 1000, np.full(n_out, rest, dtype=np.int32), S), S


@pytest.mark.parametrize("rate,steps", [(0.5, 300), (0.1, 40)])
def test_integer_tag_follows_the_float_eligibility(rate, steps):
    a, k, rho = math.exp(-0.1), math.exp(-0.05), 0.5
    c = (1 - a) / rho
    rule = fl.design(10.0, k, c)
    n_out, n_in = 3, 100
    neuron, S = _rest_neuron(n_out, n_in)
    rng = np.random.default_rng(0)
    ratios = []
    for seed in range(12):  # the engine's rounding numbers are shared by all synapses: average over streams
        random = fl.LavaRandom(seed, conn_seed=1000 + seed)
        layer = fl.BitApproxLayer(np.zeros((1, n_out, n_in)), neuron, rule, random, 1.0, 5.0, 1 / S, (1, 10**6), k, a)
        x, e = np.zeros(n_in), np.zeros((n_out, n_in))
        for _ in range(steps):
            z = rng.random(n_in) < rate
            layer.step(z[None])
            psi = 1 / (1 + 5 * np.abs(layer.v[0] / S - 1.0)) ** 2  # no spikes: v is the pre-reset potential
            e = k * e + (1 - k) * c * psi[:, None] * x[None, :]  # the Norse eligibility (xbar of the step before)
            x = a * x + z
        assert np.abs(layer.tag).max() < fl.TAG_RANGE[1]
        ratios.append((layer.tag[0] * rule.tag_unit).sum() / e.sum())
    assert abs(np.mean(ratios) - 1) < 0.08, ratios


def test_integer_update_follows_the_norse_learner_on_average():
    net, beta, learner, spikes, target = _setup("lcn")
    chip = FixedChip(net, rng_seed=1)
    netq = net._replace(hidden=[h.double() for h in chip.hidden()])  # the weights the integers stand for
    ref = learner.step(Weights(list(netq.hidden), beta), PresentedBatch(spikes, target), lr=LR)
    start = [W.copy() for W in chip.weights]
    total = [np.zeros_like(W, dtype=np.float64) for W in start]
    reps = 16
    for _ in range(reps):  # the chip's streams continue: each repetition rounds differently
        res = fixed_three_factor_step(chip, netq, learner.rule, copy.deepcopy(learner.rule_state), spikes, target, LR)
        total = [t + d.sum(0) for t, d in zip(total, res.deltas)]
        chip.weights = [W.copy() for W in start]
    for l, t in enumerate(total):
        ours = chip.to_norse(t / reps * chip.weight_units[l], l)
        theirs = -LR * ref.grads[l].numpy()
        cos = (ours * theirs).sum() / np.linalg.norm(ours) / np.linalg.norm(theirs)
        assert cos > 0.95, (l, cos)
        assert abs(np.linalg.norm(ours) / np.linalg.norm(theirs) - 1) < 0.15


def test_design_refuses_traces_longer_than_the_bits_allow():
    rule = fl.design(10.0, math.exp(-0.05), 0.2)
    assert rule.impulse / (1 - math.exp(-0.1)) <= fl.TRACE_MAX
    assert abs(rule.y3 * rule.decay.value * 128 / 4096 - (1 - math.exp(-0.05))) < 1e-3
    with pytest.raises(ConfigError, match="too long"):
        fl.design(200.0, math.exp(-0.05), 0.2)
    with pytest.raises(ConfigError, match="fixed-point engine"):
        net, _, learner, spikes, target = _setup("lcn")
        fixed_three_factor_step(FixedChip(net), net, learner.rule, learner.rule_state, spikes, target, LR,
                                engine="loihi")
