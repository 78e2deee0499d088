"""dfa, sdfa, drtp, dkp: explicit signals vs autograd, DFA == BP in linear toy networks, DKP's B update."""

import pytest
import torch

from rate_models.networks import explicit_update, forward
from spiking_rhm.errors import ConfigError
from spiking_rhm.rules import get_rule
from spiking_rhm.rules.feedback import FeedbackState

from rate_helpers import DT, context, end_to_end_bp, rel_err, small_net

RULES = ["dfa", "sdfa", "drtp", "dkp"]


@pytest.mark.parametrize("shape", ["per-position", "shared"])
@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
@pytest.mark.parametrize("name", RULES)
def test_explicit_update_equals_autograd_of_local_loss(name, arch, shape):
    spec, params, x, y = small_net(arch, depth=3 if arch != "fcn" else 2)
    rule = get_rule(name, feedback_shape=shape)
    state = rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(3), DT)
    ctx, act, _ = context(params, x, y)
    signals = rule.learning_signals(ctx, state)
    for l, (L, ell) in enumerate(zip(signals, rule.local_losses(ctx, state)), 1):
        d_h = torch.autograd.grad(ell, ctx.layers[l - 1], retain_graph=True)[0]
        assert rel_err(d_h, L) < 1e-5
        d_W = torch.autograd.grad(ell, params.weights[l - 1], retain_graph=True)[0]
        explicit = explicit_update(L, act, l, params)
        assert explicit.abs().max() > 0
        assert rel_err(explicit, -d_W) < 1e-5
        if shape == "shared":  # the same projection at every position
            assert torch.equal(L, L[..., :1].expand_as(L))


def test_signals_follow_the_broadcast_vector():
    spec, params, x, y = small_net("cnn")
    ctx, _, _ = context(params, x, y)
    state = get_rule("dfa").init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(0), DT)
    B, (H, P) = state["B"][0], spec.layer_shapes()[0]
    n = x.shape[0]
    e = ctx.error
    for name, u in [("dfa", e), ("sdfa", torch.sign(e)), ("drtp", ctx.target), ("dkp", e)]:
        L = get_rule(name).learning_signals(ctx, state)[0]
        torch.testing.assert_close(L, (u @ B.t()).reshape(n, H, P) / (H * n))


def _bp_feedback_matrices(params):
    """B^l = d(mean_p h^L . beta)/d h^l, flattened [H P_l, n_out] -- constant in a linear network."""
    spec = params.spec
    x = torch.zeros(1, spec.v, spec.d, dtype=DT)
    x[:, 0, :] = 1
    _, act = forward(params, x)
    chl = [*act.inputs[1:], act.readout_input]
    top = act.readout_input.mean(1) @ params.readout
    cols = []
    for k in range(spec.n_out):
        grads = torch.autograd.grad(top[0, k], chl, retain_graph=True)
        cols.append([g[0].t().reshape(-1) for g in grads])  # [H, P] flattened
    return [torch.stack([c[l] for c in cols], 1).detach() for l in range(spec.depth)]


@pytest.mark.parametrize("arch,depth", [("fcn", 1), ("fcn", 3), ("cnn", 1), ("cnn", 3), ("lcn", 3)])
def test_dfa_with_product_feedback_reproduces_bp_in_a_linear_network(arch, depth):
    """Linear toy network (all pre-activations > 0): DFA with B^l = (W^L...W^{l+1})^T beta is BP exactly."""
    spec, params, x, y = small_net(arch, depth=depth, positive_weights=True)
    ctx, act, _ = context(params, x, y)
    assert all(bool((a > 0).all()) for a in ctx.pre_activations)
    rule = get_rule("dfa")
    signals = rule.learning_signals(ctx, FeedbackState(_bp_feedback_matrices(params), spec.layer_shapes()))
    for l, g in enumerate(end_to_end_bp(params, x, y), 1):
        assert rel_err(-explicit_update(signals[l - 1], act, l, params), g) < 1e-10


def test_single_layer_dfa_with_readout_feedback_is_bp_in_a_relu_network():
    spec, params, x, y = small_net("fcn", depth=1)
    ctx, act, _ = context(params, x, y)
    state = FeedbackState([params.readout.detach()], spec.layer_shapes())
    L = get_rule("dfa").learning_signals(ctx, state)[0]
    assert rel_err(-explicit_update(L, act, 1, params), end_to_end_bp(params, x, y)[0]) < 1e-10


@pytest.mark.parametrize("shape", ["per-position", "shared"])
def test_dkp_feedback_update_is_the_local_outer_product(shape):
    spec, params, x, y = small_net("cnn", depth=2)
    rule = get_rule("dkp", feedback_shape=shape, feedback_decay=0.1)
    state = rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(0), DT)
    ctx, _, _ = context(params, x, y)
    lr = 0.3
    new = rule.update_state(ctx, state, lr)
    n, e = x.shape[0], ctx.error
    for B_old, B_new, h, (H, P) in zip(state["B"], new["B"], ctx.layers, spec.layer_shapes()):
        flat = h.detach().sum(-1) if shape == "shared" else h.detach().reshape(n, H * P)
        expected = B_old - lr * (torch.einsum("bi,bk->ik", flat, e) / (H * n) + 0.1 * B_old)
        torch.testing.assert_close(B_new, expected)
    # for the top layer of a CNN (P_L = 1) the B update is the readout's own delta-rule step direction
    g_beta = torch.autograd.grad(torch.nn.functional.cross_entropy(forward(params, x)[0], y), params.readout)[0]
    top = torch.einsum("bi,bk->ik", ctx.layers[-1].detach().reshape(n, -1), e) / (spec.width * n)
    torch.testing.assert_close(top, g_beta)


def test_bad_feedback_shape():
    with pytest.raises(ConfigError, match="feedback_shape"):
        get_rule("dfa", feedback_shape="conv")
    with pytest.raises(ConfigError):
        get_rule("dkp", feedback_decay=-1)
