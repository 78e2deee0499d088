"""Shared helpers of the Norse back-end tests: a small spiking setup and its rate twin.

The rate twin is ``rate_models.networks`` with the *same* weights and one-hot inputs; its
explicit update is the reference the spiking update must approach as T grows.
"""

from __future__ import annotations


import numpy as np
import torch

from spiking_rhm.backends.norse.inputs import SpikeEncoder
from spiking_rhm.backends.norse.learners import PresentedBatch, ThreeFactorLearner
from spiking_rhm.backends.norse.network import build_parameters, build_spec, init_weights
from spiking_rhm.rhm import RHM, onehot
from spiking_rhm.rules.base import LearningContext, get_rule

V, M, NC, S, L = 8, 4, 8, 2, 2
WIDTH = 32
# the operating point the spiking-vs-rate cosines of docs/spiking.md were measured at (rest at threshold,
# reset to 0, drive 4); pinned here so that the back end's defaults can move
OLD_POINT = {"drive": 4.0, "v_leak": 1.0, "reset": "zero", "v_init": "rest"}
# the same as cfg.spiking settings (with the Bernoulli rate code and eligibility time constant of the time)
OLD_SPIKING = {"code": "rate", "drive": 4.0, "v_rest": 1.0, "reset": "zero", "v_init": "rest", "tau_elig": 0.02}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm()))


def small_batch(n: int = 32, seed: int = 0):
    rhm = RHM(V, M, NC, S, L, seed=0)
    sample = rhm.split(n, 0, seed=seed)[0]
    x = onehot(sample.inputs, V)
    target = torch.nn.functional.one_hot(torch.as_tensor(sample.labels), NC).float()
    return rhm, sample, x, target


def spiking_update(rule_name: str, T: int, x, target, seed: int = 0, spike_seed: int = 1, views=None,
                   eligibility: str = "factored", tau_elig: float | None = None, scale: str = "expected",
                   **rule_options):
    """(grads, learner, weights) of one spiking three-factor step; tau_elig defaults to T dt."""
    dt = 1e-3
    enc = SpikeEncoder("rate", T, dt, 200.0, V)
    spec = build_spec("cnn", enc.channels, S**L, S, L, WIDTH, NC)
    params = build_parameters(spec, enc.nominal_rate, dt=dt, tau_elig=tau_elig or T * dt, **OLD_POINT)
    weights = init_weights(spec, torch.Generator().manual_seed(seed))
    learner = ThreeFactorLearner(rule_name, rule_options, spec, params, torch.Generator().manual_seed(seed + 1),
                                 eligibility=eligibility, scale=scale)
    gen = torch.Generator().manual_seed(spike_seed)
    spikes = enc(x, gen)
    enc_views = None if views is None else {k: enc(v, gen) for k, v in views.items()}
    res = learner.step(weights, PresentedBatch(spikes, target, enc_views), lr=0.0)
    return res, learner, weights, spec, params


def rate_update(rule_name: str, x, target, weights, seed: int = 0, positive_x=None, **rule_options):
    """Explicit rate update ``-sum L rho'(a) x / sqrt(K)`` (descent direction) with the same weights."""
    from rate_models.networks import NetParams, explicit_update, forward, make_spec

    spec = make_spec("cnn", V, S**L, S, L, WIDTH, NC)
    params = NetParams(spec, tuple(weights.hidden), (None,) * L, weights.readout)
    out, act = forward(params, x)
    rule = get_rule(rule_name, **rule_options)
    state = rule.init_state(spec.layer_shapes(), NC, torch.Generator().manual_seed(seed + 1))
    positive = None
    if positive_x is not None:
        levels = rule.positive_view_levels(L)
        posts = {k: forward(params, v)[1].post for k, v in positive_x.items()}
        positive = [posts[level][l] for l, level in enumerate(levels)]
    ctx = LearningContext(layers=act.post, pre_activations=act.pre, output=out, target=target, positive=positive)
    signals = rule.learning_signals(ctx, state)
    return [explicit_update(s, act, l + 1, params) for l, s in enumerate(signals)], signals


def resampled_views(rhm, sample, levels, seed: int = 5):
    rng = np.random.default_rng(seed)
    return {level: onehot(rhm.resample(sample, level, rng).inputs, V) for level in sorted(set(levels))}
