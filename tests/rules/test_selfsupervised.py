"""Layer-wise self-supervised rules: explicit learning signals and predictor updates vs autograd."""

import itertools
import math

import pytest
import torch

from spiking_rhm.errors import ConfigError, SpikingRHMError
from spiking_rhm.rules import LearningContext, available_rules, get_rule

DT = torch.float64
SSL_RULES = ["clapp", "clapp-dfb", "clapp-both", "infonce", "vicreg"]
PAIRS = ["sibling", "mask", "resample"]
SCORINGS = ["position", "flat", "pooled"]
V, S, WIDTHS = 5, 2, (6, 5, 4)  # input [B, v, s^3]; three conv layers of filter = stride = s


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


class TinyCNN:
    """h^l = relu(conv(h^{l-1}.detach(), W^l) / sqrt(fan_in)), filter = stride = s (the RHM CNN)."""

    def __init__(self, seed=0):
        gen = torch.Generator().manual_seed(seed)
        fan = [V] + list(WIDTHS[:-1])
        self.W = [torch.randn(h, c, S, generator=gen, dtype=DT, requires_grad=True) for h, c in zip(WIDTHS, fan)]

    def forward(self, x):
        pre, pres, layers = x, [], []
        for W in self.W:
            pre = pre.detach()
            pres.append(pre)
            a = torch.nn.functional.conv1d(pre, W, stride=S) / math.sqrt(W.shape[1] * S)
            layers.append(torch.relu(a))
            pre = layers[-1]
        return pres, layers

    def shapes(self, d=S**3):
        return [(h, d // S ** (l + 1)) for l, h in enumerate(WIDTHS)]

    def explicit_dW(self, pres, layers, signals):
        """Three-factor form: dW_jik = sum_{b,p} L_jp rho'(a_jp) pre_i(p s + k) / sqrt(fan_in)."""
        out = []
        for W, pre, h, L in zip(self.W, pres, layers, signals):
            patches = pre.unfold(2, S, S)  # [B, C_in, P, s]
            post = (h > 0).to(DT)  # rho'(a) for ReLU
            out.append(torch.einsum("bjp,bips->jis", L * post, patches) / math.sqrt(W.shape[1] * S))
        return out


def batch(seed, n=8):
    gen = torch.Generator().manual_seed(seed)
    symbols = torch.randint(0, V, (n, S**3), generator=gen)
    return torch.nn.functional.one_hot(symbols, V).transpose(1, 2).to(DT)


def make(rule_name, seed=0, n=8, **options):
    rule = get_rule(rule_name, **options)
    net = TinyCNN(seed)
    state = rule.init_state(net.shapes(), n_out=3, generator=torch.Generator().manual_seed(seed + 1), dtype=DT)
    x = batch(seed + 2, n)
    pres, layers = net.forward(x)
    positive = None
    if rule.positive_view_levels(len(WIDTHS)) is not None:
        with torch.no_grad():
            positive = [h.detach() for h in net.forward(batch(seed + 3, n))[1]]  # a stand-in second view
    return rule, net, state, pres, layers, LearningContext(layers=layers, positive=positive)


CASES = [(r, p, "position") for r, p in itertools.product(SSL_RULES, PAIRS)] + [
    (r, p, sc) for r in ("clapp-both", "infonce", "vicreg") for p in ("sibling", "resample")
    for sc in ("flat", "pooled")]


@pytest.mark.parametrize("rule_name,pairs,scoring", CASES)
def test_signal_equals_autograd_of_local_loss(rule_name, pairs, scoring):
    rule, net, state, pres, layers, ctx = make(rule_name, pairs=pairs, scoring=scoring)
    signals = rule.learning_signals(ctx, state)
    losses = rule.local_losses(ctx, state)
    assert len(signals) == len(losses) == len(WIDTHS)
    for l, (L, ell, h) in enumerate(zip(signals, losses, layers), 1):
        assert ell.dim() == 0 and L.shape == h.shape
        (auto,) = torch.autograd.grad(ell, h, retain_graph=True)
        assert auto.abs().max() > 0, f"layer {l}: zero gradient"
        assert rel_err(L, auto) < 1e-5, f"layer {l}"

    # the full weight update through the conv layers: L x rho'(a) x pre patches == autograd w.r.t. W
    explicit = net.explicit_dW(pres, layers, signals)
    for l, (ell, W, dW) in enumerate(zip(losses, net.W, explicit), 1):
        (auto,) = torch.autograd.grad(ell, W, retain_graph=True)
        assert dW.abs().max() > 0, f"layer {l}: zero weight update"
        assert rel_err(dW, auto) < 1e-5, f"layer {l}"


@pytest.mark.parametrize("rule_name,pairs", [("clapp", "sibling"), ("clapp-both", "mask"), ("infonce", "resample"),
                                             ("vicreg", "sibling"), ("clapp-dfb", "resample")])
@pytest.mark.parametrize("decay", [0.0, 0.3])
def test_predictor_update_is_minus_lr_autograd(rule_name, pairs, decay):
    rule, net, state, pres, layers, ctx = make(rule_name, pairs=pairs, predictor_decay=decay)
    preds = [{k: B.clone().requires_grad_(True) for k, B in layer.items()} for layer in state["predictors"]]
    losses = rule.local_losses(ctx, state._replace(predictors=preds))
    lr = 0.7
    new = rule.update_state(ctx, state, lr)
    for l, (ell, layer) in enumerate(zip(losses, preds)):
        keys = sorted(layer)
        grads = torch.autograd.grad(ell, [layer[k] for k in keys], retain_graph=True)
        for key, g in zip(keys, grads):
            old = state["predictors"][l][key]
            expected = old - lr * (g + decay * old)
            assert (new["predictors"][l][key] - old).abs().max() > 0, (l, key)
            assert rel_err(new["predictors"][l][key] - old, expected - old) < 1e-5, (l, key)
    assert new["pairs"] is state["pairs"]  # static pair layout is carried over


@pytest.mark.parametrize("rule_name", ["clapp", "clapp-dfb"])
def test_clapp_gamma_is_one_scalar_per_sample_and_site(rule_name):
    """L = -(gamma+ B c+ + gamma- B c-) / n with gamma+ in {0, 1}, gamma- in {-1, 0} shared by all neurons."""
    rule, net, state, pres, layers, ctx = make(rule_name, pairs="resample", n=10)
    signals = rule.learning_signals(ctx, state)
    for l in range(1, len(WIDTHS) + 1):
        ((key, g_pos, g_neg, pred, pred_neg),) = rule.broadcast_factors(ctx, state, l)
        B_, N = g_pos.shape
        assert g_pos.shape == g_neg.shape == (layers[l - 1].shape[0], layers[l - 1].shape[2])
        assert set(g_pos.unique().tolist()) <= {0.0, 1.0} and set(g_neg.unique().tolist()) <= {-1.0, 0.0}
        # gates against scores computed here: u = sum_j z_j (B c)_j, hinge active iff y u < 1
        h = layers[l - 1].detach()
        u_pos, u_neg = (h * pred).sum(1), (h * pred_neg).sum(1)
        assert torch.equal(g_pos, (u_pos < 1).to(DT)) and torch.equal(g_neg, -(u_neg > -1).to(DT))
        # the dendritic term is B c with c from the positive view (same layer) or the top layer (dfb)
        c = ctx.positive[l - 1] if rule_name == "clapp" or l == len(WIDTHS) else ctx.positive[-1]
        B = state["predictors"][l - 1][key]
        torch.testing.assert_close(pred, torch.einsum("ij,bjn->bin", B, c.reshape(B_, B.shape[1], -1).expand(
            -1, -1, N)))
        torch.testing.assert_close(signals[l - 1], -(g_pos[:, None] * pred + g_neg[:, None] * pred_neg) / (B_ * N))
        assert 0 < g_pos.sum() and g_neg.sum() < 0  # both gates open somewhere on random input


@pytest.mark.parametrize("rule_name", SSL_RULES)
@pytest.mark.parametrize("pairs", PAIRS)
def test_a_few_steps_lower_the_local_losses(rule_name, pairs):
    """Explicit updates of W (L x rho' x pre) and of the predictors on a fixed batch lower each layer's loss."""
    rule, net, state, pres, layers, ctx = make(rule_name, pairs=pairs, n=16)
    x, x_pos = batch(2, 16), batch(3, 16)

    def context():
        pres, layers = net.forward(x)
        positive = None if ctx.positive is None else [h.detach() for h in net.forward(x_pos)[1]]
        return pres, layers, LearningContext(layers=layers, positive=positive)

    with torch.no_grad():
        before = [ell.item() for ell in rule.local_losses(context()[2], state)]
    lr = 0.05
    for _ in range(30):
        pres, layers, c = context()
        signals = rule.learning_signals(c, state)
        dW = net.explicit_dW(pres, layers, signals)
        state = rule.update_state(c, state, lr)
        with torch.no_grad():
            for W, g in zip(net.W, dW):
                W -= lr * g
    with torch.no_grad():
        after = [ell.item() for ell in rule.local_losses(context()[2], state)]
    assert all(a < b for a, b in zip(after, before)), (before, after)


def test_registry_and_attributes():
    rules = available_rules()
    for name in SSL_RULES:
        cls = rules[name]
        assert cls.family == "self-supervised" and cls.supervised is False and cls.local is True
        assert cls.summary and cls.default_lr > 0
        assert cls.option_defaults["pairs"] == "sibling"  # default uses only the P training inputs
        assert get_rule(name).positive_view_levels(3) is None
    assert get_rule("clapp", pairs="resample").positive_view_levels(3) == [2, 1, 0]
    assert get_rule("vicreg", pairs="resample", resample_level=1).positive_view_levels(3) == [1, 1, 1]
    use = get_rule("clapp", pairs="resample").data_use(3)
    assert use["uses_grammar"] and use["label_information"]  # R_0 for the top layer = same-class input
    assert not get_rule("clapp").data_use(3)["uses_grammar"]


@pytest.mark.parametrize("options,match", [
    ({"pairs": "views"}, "unknown pair mode 'views'"),
    ({"scoring": "max"}, "unknown scoring 'max'"),
    ({"negatives": 3}, "takes no option"),
    ({"resample_level": -1}, "resample_level"),
    ({"mask_fraction": 1.0}, "mask_fraction"),
    ({"predictor_decay": -0.1}, "predictor_decay"),
])
def test_bad_options_are_clear_errors(options, match):
    with pytest.raises(SpikingRHMError, match=match):
        get_rule("clapp", **options)


def test_objective_option_errors_and_scoping():
    with pytest.raises(ConfigError, match="temperature"):
        get_rule("infonce", temperature=0)
    with pytest.raises(ConfigError, match="var_target"):
        get_rule("vicreg", var_target=0)
    with pytest.raises(ConfigError, match="takes no option"):
        get_rule("clapp", temperature=0.5)  # an InfoNCE option is not a CLAPP option


def test_context_errors():
    rule, net, state, pres, layers, ctx = make("clapp", pairs="resample")
    with pytest.raises(ConfigError, match="positive view"):
        rule.learning_signals(LearningContext(layers=layers), state)
    with pytest.raises(ConfigError, match="batch of >= 2"):
        rule.learning_signals(LearningContext(layers=[h[:1] for h in layers],
                                              positive=[h[:1] for h in ctx.positive]), state)
    with pytest.raises(ConfigError, match="expected"):
        rule.local_losses(LearningContext(layers=layers[::-1], positive=ctx.positive), state)
    with pytest.raises(ConfigError, match="resample_level"):
        get_rule("clapp", pairs="resample", resample_level=5).init_state(net.shapes(), 3, torch.Generator())
