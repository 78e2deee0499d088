"""On-chip three-factor learning (hardware/loihi/learning.py) vs the Norse learner on the same spikes.

Lava's learning engine (LearningDense + Loihi3FLearningRule, tags as eligibility, the learning
signal as the third factor) must produce the Norse ThreeFactorLearner's update.  Both compute in
float64 (Norse with float64 neuron parameters); the remaining differences are the order of
operations and the compensated exp(-1/65535) decay of Lava's neuron traces: asserted to 1e-9
relative (measured 1e-14 to 1e-12).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("nir")

from hardware_helpers import input_spikes, make_network, plastic_setup  # noqa: E402

from hardware.loihi.learning import three_factor_step  # noqa: E402
from spiking_rhm.backends.norse.learners import PresentedBatch  # noqa: E402
from spiking_rhm.backends.norse.network import Weights  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402
from spiking_rhm.rules import get_rule  # noqa: E402

LR = 0.1


def _setup(arch: str, rule: str, scale: str, N: int = 2):
    net, beta, learner, spikes, target = plastic_setup(arch, rule, scale, N)
    state = copy.deepcopy(learner.rule_state)
    ref = learner.step(Weights(list(net.hidden), beta), PresentedBatch(spikes, target), lr=LR)
    return net, learner.rule, state, spikes, target, ref


@pytest.mark.lava
@pytest.mark.parametrize("arch,rule,scale", [("lcn", "dfa", "none"), ("cnn", "dfa", "expected"),
                                             ("fcn", "drtp", "expected"), ("cnn", "dkp", "expected"),
                                             ("fcn", "sdfa", "none"), ("cnn", "clapp", "expected")])
def test_on_chip_update_equals_the_norse_learner(arch, rule, scale):
    net, rule_obj, state, spikes, target, ref = _setup(arch, rule, scale)
    res = three_factor_step(net, rule_obj, state, spikes, target, lr=LR, scale=scale)
    np.testing.assert_allclose(res.logits.numpy(), ref.logits.numpy(), rtol=1e-12, atol=1e-14)
    for l, (g, r) in enumerate(zip(res.grads, ref.grads)):
        r = r.numpy()
        assert np.abs(r).max() > 0, f"layer {l + 1} has no update: the comparison would prove nothing"
        assert g.shape == r.shape
        assert np.abs(g - r).max() <= 1e-9 * np.abs(r).max()
    for sig, ref_sig in zip(res.signals, ref.signals):
        np.testing.assert_allclose(sig.numpy(), ref_sig.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.lava
def test_only_existing_synapses_learn_and_copies_stay_separate():
    net, rule_obj, state, spikes, target, _ = _setup("cnn", "dfa", "none", N=2)
    res = three_factor_step(net, rule_obj, state, spikes, target, lr=LR)
    from hardware.loihi.network import from_nir
    from hardware.nir_graph import to_nir

    for delta, layer in zip(res.chip_updates, from_nir(to_nir(net)).layers):
        exists = np.kron(np.eye(2), layer.weight != 0).astype(bool)
        assert np.all(delta[~exists] == 0) and np.any(delta[exists] != 0)


def test_rules_the_chip_cannot_run_are_refused_before_lava_starts():
    net = make_network("cnn")
    spikes, target = input_spikes(net, N=1), torch.zeros(1, net.spec.n_out, dtype=torch.float64)
    for name, options, needle in (("clapp", {"pairs": "resample"}, "positive views"),
                                  ("sibling-cca", {}, "dendritic branches"), ("bp-unmasked", {}, "backprop")):
        rule = get_rule(name, **options)
        with pytest.raises(ConfigError, match=needle):
            three_factor_step(net, rule, None, spikes, target, lr=LR)
    with pytest.raises(ConfigError, match="eligibility scale"):
        three_factor_step(net, get_rule("dfa"), None, spikes, target, lr=LR, scale="huge")
