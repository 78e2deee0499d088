"""e-prop on the Norse back end (Bellec et al. 2020): the update against the paper's equations, written out
by hand on a tiny network, and its rate limit (the spiking update approaches the rate update as T grows)."""

import math

import pytest
import torch

pytest.importorskip("norse")

from norse_helpers import NC, OLD_POINT, S, V, cosine, rate_update, small_batch  # noqa: E402
from spiking_rhm.backends.norse.inputs import SpikeEncoder  # noqa: E402
from spiking_rhm.backends.norse.learners import EpropLearner, PresentedBatch, make_learner  # noqa: E402
from spiking_rhm.backends.norse.network import build_parameters, build_spec, init_weights  # noqa: E402
from spiking_rhm.rules import get_rule  # noqa: E402

pytestmark = pytest.mark.norse
L = 2


def _eprop(T, width, n, code="regular", tau_readout=2e-2, seed=0, plasticity="window", every=1, **point):
    rhm, sample, x, target = small_batch(n)
    enc = SpikeEncoder(code, T, 1e-3, 200.0, V)
    spec = build_spec("cnn", enc.channels, S**L, S, L, width, NC)
    params = build_parameters(spec, enc.nominal_rate, tau_readout=tau_readout, readout="counts", **point)
    weights = init_weights(spec, torch.Generator().manual_seed(seed))
    learner = make_learner("eprop", {}, spec, params, torch.Generator().manual_seed(seed + 1), scale="none",
                           plasticity=plasticity, update_every=every)
    batch = PresentedBatch(enc(x, torch.Generator().manual_seed(7)), target)
    return learner, spec, params, weights, batch, x, target


def test_make_learner_picks_eprop():
    learner, *_ = _eprop(5, 4, 2)
    assert isinstance(learner, EpropLearner)


def test_eprop_update_follows_the_published_equations():
    """Hand loop of Bellec et al. (2020), eqs. for LIF neurons with a leaky readout, over every (t, b, p, j, i):

        zbar_i(t) = a zbar_i(t-1) + z_i(t);  e_ji(t) = psi_j(t) zbar_i(t);  ebar_ji(t) = kappa ebar_ji(t-1) + e_ji(t)
        y_k(t) = kappa y_k(t-1) + sum_j W_jk zbar_p z_j(t);  L_j(t) = sum_k B_jk (softmax(y'(t)) - y*)_k
        Delta W_ji = -sum_t L_j(t) ebar_ji(t)

    The back end's normalisations are constants: its trace is ``(1 - a)(1 - kappa) / rho_in`` times ebar, its
    logits ``y' = (1 - kappa) y / ((1 - kappa^(t+1)) rho_h H)`` (mean-field readout), its signal ``/ (H N)``
    and the update ``/ (T sqrt(K))``."""
    T, H, N = 12, 3, 2
    learner, spec, params, weights, batch, *_ = _eprop(T, H, N, tau_readout=15e-3, **OLD_POINT)  # kappa != tau_elig's
    z_rec, v_rec = {0: [], 1: []}, {0: [], 1: []}

    def recorder(t, l, values):
        z_rec[l].append(values["z"].clone())
        v_rec[l].append(values["v_pre"].clone())

    res = learner.step(weights, batch, 0.0, recorder=recorder)
    a = math.exp(-params.dt * params.pre.tau_pre_inv)
    kappa = math.exp(-params.dt * params.tau_readout_inv)
    beta_psi, v_th = params.psi.beta, params.psi.v_th
    B_fb = learner.rule_state["B"]
    pre_spikes = [[batch.spikes[t].transpose(1, 2).reshape(N, spec.positions[1], -1) for t in range(T)],
                  [z_rec[0][t].reshape(N, spec.positions[2], -1) for t in range(T)]]
    target = batch.target
    y = [[0.0] * NC for _ in range(N)]
    for l in range(L):
        Pl, K = spec.positions[l + 1], spec.fan_in[l]
        zbar = [[[0.0] * K for _ in range(Pl)] for _ in range(N)]
        ebar = [[[[0.0] * K for _ in range(H)] for _ in range(Pl)] for _ in range(N)]
        dW = [[0.0] * K for _ in range(H)]
        y = [[0.0] * NC for _ in range(N)]
        for t in range(T):
            for b in range(N):  # the readout, the paper's leaky sum of top-layer spikes (position mean)
                for k in range(NC):
                    drive = sum(float(weights.readout[j, k]) * float(z_rec[1][t][b, :, j].mean()) for j in range(H))
                    y[b][k] = kappa * y[b][k] + drive
            for b in range(N):
                logits = torch.tensor([(1 - kappa) * y[b][k] / ((1 - kappa ** (t + 1)) * params.rho_hidden * H)
                                       for k in range(NC)], dtype=torch.float64)
                err = torch.softmax(logits, 0) - target[b].double()
                for p in range(Pl):
                    for i in range(K):
                        zbar[b][p][i] = a * zbar[b][p][i] + float(pre_spikes[l][t][b, p, i])
                    for j in range(H):
                        psi = 1.0 / (1.0 + beta_psi * abs(float(v_rec[l][t][b, p, j]) - v_th)) ** 2
                        Lj = sum(float(B_fb[l][j * Pl + p, k]) * float(err[k]) for k in range(NC))
                        for i in range(K):
                            ebar[b][p][j][i] = kappa * ebar[b][p][j][i] + psi * zbar[b][p][i]
                            dW[j][i] += Lj * ebar[b][p][j][i]
        const = (1 - a) * (1 - kappa) / params.rho_in[l] / (H * N) / (T * math.sqrt(K))
        expected = torch.tensor(dW, dtype=torch.float64) * const
        assert expected.abs().max() > 0
        torch.testing.assert_close(res.grads[l].double(), expected, rtol=2e-4, atol=1e-9)


def test_eprop_online_applies_what_the_window_form_sums():
    """With lr = 0 the online form's total equals the window form's (same spikes, same signals)."""
    T = 15
    window, _, _, weights, batch, *_ = _eprop(T, 8, 4)
    online, *_ = _eprop(T, 8, 4, plasticity="online")
    g_w = window.step(weights, batch, 0.0).grads
    res = online.step(weights, batch, 0.0)
    assert res.applied
    for a, b in zip(g_w, res.grads):
        torch.testing.assert_close(a, b)


def test_eprop_rate_limit_is_dfa():
    """On the rate back end e-prop's signal is DFA's with the same feedback draws (one time step, psi -> rho')."""
    from spiking_rhm.rules.base import LearningContext

    rhm, sample, x, target = small_batch(8)
    shapes = [(4, 2), (4, 1)]
    gen0 = torch.Generator().manual_seed(2)
    ctx = LearningContext(layers=[torch.rand(8, H, P, generator=gen0) for H, P in shapes],
                          output=torch.randn(8, NC, generator=gen0), target=target)
    gen = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    for shape in ("per-position", "shared"):
        e, d = get_rule("eprop", feedback_shape=shape), get_rule("dfa", feedback_shape=shape)
        se, sd = e.init_state(shapes, NC, gen()), d.init_state(shapes, NC, gen())
        for a, b in zip(e.learning_signals(ctx, se), d.learning_signals(ctx, sd)):
            assert torch.equal(a, b)


def test_spiking_eprop_update_converges_to_the_rate_update():
    """Same weights and inputs (Bernoulli code as the dfa test): cosine of the spiking e-prop update with the rate
    e-prop (= dfa) update grows with T (tau_readout = T dt / 3, so the leaky readout settles within the window)."""
    rhm, sample, x, target = small_batch(64)
    cos = {}
    for T in (10, 300):
        learner, spec, params, weights, batch, *_ = _eprop(T, 32, 64, code="rate", tau_readout=T * 1e-3 / 3,
                                                           **OLD_POINT)
        learner.scale = "expected"
        res = learner.step(weights, batch, 0.0)
        ref, _ = rate_update("eprop", x, target, weights)
        cos[T] = [cosine(-g, r) for g, r in zip(res.grads, ref)]
    print("eprop cosine", cos)
    for short, long in zip(cos[10], cos[300]):
        assert long > 0.75
        assert long > short - 0.02
    assert sum(cos[300]) > sum(cos[10]) + 0.05
