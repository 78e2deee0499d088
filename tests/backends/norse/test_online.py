"""Online (per-step) plasticity of the Norse learners: delayed modulators bridged by the trace.

``spiking.plasticity = online``: a learning signal every k steps, delivered d steps later, multiplied with
the eligibility of the delivery step, applied to the weights inside the window.
"""

import math

import pytest
import torch

pytest.importorskip("norse")

from norse_helpers import NC, OLD_POINT, S, V, WIDTH, small_batch  # noqa: E402
from spiking_rhm.backends.norse.inputs import SpikeEncoder  # noqa: E402
from spiking_rhm.backends.norse.learners import PresentedBatch, ThreeFactorLearner  # noqa: E402
from spiking_rhm.backends.norse.network import build_parameters, build_spec, init_weights  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402
from spiking_rhm.rules.base import Capabilities  # noqa: E402

pytestmark = pytest.mark.norse
L = 2


def _setup(T, n=8, seed=0, **point):
    rhm, sample, x, target = small_batch(n, seed=seed)
    enc = SpikeEncoder("regular", T, 1e-3, 200.0, V)
    spec = build_spec("cnn", enc.channels, S**L, S, L, WIDTH, NC)
    params = build_parameters(spec, enc.nominal_rate, **point)
    weights = init_weights(spec, torch.Generator().manual_seed(seed))
    batch = PresentedBatch(enc(x, torch.Generator().manual_seed(3)), target)
    return spec, params, weights, batch


def _learner(spec, params, rule="dfa", **kw):
    return ThreeFactorLearner(rule, {}, spec, params, torch.Generator().manual_seed(1), **kw)


def _copy(weights):
    return weights._replace(hidden=[w.clone() for w in weights.hidden], readout=weights.readout.clone())


class _CountingSignal:
    """Stand-in rule: the n-th learning signal of a window is ``(n + 1)`` everywhere (isolates trace and timing)."""

    needs = frozenset()
    capabilities = Capabilities()

    def __init__(self):
        self.calls = 0

    def learning_signals(self, ctx, state):
        self.calls += 1
        return [torch.full_like(h, float(self.calls)) for h in ctx.layers]

    def update_state(self, ctx, state, lr):
        return state


@pytest.mark.parametrize("every, delay", [(4, 0), (4, 3), (1, 2), (5, 7)])
def test_delayed_modulator_multiplies_the_trace_at_delivery(every, delay):
    """Signal n formed at step s_n (every k-th step and the last), delivered at s_n + d: the update is
    ``sum_n (n + 1) sum_{b,p} e(s_n + d) / (n_u sqrt(K))`` with e the hand-computed closed-form trace
    ``e(t) = (1 - k) sum_{t' <= t, t' < T} k^(t - t') psi(t') xbar(t') / rho_in`` (no plasticity after the window)."""
    T = 12
    spec, params, weights, batch = _setup(T, **OLD_POINT)
    learner = _learner(spec, params, plasticity="online", update_every=every, modulator_delay=delay, scale="none")
    learner.rule, learner.rule_state = _CountingSignal(), {}
    psi, xbar = {0: [], 1: []}, {0: [], 1: []}

    def recorder(t, l, values):
        if t < T:
            psi[l].append(values["psi"].clone())
            xbar[l].append(values["xbar"].clone() / params.rho_in[l])

    res = learner.step(weights, batch, lr=0.0, recorder=recorder)
    points = [t for t in range(T) if (t + 1) % every == 0 or t == T - 1]
    n_u = math.ceil(T / every)
    assert learner.rule.calls == len(points)
    k = math.exp(-params.dt * params.elig.tau_elig_inv)
    for l in range(L):
        P = torch.stack(psi[l])  # [T, N, P, H]
        X = torch.stack(xbar[l])  # [T, N, P, K]
        expected = torch.zeros_like(res.grads[l])
        for n, s in enumerate(points):
            t = s + delay
            w = torch.tensor([(1 - k) * k ** (t - tp) for tp in range(T) if tp <= t], dtype=P.dtype)
            e = torch.einsum("t,tnph,tnpk->nphk", w, P[:len(w)], X[:len(w)])
            expected += (n + 1) * e.sum((0, 1)) / (n_u * math.sqrt(spec.fan_in[l]))
        assert expected.norm() > 0
        torch.testing.assert_close(res.grads[l], expected, rtol=1e-4, atol=1e-7)
    assert res.applied


def test_online_with_one_update_per_window_is_the_window_form():
    """k >= T, d = 0: one signal at the end of the window times e(T): the window update, and the weights move
    by torch SGD's step (momentum buffer = g on the first step)."""
    T, lr = 20, 0.3
    spec, params, weights, batch = _setup(T)
    window = _learner(spec, params, eligibility="synapse").step(_copy(weights), batch, lr)
    w_online = _copy(weights)
    online = _learner(spec, params, plasticity="online", update_every=T, momentum=0.9).step(w_online, batch, lr)
    for g_w, g_o, w0, w1 in zip(window.grads, online.grads, weights.hidden, w_online.hidden):
        torch.testing.assert_close(g_o, g_w, rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(w1, w0 - lr * g_w, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(online.grad_readout, window.grad_readout)
    torch.testing.assert_close(online.logits, window.logits)


def test_weights_change_inside_the_window():
    """Per-step updates: the spikes equal a frozen network's up to the first delivery and differ after it."""
    T, every = 16, 4
    spec, params, weights, batch = _setup(T, n=16)
    trains = {}
    for lr in (0.0, 50.0):
        z = []
        learner = _learner(spec, params, plasticity="online", update_every=every)
        learner.step(_copy(weights), batch, lr, recorder=lambda t, l, v: z.append((t, l, v["z"].clone())))
        trains[lr] = z
    same = [torch.equal(a[2], b[2]) for a, b in zip(trains[0.0], trains[50.0])]
    first_after = [i for i, (t, l, _) in enumerate(trains[0.0]) if t == every]
    assert all(same[:first_after[0]])  # steps 0 .. k-1: the first update arrives at the end of step k-1
    assert not all(same[first_after[0]:])


def test_online_momentum_accumulates_across_updates():
    """Two updates in a window with momentum mu: W = W0 - eta (g1 + (mu g1 + g2))."""
    T, lr, mu = 8, 0.2, 0.5
    spec, params, weights, batch = _setup(T)
    learner = _learner(spec, params, plasticity="online", update_every=4, momentum=mu, scale="none")
    learner.rule, learner.rule_state = _CountingSignal(), {}
    grads = []
    orig = learner._apply
    learner._apply = lambda w, g, eta: (grads.append([x.clone() for x in g]), orig(w, g, eta))
    w = _copy(weights)
    learner.step(w, batch, lr)
    assert len(grads) == 2
    for l in range(L):
        g1, g2 = grads[0][l], grads[1][l]
        torch.testing.assert_close(w.hidden[l], weights.hidden[l] - lr * (g1 + (mu * g1 + g2)), rtol=1e-5, atol=1e-7)


def test_online_refusals_are_config_errors():
    spec, params, *_ = _setup(10)
    with pytest.raises(ConfigError, match="plasticity"):
        _learner(spec, params, plasticity="sometimes")
    with pytest.raises(ConfigError, match="update_every"):
        _learner(spec, params, plasticity="online", update_every=0)
    with pytest.raises(ConfigError, match="online"):
        ThreeFactorLearner("clapp", {"pairs": "resample"}, spec, params, torch.Generator(), plasticity="online")
    from spiking_rhm.backends.norse.learners import BPTTLearner

    with pytest.raises(ConfigError, match="window"):
        BPTTLearner("bp", {}, spec, params, torch.Generator(), plasticity="online")


def test_config_validates_online_settings():
    from spiking_rhm.config import RunConfig

    for bad in ({"plasticity": "online-ish"}, {"update_every": 0}, {"modulator_delay": -1}):
        with pytest.raises(ConfigError, match="spiking"):
            RunConfig.from_dict({"backend": "norse", "spiking": bad})


def test_modulator_delay_is_seconds_in_whole_steps_for_online_norse():
    """One setting for both back ends: seconds in the config, d = delay / dt steps in the Norse learner."""
    from spiking_rhm.backends.norse.train import NorseSetup
    from spiking_rhm.config import RunConfig

    base = {"backend": "norse", "rule": "dfa", "P": 16, "P_test": 8, "net": {"width": 4},
            "rhm": {"v": 4, "m": 2, "n_c": 2, "s": 2, "L": 2}}
    dt = RunConfig.from_dict(base).spiking.dt
    cfg = RunConfig.from_dict({**base, "spiking": {"plasticity": "online", "modulator_delay": 3 * dt}})
    assert NorseSetup(cfg).learner.modulator_delay == 3
    with pytest.raises(ConfigError, match="not a whole number of time steps"):
        RunConfig.from_dict({**base, "spiking": {"plasticity": "online", "modulator_delay": 2.5 * dt}})
    with pytest.raises(ConfigError, match="needs --backend brian2"):  # a delay after the window: Brian2's
        RunConfig.from_dict({**base, "spiking": {"modulator_delay": 3 * dt}})
