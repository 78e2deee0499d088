"""Branch-local rules (sibling-cca): explicit signals and weight updates vs autograd, the objective's minimiser."""

import math

import pytest
import torch

from rate_models.networks import branch_inputs, branch_pre_activations, forward, init_params, make_spec
from spiking_rhm.errors import ConfigError
from spiking_rhm.rules import LearningContext, available_rules, get_rule
from spiking_rhm.rules.branch import PRIOR_BATCHES, branch_weight_gradient, precondition_

DT = torch.float64


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def _net(arch="cnn", v=5, s=2, depth=3, width=6, bias=False, seed=0):
    spec = make_spec(arch, v, s**depth, s, depth, width, 3, bias)
    params = init_params(spec, torch.Generator().manual_seed(seed), DT)
    for w in params.weights:
        w.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.nn.functional.one_hot(torch.randint(0, v, (9, s**depth), generator=gen), v).transpose(1, 2).to(DT)
    _, act = forward(params, x, cut=True)
    return spec, params, act


def _ctx(spec, params, act):
    return LearningContext(layers=act.post, branches=branch_pre_activations(params, act),
                           branch_inputs=branch_inputs(act, spec))


def _state(rule, spec, seed=3):
    return rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(seed), DT, taps=spec.s)


@pytest.mark.parametrize("arch", ["cnn", "lcn"])
def test_branches_sum_to_the_pre_activation(arch):
    spec, params, act = _net(arch, bias=True)
    for z, a, b in zip(branch_pre_activations(params, act), act.pre, params.biases):
        assert z.shape == (a.shape[0], a.shape[1], spec.s, a.shape[2])
        torch.testing.assert_close(z.sum(2) + 0.1 * b.t(), a)


@pytest.mark.parametrize("s,first_layer,shrink,dim,center", [(2, False, 0.25, 4, 0.0), (2, True, 0.0, 6, 1.0),
                                                              (3, True, 0.5, 3, 0.3)])
def test_signal_equals_autograd_of_local_loss(s, first_layer, shrink, dim, center):
    spec, params, act = _net(s=s, depth=2 if s == 3 else 3)
    rule = get_rule("sibling-cca", first_layer=first_layer, shrink=shrink, dim=dim, center=center)
    state = _state(rule, spec)
    ctx = _ctx(spec, params, act)
    losses = rule.local_losses(ctx, state)
    signals = rule.learning_signals(ctx, state)
    for l, (loss, z, L) in enumerate(zip(losses, ctx.branches, signals), 1):
        if l == 1 and not first_layer:
            assert float(L.abs().max()) == 0.0 and float(loss.detach()) == 0.0
            continue
        (g,) = torch.autograd.grad(loss, z, retain_graph=True)
        assert rel_err(L, g) < 1e-10, l


@pytest.mark.parametrize("arch", ["cnn", "lcn"])
def test_explicit_weight_update_equals_autograd(arch):
    """dW = sum L x / sqrt(fan_in) (eligibility = pre-synaptic factor only) == d ell / d W by autograd."""
    spec, params, act = _net(arch)
    rule = get_rule("sibling-cca", dim=4)
    state = _state(rule, spec)
    ctx = _ctx(spec, params, act)
    losses = rule.local_losses(ctx, state)
    signals = rule.learning_signals(ctx, state)
    for l in (2, 3):
        (gW,) = torch.autograd.grad(losses[l - 1], params.weights[l - 1], retain_graph=True)
        explicit = branch_weight_gradient(signals[l - 1], ctx.branch_inputs[l - 1], None, shared=arch == "cnn")
        assert explicit.shape == gW.shape
        assert rel_err(explicit, gW) < 1e-10


def test_preconditioned_update_is_the_gradient_times_q():
    spec, params, act = _net()
    rule = get_rule("sibling-cca", dim=4, whiten=0.1, cov_decay=0.5)
    state = _state(rule, spec)
    ctx = _ctx(spec, params, act)
    assert rule.presynaptic_transforms(state) == [None, None, None]  # nothing seen yet: identity
    state = rule.update_state(ctx, state, lr=1.0)
    state = rule.update_state(ctx, state, lr=1.0)
    Qs = rule.presynaptic_transforms(state)
    assert Qs[0] is None and len(Qs[1]) == spec.s
    # Q = m (C + eps m I)^{-1}, C the running covariance of the tap inputs (two identical batches)
    x = ctx.branch_inputs[1][:, :, 0]  # [B, C, P] tap 0 of layer 2
    X = x.permute(0, 2, 1).reshape(-1, x.shape[1])
    X = X - X.mean(0)
    C = X.T @ X / X.shape[0]
    eye = torch.eye(C.shape[0], dtype=DT)
    # bias-corrected EMA (decay 0.5) of [prior m I worth PRIOR_BATCHES batches, C, C]
    w_prior = PRIOR_BATCHES * 0.5 * 0.5 * 0.5
    C = (w_prior * torch.trace(C) / C.shape[0] * eye + (0.5 * 0.5 + 0.5) * C) / (w_prior + 0.75)
    m = torch.trace(C) / C.shape[0]
    torch.testing.assert_close(Qs[1][0], m * torch.linalg.inv(C + 0.1 * m * eye))
    signals = rule.learning_signals(ctx, state)
    (gW,) = torch.autograd.grad(rule.local_losses(ctx, state)[1], params.weights[1])
    explicit = branch_weight_gradient(signals[1], ctx.branch_inputs[1], Qs[1], shared=True)
    assert rel_err(explicit, precondition_(gW.clone(), Qs[1], spec.s)) < 1e-10


def test_minimiser_soft_thresholds_the_canonical_correlations():
    """Two whitened views with canonical correlations rho: at the minimum of ell the cross map of the
    projected branches has singular values (rho - shrink)_+ (the claim of the module docstring)."""
    gen = torch.Generator().manual_seed(0)
    n, rho, shrink = 40000, torch.tensor([0.9, 0.55, 0.15], dtype=DT), 0.25
    shared = torch.randn(n, 3, generator=gen, dtype=DT)
    x1 = shared * rho.sqrt() + torch.randn(n, 3, generator=gen, dtype=DT) * (1 - rho).sqrt()
    x2 = shared * rho.sqrt() + torch.randn(n, 3, generator=gen, dtype=DT) * (1 - rho).sqrt()
    rule = get_rule("sibling-cca", dim=3, shrink=shrink, first_layer=True)
    state = rule.init_state([(3, 1)], 2, torch.Generator().manual_seed(1), DT, taps=2)
    R = state["projections"][0]
    W = [torch.randn(3, 3, generator=gen, dtype=DT).mul_(0.3).requires_grad_(True) for _ in range(2)]
    opt = torch.optim.LBFGS(W, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = torch.stack([x1 @ W[0].T, x2 @ W[1].T], 2).unsqueeze(-1)  # [n, H, s, 1]
        loss = rule.local_losses(LearningContext(layers=[z.sum(2)], branches=[z]), state)[0]
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    with torch.no_grad():
        X1, X2 = x1 - x1.mean(0), x2 - x2.mean(0)
        A1 = R[0] @ W[0] @ torch.linalg.inv(torch.linalg.cholesky(X1.T @ X1 / n)).T  # whitened coordinates
        A2 = R[1] @ W[1] @ torch.linalg.inv(torch.linalg.cholesky(X2.T @ X2 / n)).T
        got = torch.linalg.svdvals(A1.T @ A2)
    expected = (rho - shrink).clamp_min(0)
    assert torch.allclose(got, expected, atol=0.03), (got, expected)


def test_registry_attributes_and_errors():
    cls = available_rules()["sibling-cca"]
    assert cls.signal_site == "branch" and not cls.supervised and cls.local and cls.family == "self-supervised"
    for bad, match in [({"dim": 0}, "dim"), ({"shrink": -1}, "shrink"), ({"whiten": 0}, "whiten"),
                       ({"cov_decay": 1.0}, "cov_decay"), ({"first_layer": "yes"}, "first_layer"),
                       ({"center": -1}, "center"),
                       ({"pairs": "mask"}, "takes no option")]:
        with pytest.raises(ConfigError, match=match):
            get_rule("sibling-cca", **bad)
    spec, params, act = _net()
    rule = get_rule("sibling-cca", dim=4)
    state = _state(rule, spec)
    with pytest.raises(ConfigError, match="branch"):
        rule.learning_signals(LearningContext(layers=act.post), state)
    with pytest.raises(ConfigError, match="taps"):
        rule.init_state(spec.layer_shapes(), 3, torch.Generator(), DT, taps=1)
    with pytest.raises(ConfigError, match="larger than the layer width"):
        get_rule("sibling-cca", dim=7).init_state(spec.layer_shapes(), 3, torch.Generator(), DT, taps=2)
    with pytest.raises(ConfigError, match="cnn or lcn"):
        branch_inputs(act, make_spec("fcn", 5, 8, 1, 3, 6, 3))


def test_signal_is_zero_mean_over_sites_and_scale_of_batch():
    """Without the homeostatic term the objective is centred: every branch's signal sums to zero over the
    sites; the homeostatic term adds mu mean_sites(a) / n at every site and tap."""
    spec, params, act = _net()
    rule = get_rule("sibling-cca", dim=4, center=0.0)
    L = rule.learning_signals(_ctx(spec, params, act), _state(rule, spec))[2]
    assert L.sum((0, 3)).abs().max() < 1e-12 and L.abs().max() > 0
    assert math.isfinite(float(L.norm()))
    ctx = _ctx(spec, params, act)
    L_mu = get_rule("sibling-cca", dim=4, center=0.5).learning_signals(ctx, _state(rule, spec))[2]
    a = ctx.branches[2].sum(2)  # [B, H, P] pre-activation without bias
    n = a.shape[0] * a.shape[2]
    expected = 0.5 * a.mean((0, 2)) / n
    torch.testing.assert_close((L_mu - L)[:, :, 0, 0], expected.expand(a.shape[0], -1))


# --------------------------------------------------------------------------- sibling-cca-online
def _batch(seed, B=9):
    """A context of the test network on a fresh batch (same weights: seed 0)."""
    spec, params, _ = _net()
    gen = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.one_hot(torch.randint(0, 5, (B, 8), generator=gen), 5).transpose(1, 2).to(DT)
    _, act = forward(params, x)
    return spec, _ctx(spec, params, act)


@pytest.mark.parametrize("center", [0.0, 0.3])
def test_online_signal_without_memory_is_the_batch_signal(center):
    spec, ctx = _batch(1)
    batch = get_rule("sibling-cca", dim=4, center=center)
    online = get_rule("sibling-cca-online", dim=4, center=center, cov_decay=0.0)
    state = _state(online, spec)
    state = online.update_state(_batch(2)[1], state, lr=1.0)  # memory of another batch, forgotten at decay 0
    for a, b in zip(online.learning_signals(ctx, state), batch.learning_signals(ctx, _state(batch, spec))):
        assert rel_err(a, b) < 1e-12 if b.norm() > 0 else a.norm() == 0


def test_online_statistics_are_bias_corrected_running_averages():
    """After batches A then B (decay d): zbar = (d zbar_A + zbar_B) / (1 + d) and C_kk likewise, with the
    centring of each batch by the running mean of its time; the signal uses them (checked at one site)."""
    d = 0.7
    spec, ctx_a = _batch(1)
    _, ctx_b = _batch(2, B=1)  # one sample: 1 site at the top layer
    rule = get_rule("sibling-cca-online", dim=4, center=0.0, cov_decay=d)
    state = rule.update_state(ctx_a, _state(rule, spec), lr=1.0)
    R = state["projections"][2]

    def sites(z):
        return z.permute(2, 0, 3, 1).reshape(z.shape[2], -1, z.shape[1])  # [s, n, H]

    Za, Zb = sites(ctx_a.branches[2]), sites(ctx_b.branches[2])
    za, zb = Za.mean(1), Zb.mean(1)
    zbar = (d * za + zb) / (1 + d)
    auto_a = [((Za[k] - za[k]) @ R[k].T).T @ ((Za[k] - za[k]) @ R[k].T) / Za.shape[1] for k in range(2)]
    auto_b = [((Zb[k] - zbar[k]) @ R[k].T).T @ ((Zb[k] - zbar[k]) @ R[k].T) / Zb.shape[1] for k in range(2)]
    auto = [(d * a + b) / (1 + d) for a, b in zip(auto_a, auto_b)]
    L = rule.learning_signals(ctx_b, state)[2]  # [1, H, 2, 1]
    y = [(Zb[k, 0] - zbar[k]) @ R[k].T for k in range(2)]
    lam = rule.options["shrink"]
    for k in range(2):
        other = 1 - k
        expected = (-2 * y[other] + 2 * y[k] @ auto[other]) @ R[k] + 2 * lam * (Zb[k, 0] - zbar[k])
        torch.testing.assert_close(L[0, :, k, 0], expected, rtol=1e-10, atol=1e-12)
    new = rule.update_state(ctx_b, state, lr=1.0)
    torch.testing.assert_close(new["zbar"][2], zbar)
    torch.testing.assert_close(new["auto"][2], torch.stack(auto))


def test_online_lateral_circuit_learns_the_inverse_the_batch_rule_computes():
    """The anti-Hebbian lateral rule (no inverse) converges to the batch rule's Q = m (C + eps m I)^{-1}."""
    spec, ctx = _batch(1, B=64)
    batch = get_rule("sibling-cca", dim=4, whiten=0.1, cov_decay=0.0)
    expected = batch.presynaptic_transforms(batch.update_state(ctx, _state(batch, spec), lr=1.0))[1]
    online = get_rule("sibling-cca-online", dim=4, whiten=0.1, cov_decay=0.0, lateral_lr=1.0)
    state = _state(online, spec)
    assert online.presynaptic_transforms(state) == [None, None, None]
    first = online.presynaptic_transforms(online.update_state(ctx, state, lr=1.0))[1][0]
    assert rel_err(first, expected[0]) > 0.1  # one step is not the inverse
    for _ in range(4000):
        state = online.update_state(ctx, state, lr=1.0)
    got = online.presynaptic_transforms(state)[1]
    for g, e in zip(got, expected):
        assert rel_err(g, e) < 1e-6


def _smallest_lateral_eigenvalues(rule, steps=1500, every=100):
    """Smallest eigenvalue of layer 2's lateral ``Q_k`` (over taps) every ``every`` samples of a one-sample stream."""
    spec, _ = _batch(0, B=1)
    state, out = _state(rule, spec), []
    for i in range(steps):
        state = rule.update_state(_batch(100 + i, B=1)[1], state, lr=1.0)
        if i % every == every - 1:
            out.append(min(float(torch.linalg.eigvalsh(Q).min()) for Q in state["Q"][1]))
    return out


def test_online_lateral_circuit_stays_positive_definite_at_batch_1_with_the_default_step():
    """One sample moves Q along xc by (lateral_lr / C) |xc|^2 / m, ~lateral_lr on average: at the default (0.5) the
    lateral Q (the eligibility's preconditioner) stays positive definite over a stream of single samples; at
    lateral_lr = 1 the samples of large input power overshoot and Q turns indefinite."""
    assert get_rule("sibling-cca-online").options["lateral_lr"] == 0.5
    assert min(_smallest_lateral_eigenvalues(get_rule("sibling-cca-online", dim=4))) > 0
    assert min(_smallest_lateral_eigenvalues(get_rule("sibling-cca-online", dim=4, lateral_lr=1.0))) < -0.1


def test_online_rule_accepts_one_sample_and_refuses_autograd_and_bad_options():
    spec, ctx = _batch(3, B=1)
    rule = get_rule("sibling-cca-online", dim=4)
    state = rule.update_state(ctx, _state(rule, spec), lr=1.0)
    for L in rule.learning_signals(ctx, state):
        assert torch.isfinite(L).all()
    with pytest.raises(ConfigError, match="no batch loss"):
        rule.local_losses(ctx, state)
    for bad in (0, 3, "x", True):
        with pytest.raises(ConfigError, match="lateral_lr"):
            get_rule("sibling-cca-online", lateral_lr=bad)
