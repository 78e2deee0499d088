"""bp, random-features, bp-unmasked, fa, fa-unmasked, dfa-masked: explicit signals vs autograd, exact limits,
tree routing."""

import pytest
import torch

from rate_models.networks import explicit_update
from spiking_rhm.errors import ConfigError
from spiking_rhm.rules import get_rule
from spiking_rhm.rules.reference import MaskedDFAState, TreeFeedbackState

from rate_helpers import DT, context, end_to_end_bp, rel_err, small_net

RULES = ["bp", "random-features", "bp-unmasked", "fa", "fa-unmasked", "dfa-masked"]


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
@pytest.mark.parametrize("name", RULES)
def test_explicit_update_equals_autograd_of_local_loss(name, arch):
    spec, params, x, y = small_net(arch, depth=3 if arch != "fcn" else 2)
    rule = get_rule(name)
    state = rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(3), DT)
    ctx, act, _ = context(params, x, y)
    signals = rule.learning_signals(ctx, state)
    losses = rule.local_losses(ctx, state)
    for l, (L, ell) in enumerate(zip(signals, losses), 1):
        assert L.shape == ctx.layers[l - 1].shape
        d_h = torch.autograd.grad(ell, ctx.layers[l - 1], retain_graph=True, allow_unused=True)[0]
        d_h = torch.zeros_like(L) if d_h is None else d_h
        assert rel_err(d_h, L) < 1e-5 or (L.norm() == 0 and d_h.norm() == 0)
        d_W = torch.autograd.grad(ell, params.weights[l - 1], retain_graph=True, allow_unused=True)[0]
        explicit = explicit_update(L, act, l, params)
        if name == "random-features":
            assert explicit.abs().max() == 0 and (d_W is None or d_W.abs().max() == 0)
        else:
            assert explicit.abs().max() > 0  # hidden-layer updates are non-zero
            assert rel_err(explicit, -d_W) < 1e-5


@pytest.mark.parametrize("arch", ["cnn", "fcn"])
def test_bp_equals_end_to_end_backprop(arch):
    spec, params, x, y = small_net(arch, depth=3)
    rule = get_rule("bp")
    ctx, act, _ = context(params, x, y)
    signals = rule.learning_signals(ctx, rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator()))
    for l, g in enumerate(end_to_end_bp(params, x, y), 1):
        assert rel_err(-explicit_update(signals[l - 1], act, l, params), g) < 1e-10


def test_bp_unmasked_top_layer_exact_lower_layers_not():
    spec, params, x, y = small_net("cnn", depth=3, batch=16)
    rule = get_rule("bp-unmasked")
    ctx, _, _ = context(params, x, y)
    signals = rule.learning_signals(ctx, {})
    assert rel_err(signals[-1], ctx.bp_signals[-1]) < 1e-12
    assert rel_err(signals[0], ctx.bp_signals[0]) > 1e-3  # the masks matter in the ReLU network


@pytest.mark.parametrize("constant", ["one", "batch-mean"])
def test_bp_unmasked_equals_bp_in_a_linear_network(constant):
    """All masks are 1 when every pre-activation is positive: 'one' and 'batch-mean' give BP exactly."""
    spec, params, x, y = small_net("cnn", depth=3, positive_weights=True)
    ctx, _, _ = context(params, x, y)
    assert all(bool((a > 0).all()) for a in ctx.pre_activations)
    signals = get_rule("bp-unmasked", mask_constant=constant).learning_signals(ctx, {})
    for s, b in zip(signals, ctx.bp_signals):
        assert rel_err(s, b) < 1e-12


def test_bp_unmasked_half_scales_each_level_by_one_half():
    spec, params, x, y = small_net("cnn", depth=3, positive_weights=True)
    ctx, _, _ = context(params, x, y)
    signals = get_rule("bp-unmasked", mask_constant="half").learning_signals(ctx, {})
    for l, (s, b) in enumerate(zip(signals, ctx.bp_signals), 1):
        assert rel_err(s, b * 0.5 ** (3 - l)) < 1e-12


def _tree_feedback_from_weights(params, top=None):
    """Rule state whose tree feedback B^l are the true forward weights W^l (and, for dfa-masked, whose top
    projection G_out is BP's: beta / P_L at every top position)."""
    B_tree = [w.detach().clone() for w in params.weights[1:]]
    if top != "beta":
        return TreeFeedbackState(0, B_tree)
    H, P = params.spec.layer_shapes()[-1]
    beta = params.readout.detach()
    G_out = (beta[:, None, :] / P).expand(H, P, beta.shape[1]).reshape(H * P, -1).clone()
    return MaskedDFAState(G_out, 0, B_tree, params.spec.layer_shapes())


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
def test_fa_with_true_weights_is_exactly_bp_and_fa_unmasked_is_bp_unmasked(arch):
    spec, params, x, y = small_net(arch, depth=3 if arch != "fcn" else 2)
    ctx, _, _ = context(params, x, y)
    fa = get_rule("fa").learning_signals(ctx, _tree_feedback_from_weights(params))
    for s, b in zip(fa, ctx.bp_signals):
        assert rel_err(s, b) < 1e-12
    for constant in ("batch-mean", "half"):
        fa_u = get_rule("fa-unmasked", mask_constant=constant).learning_signals(ctx, _tree_feedback_from_weights(params))
        bp_u = get_rule("bp-unmasked", mask_constant=constant).learning_signals(ctx, {})
        for s, b in zip(fa_u, bp_u):
            assert rel_err(s, b) < 1e-12
    assert rel_err(fa_u[0], ctx.bp_signals[0]) > 1e-3


def test_fa_random_feedback_has_the_forward_layout_and_is_fixed():
    spec, params, x, y = small_net("lcn", depth=3)
    ctx, _, _ = context(params, x, y)
    rule = get_rule("fa")
    state = rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(0), DT)
    first = rule.learning_signals(ctx, state)
    B = [b.clone() for b in state["B_tree"]]
    assert [b.shape for b in B] == [w.shape for w in params.weights[1:]]  # untied like the lcn's W
    again = rule.learning_signals(ctx, state)
    assert all(torch.equal(a, b) for a, b in zip(B, state["B_tree"]))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert rel_err(first[-1], ctx.bp_signals[-1]) == 0 and rel_err(first[0], ctx.bp_signals[0]) > 1e-2


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
def test_dfa_masked_with_true_weights_is_exactly_bp(arch):
    """With G^l = W^l and G_out = BP's top projection, routing through the true masks is backprop."""
    spec, params, x, y = small_net(arch, depth=3 if arch != "fcn" else 2)
    ctx, _, _ = context(params, x, y)
    signals = get_rule("dfa-masked").learning_signals(ctx, _tree_feedback_from_weights(params, top="beta"))
    for s, b in zip(signals, ctx.bp_signals):
        assert rel_err(s, b) < 1e-12
    unmasked = get_rule("dfa-masked", masked=False).learning_signals(ctx, _tree_feedback_from_weights(params, "beta"))
    assert rel_err(unmasked[0], ctx.bp_signals[0]) > 1e-3


@pytest.mark.parametrize("name", ["dfa-masked", "fa"])
@pytest.mark.parametrize("arch", ["cnn", "lcn"])
def test_tree_routing_a_lower_position_receives_only_from_its_ancestors(name, arch):
    """Silence every unit of layer L-1 but those at position q (mask 0): layer L-2 then receives an error only
    at q's children s q .. s q + s - 1 (a dense DFA matrix would reach every position)."""
    spec, params, x, y = small_net(arch, depth=4, s=2)
    ctx, _, _ = context(params, x, y)
    q, s = 1, spec.s
    a = ctx.pre_activations[2].detach().clone()  # a^3, the layer L-1 = 3 of 4
    keep = torch.zeros_like(a, dtype=torch.bool)
    keep[:, :, q] = True
    ctx.pre_activations = [*ctx.pre_activations[:2], torch.where(keep, a.abs() + 1.0, -a.abs() - 1.0),
                           ctx.pre_activations[3]]
    rule = get_rule(name)
    state = rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(0), DT)
    L2 = rule.learning_signals(ctx, state)[1]  # layer 2: positions 0..3, q's children are 2, 3
    children = list(range(s * q, s * q + s))
    others = [p for p in range(L2.shape[-1]) if p not in children]
    assert L2[:, :, others].abs().max() == 0
    assert L2[:, :, children].abs().max() > 0


def test_dfa_masked_differs_from_its_unmasked_twin_only_below_the_top():
    spec, params, x, y = small_net("cnn", depth=3)
    ctx, _, _ = context(params, x, y)
    state = get_rule("dfa-masked").init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(0), DT)
    masked = get_rule("dfa-masked").learning_signals(ctx, state)
    plain = get_rule("dfa-masked", masked=False).learning_signals(ctx, state)
    assert rel_err(masked[-1], plain[-1]) == 0
    assert rel_err(masked[0], plain[0]) > 1e-3


def test_bad_options():
    with pytest.raises(ConfigError):
        get_rule("bp-unmasked", mask_constant="zero")
    with pytest.raises(ConfigError):
        get_rule("dfa-masked", masked="yes")
    with pytest.raises(ConfigError, match="takes no option"):
        get_rule("bp", feedback_shape="shared")


def test_missing_context_field_is_a_clear_error():
    spec, params, x, y = small_net("cnn")
    ctx, _, _ = context(params, x, y)
    ctx.bp_signals = None
    with pytest.raises(ConfigError, match="bp_signals"):
        get_rule("bp").learning_signals(ctx, {})
