"""Why does a layer-wise SSL rule fail?  Train only the hidden layers with a rule's local losses
and print, every few epochs: each layer's local loss, relative weight change |W - W0| / |W0|, the
bottom-level synonymic sensitivity of every layer, and a ridge linear probe of the class on the
top layer and on all layers (position-averaged, as the back end's readout) and on the top layer
flattened.  Usage::

    python -m experiments.ssl_research.diagnose --rule clapp --lr 1 --epochs 30 [--opt k=v ...]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import yaml

from rate_models.networks import forward, init_params, make_spec
from spiking_rhm.metrics import synonymic_sensitivity
from spiking_rhm.rhm import RHM, onehot
from spiking_rhm.rules.base import LearningContext, get_rule

SETTINGS = {"8": (8, 4, 8, 2, 3), "16": (16, 4, 16, 2, 3)}


def ridge_probe(F_tr, y_tr, F_te, y_te, n_c, lam=1e-2):
    mu, sd = F_tr.mean(0), F_tr.std(0) + 1e-6
    A, T = (F_tr - mu) / sd, (F_te - mu) / sd
    Y = np.eye(n_c)[y_tr]
    W = np.linalg.solve(A.T @ A + lam * A.shape[0] * np.eye(A.shape[1]), A.T @ Y)
    return float(((T @ W).argmax(1) != y_te).mean())


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--setting", default="8")
    ap.add_argument("--rule", default="clapp")
    ap.add_argument("--P", type=int, default=2048)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--adam", action="store_true")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opt", nargs="*", default=[])
    a = ap.parse_args(argv)
    opts = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in a.opt)}
    v, m, n_c, s, L = SETTINGS[a.setting]
    rhm = RHM(v, m, n_c, s, L, seed=0)
    train, test = rhm.split(a.P, 4000, seed=a.seed)
    X, Xt = onehot(train.inputs, v), onehot(test.inputs, v)
    spec = make_spec("cnn", v, s**L, s, L, a.width, n_c)
    gen = torch.Generator().manual_seed(a.seed)
    params = init_params(spec, gen)
    W0 = [w.clone() for w in params.weights]
    for w in params.weights:
        w.requires_grad_(True)
    rule = get_rule(a.rule, **opts)
    state = rule.init_state(spec.layer_shapes(), n_c, gen)
    levels = rule.positive_view_levels(L)
    vrng = np.random.default_rng(1)
    opt = (torch.optim.Adam(params.weights, lr=a.lr, weight_decay=a.wd) if a.adam else
           torch.optim.SGD(params.weights, lr=a.lr, momentum=0.9, weight_decay=a.wd))
    B = 128
    steps = a.epochs * (a.P // B)
    step = 0
    order = torch.Generator().manual_seed(a.seed + 1)

    def report(epoch, losses):
        with torch.no_grad():
            rel = [float((w - w0).norm() / w0.norm()) for w, w0 in zip(params.weights, W0)]
            sens = synonymic_sensitivity(lambda inp: [h.reshape(len(inp), -1).numpy() for h in
                                                      forward(params, onehot(inp, v))[1].post],
                                         rhm, test.take(np.arange(500)), np.random.default_rng(3))
            post_tr, post_te = forward(params, X)[1].post, forward(params, Xt)[1].post
            pooled = lambda hs: torch.cat([h.mean(-1) for h in hs], 1).numpy()
            top = ridge_probe(post_tr[-1].flatten(1).numpy(), train.labels, post_te[-1].flatten(1).numpy(),
                              test.labels, n_c)
            allp = ridge_probe(pooled(post_tr), train.labels, pooled(post_te), test.labels, n_c)
            l2 = ridge_probe(post_tr[-2].flatten(1).numpy(), train.labels, post_te[-2].flatten(1).numpy(),
                             test.labels, n_c)
        print(f"ep {epoch:3d} loss {[round(x, 3) for x in losses]} dW {[round(r, 3) for r in rel]} "
              f"S_bot {[round(r[0], 3) for r in sens['layers']]} probe top {top:.3f} L-1flat {l2:.3f} "
              f"all-pooled {allp:.3f}", flush=True)

    report(0, [])
    for epoch in range(1, a.epochs + 1):
        perm = torch.randperm(a.P, generator=order)
        acc = None
        for k in range(a.P // B):
            idx = perm[k * B:(k + 1) * B]
            _, act = forward(params, X[idx], cut=True)
            ctx = LearningContext(layers=act.post, pre_activations=act.pre)
            if levels:
                with torch.no_grad():
                    sub = train.take(idx.numpy())
                    views = {lv: forward(params, onehot(rhm.resample(sub, lv, vrng).inputs, v))[1].post
                             for lv in set(levels)}
                ctx.positive = [views[lv][l] for l, lv in enumerate(levels)]
            losses = rule.local_losses(ctx, state)
            opt.zero_grad()
            sum(losses).backward()
            lr_now = a.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            for g in opt.param_groups:
                g["lr"] = lr_now
            opt.step()
            state = rule.update_state(ctx, state, lr_now)
            step += 1
            vals = [float(x) for x in losses]
            acc = vals if acc is None else [p + q for p, q in zip(acc, vals)]
        if epoch % a.every == 0 or epoch == a.epochs:
            report(epoch, [x / (a.P // B) for x in acc])


if __name__ == "__main__":
    main()
