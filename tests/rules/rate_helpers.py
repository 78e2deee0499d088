"""Shared helpers of the rate-rule tests: a small float64 network and a LearningContext as the back end builds it."""

from functools import partial

import torch
import torch.nn.functional as F

from rate_models.networks import bp_signals, feedback_vjp, forward, init_params, layer_vjp, make_spec
from spiking_rhm.rules import LearningContext

DT = torch.float64


def small_net(arch="cnn", v=5, s=2, depth=2, width=6, n_out=4, batch=8, seed=0, positive_weights=False):
    spec = make_spec(arch, v, s**depth, s, depth, width, n_out)
    params = init_params(spec, torch.Generator().manual_seed(seed), DT)
    if positive_weights:  # every pre-activation > 0 on one-hot inputs: ReLU is the identity (linear toy network)
        params = params._replace(weights=tuple(w.abs() + 0.1 for w in params.weights))
    for t in (*params.weights, params.readout):
        t.requires_grad_(True)
    g = torch.Generator().manual_seed(seed + 1)
    x = F.one_hot(torch.randint(0, v, (batch, spec.d), generator=g), v).transpose(1, 2).to(DT)
    y = torch.randint(0, n_out, (batch,), generator=g)
    return spec, params, x, y


def context(params, x, y, positive=None):
    """(ctx, activity, task loss) with every optional field filled, like the rate back end."""
    out, act = forward(params, x, cut=True)
    loss = F.cross_entropy(out, y)
    ctx = LearningContext(layers=act.post, pre_activations=act.pre, output=out.detach(),
                          target=F.one_hot(y, out.shape[1]).to(out.dtype), positive=positive,
                          bp_signals=bp_signals(loss, act), weights=params.weights,
                          layer_vjp=partial(layer_vjp, act), feedback_vjp=partial(feedback_vjp, params, act))
    return ctx, act, loss


def end_to_end_bp(params, x, y):
    """dLoss/dW^l by plain autograd through the uncut network."""
    out, _ = forward(params, x)
    return torch.autograd.grad(F.cross_entropy(out, y), params.weights)


def rel_err(a, b):
    return float((a - b).norm() / max(float(b.norm()), 1e-300))
