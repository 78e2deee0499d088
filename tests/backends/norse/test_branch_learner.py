"""Branch-local rules on Norse: the spiking update (signal on the tap branches x pre-synaptic count)
approaches the rate back end's explicit branch update as T grows, with the same weights and inputs."""

import pytest
import torch

pytest.importorskip("norse")

from norse_helpers import L, NC, S, V, WIDTH, cosine, small_batch, spiking_update  # noqa: E402

from rate_models.networks import NetParams, branch_inputs, branch_pre_activations, forward, make_spec  # noqa: E402
from spiking_rhm.backends.norse.neurons import patches  # noqa: E402
from spiking_rhm.rules import LearningContext, get_rule  # noqa: E402
from spiking_rhm.rules.branch import branch_weight_gradient  # noqa: E402

pytestmark = pytest.mark.norse
OPTIONS = {"first_layer": True, "dim": 8}


def rate_branch_update(x, weights, name="sibling-cca"):
    spec = make_spec("cnn", V, S**L, S, L, WIDTH, NC)
    params = NetParams(spec, tuple(weights.hidden), (None,) * L, weights.readout)
    _, act = forward(params, x)
    rule = get_rule(name, **OPTIONS)
    state = rule.init_state(spec.layer_shapes(), NC, torch.Generator().manual_seed(1), taps=S)
    ctx = LearningContext(layers=act.post, branches=branch_pre_activations(params, act),
                          branch_inputs=branch_inputs(act, spec))
    signals = rule.learning_signals(ctx, state)
    return [branch_weight_gradient(sig, xl, None, True) for sig, xl in zip(signals, ctx.branch_inputs)]


def test_tap_inputs_are_the_patches_of_the_presynaptic_rates():
    _, _, x, target = small_batch(8)
    res, learner, weights, spec, params = spiking_update("sibling-cca", 20, x, target, **OPTIONS)
    ctx = res.context
    for l, (xl, z, W) in enumerate(zip(ctx.branch_inputs, ctx.branches, weights.hidden)):
        layer_in = xl.permute(0, 3, 2, 1).reshape(xl.shape[0], -1, xl.shape[1])  # channel-last [N, P_{l-1}, C]
        current = patches(layer_in, S) @ W.T / spec.fan_in[l] ** 0.5  # [N, P_l, H]
        torch.testing.assert_close(z.sum(2), current.transpose(1, 2), rtol=1e-5, atol=1e-5)
        if l > 0:  # hidden tap inputs are the rates the rule sees for layer l
            torch.testing.assert_close(layer_in.transpose(1, 2), ctx.layers[l - 1])


@pytest.mark.parametrize("name", ["sibling-cca", "sibling-cca-online"])
def test_spiking_branch_update_converges_to_rate_update(name):
    """(The online rule's first update uses the batch's own statistics, as the batch rule does.)"""
    _, _, x, target = small_batch(64)
    cos = {}
    for T in (10, 300):
        res, _, weights, *_ = spiking_update(name, T, x, target, **OPTIONS)
        ref = rate_branch_update(x, weights, name)
        cos[T] = [cosine(g, r) for g, r in zip(res.grads, ref)]
    print(f"{name} cosine spiking vs rate update, T=10: {cos[10]}, T=300: {cos[300]}")
    assert cos[300][0] > 0.97 and cos[300][1] > 0.9, cos
    assert sum(cos[300]) > sum(cos[10]), cos
