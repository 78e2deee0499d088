"""Is the `random-features` control's readout converged?  Fit the best linear readout exactly.

The control trains only the readout (SGD, delta rule) on a frozen random CNN.  Its readout
problem is convex (multinomial logistic regression on the frozen top-layer features), so
its optimum can be found independently of the SGD protocol: here by full-batch L-BFGS in
float64 to convergence (without and with a bias, tiny L2 of 1e-6 for a unique optimum; the bias
makes the control *stronger* than the network's bias-free readout).  If SGD's train error in the sweep is close to this
optimum, the control is fairly trained.

    OMP_NUM_THREADS=1 python -m experiments.claims.rf_readout_check --setting 8,4,8,2,3 \
        --P 512 2048 8192 --width 64 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from rate_models.networks import forward, init_params, spec_from_config
from spiking_rhm.config import NetConfig, RHMConfig, RunConfig, resolve_size
from spiking_rhm.rhm import onehot


def top_features(cfg: RunConfig, P: int, P_test: int):
    """Frozen top-layer features of the run's network (same seed = same init as the sweep)."""
    rhm = cfg.rhm.build()
    train, test = rhm.split(P, P_test, seed=cfg.seed)
    spec = spec_from_config(cfg)
    params = init_params(spec, torch.Generator().manual_seed(cfg.seed), torch.float64, "cpu")
    with torch.no_grad():
        f_tr = forward(params, onehot(train.inputs, rhm.v, dtype=torch.float64))[1].post[-1].flatten(1)
        f_te = forward(params, onehot(test.inputs, rhm.v, dtype=torch.float64))[1].post[-1].flatten(1)
    return f_tr, torch.as_tensor(train.labels), f_te, torch.as_tensor(test.labels)


def fit_readout(X, y, n_out, bias=True, l2=1e-6, iters=500):
    """Multinomial logistic regression (optionally with bias) on standardised features, by L-BFGS.

    Without bias the features are only scaled (not centred), so the function class is exactly
    the network's bias-free linear readout."""
    mu, sd = (X.mean(0) if bias else torch.zeros_like(X[0])), X.std(0) + 1e-12
    Z = (X - mu) / sd
    W = torch.zeros(Z.shape[1] + 1, n_out, dtype=Z.dtype, requires_grad=True)
    Zb = torch.cat([Z, torch.full((len(Z), 1), float(bias), dtype=Z.dtype)], 1)
    opt = torch.optim.LBFGS([W], lr=1, max_iter=iters, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(Zb @ W, y) + l2 * (W**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda Xn: torch.cat([(Xn - mu) / sd, torch.full((len(Xn), 1), float(bias), dtype=Xn.dtype)], 1) @ W.detach()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="8,4,8,2,3", help="v,m,n_c,s,L")
    ap.add_argument("--P", nargs="+", default=["1x", "4x"])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--P-test", type=int, default=4096)
    a = ap.parse_args(argv)
    v, m, n_c, s, L = (int(t) for t in a.setting.split(","))
    for P_spec in a.P:
        for seed in a.seeds:
            cfg = RunConfig(rhm=RHMConfig(v, m, n_c, s, L), P=P_spec, rule="random-features", seed=seed,
                            net=NetConfig(width=a.width))
            P = resolve_size(P_spec, cfg.rhm.build())
            X, y, Xt, yt = top_features(cfg, P, a.P_test)
            for bias in (False, True):
                predict = fit_readout(X, y, n_c, bias=bias)
                out = {"setting": [v, m, n_c, s, L], "width": a.width, "P": P, "seed": seed, "bias": bias,
                       "train_error": float((predict(X).argmax(1) != y).double().mean()),
                       "test_error": float((predict(Xt).argmax(1) != yt).double().mean()),
                       "train_loss": float(F.cross_entropy(predict(X), y))}
                print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
