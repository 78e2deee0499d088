"""The online sibling-cca update on Norse vs the rate back end, on the same weights and the same one-sample stream.

(8,4,8,2,2), width 64, seed 0, the Norse back end's defaults (regular 200 Hz code, ``--T`` steps), batch 1.  Two
rule states are fed the same training samples in the same order: one the Norse learner's context (layer-1 spike
counts as the tap inputs of layer 2), one the rate network's (ReLU activities).  Printed:

* the cosine of the two layer-2 updates per step and of their sums over 10 / 50 / all steps, and their norm ratio;
* the tap inputs of layer 2 (mean, variance, fraction non-zero, correlation between the back ends);
* the smallest / largest eigenvalue of each tap's lateral ``Q`` after the stream (both back ends).

With ``--train`` both copies of layer 2 also take the step (``W <- W - lr grad``, constant lr, no schedule): the
cosine of the two weight displacements from the common start and their lengths, 8 times along the stream.

    OMP_NUM_THREADS=1 python experiments/spiking/scca_online_updates.py --T 30 --steps 1000
    OMP_NUM_THREADS=1 python experiments/spiking/scca_online_updates.py --T 30 --steps 1000 --option lateral_lr=1
    OMP_NUM_THREADS=1 python experiments/spiking/scca_online_updates.py --T 30 --steps 2880 --train
"""

from __future__ import annotations

import argparse
import tomllib

import numpy as np
import torch

from rate_models.networks import NetParams, branch_inputs, branch_pre_activations, forward, make_spec
from spiking_rhm.backends.norse.train import NorseSetup
from spiking_rhm.config import RunConfig
from spiking_rhm.rhm import onehot
from spiking_rhm.rules import LearningContext, get_rule
from spiking_rhm.rules.branch import branch_weight_gradient

RHM = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}
P, P_TRAIN = 384, 288  # the training points of a run with optim.validation = 0.25


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-30))


def rate_update(rule, state, spec, hidden, readout, x):
    """(layer-2 gradient, tap inputs of layer 2, new state) of the rate network's explicit branch update."""
    params = NetParams(spec, tuple(hidden), (None,) * len(hidden), readout)
    _, act = forward(params, x)
    ctx = LearningContext(layers=act.post, branches=branch_pre_activations(params, act),
                          branch_inputs=branch_inputs(act, spec))
    signals = rule.learning_signals(ctx, state)
    transforms = rule.presynaptic_transforms(state)
    grads = [branch_weight_gradient(s, xl, q, True) for s, xl, q in zip(signals, ctx.branch_inputs, transforms)]
    return grads[1], ctx.branch_inputs[1], rule.update_state(ctx, state, 0.0)


def eigen_range(Q: list) -> list[tuple[float, float]]:
    return [(round(float(torch.linalg.eigvalsh(q).min()), 3), round(float(torch.linalg.eigvalsh(q).max()), 3))
            for q in Q]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=30, help="Norse window (steps of 1 ms)")
    ap.add_argument("--steps", type=int, default=1000, help="samples in the stream")
    ap.add_argument("--lr", type=float, default=1.0, help="step of --train")
    ap.add_argument("--train", action="store_true", help="both copies of layer 2 take their step")
    ap.add_argument("--option", action="append", default=[], metavar="K=V", help="rule option (repeatable)")
    args = ap.parse_args(argv)
    options = {k.strip(): tomllib.loads(f"v = {v}")["v"] for k, v in (o.split("=", 1) for o in args.option)}
    cfg = RunConfig.from_dict({"rhm": RHM, "P": P, "P_test": 128, "rule": "sibling-cca-online", "backend": "norse",
                               "seed": 0, "net": {"width": 64}, "optim": {"batch_size": 1},
                               "spiking": {"T": args.T}, "rule_options": options})
    setup = NorseSetup(cfg)
    w0 = setup.weights
    train = setup.rhm.split(P, 128, seed=0)[0]
    spec = make_spec("cnn", RHM["v"], RHM["s"] ** RHM["L"], RHM["s"], RHM["L"], 64, RHM["n_c"])
    rule = get_rule("sibling-cca-online", **options)
    state = rule.init_state(spec.layer_shapes(), RHM["n_c"], torch.Generator().manual_seed(1), taps=RHM["s"])
    state = state._replace(projections=setup.learner.rule_state["projections"])  # the same R_k
    w_norse, w_rate = list(w0.hidden), list(w0.hidden)
    g_norse, g_rate, x_norse, x_rate = [], [], [], []
    mode = "lockstep training" if args.train else "fixed weights"
    print(f"T = {args.T}, {args.steps} samples, options {options}, {mode}")
    for i in range(args.steps):
        sample = train.take(np.array([i % P_TRAIN]))
        res = setup.learner.step(w0._replace(hidden=w_norse), setup.present(sample), lr=0.0)
        g, x, state = rate_update(rule, state, spec, w_rate, w0.readout, onehot(sample.inputs, RHM["v"]))
        if args.train:
            w_norse = [w_norse[0], w_norse[1] - args.lr * res.grads[1]]
            w_rate = [w_rate[0], w_rate[1] - args.lr * g]
            if i % max(1, args.steps // 8) == 0 or i == args.steps - 1:
                dn, dr = w_norse[1] - w0.hidden[1], w_rate[1] - w0.hidden[1]
                print(f"  sample {i + 1}: displacement cosine {cosine(dn, dr):.3f}, |dW| Norse {float(dn.norm()):.2f} "
                      f"rate {float(dr.norm()):.2f}")
        g_norse.append(res.grads[1])
        g_rate.append(g)
        x_norse.append(res.context.branch_inputs[1])
        x_rate.append(x)
    n = args.steps
    sums = {w: np.mean([cosine(sum(g_norse[j:j + w]), sum(g_rate[j:j + w])) for j in range(0, n - w + 1, w)])
            for w in sorted({10, 50, n}) if w <= n}
    print(f"update cosine per step: mean {np.mean([cosine(a, b) for a, b in zip(g_norse, g_rate)]):.3f}; "
          + ", ".join(f"sums over {w}: {c:.3f}" for w, c in sums.items()))
    ratio = np.mean([float(a.norm() / b.norm()) for a, b in zip(g_norse, g_rate)])
    print(f"norm ratio Norse / rate per step: {ratio:.3f}")
    xn, xr = torch.cat(x_norse), torch.cat(x_rate)
    corr = float(np.corrcoef(xn.flatten(), xr.flatten())[0, 1])
    print(f"tap inputs of layer 2: Norse mean {float(xn.mean()):.3f} var {float(xn.var()):.3f} non-zero "
          f"{float((xn > 0).float().mean()):.3f}; rate mean {float(xr.mean()):.3f} var {float(xr.var()):.3f} "
          f"non-zero {float((xr > 0).float().mean()):.3f}; correlation {corr:.3f}")
    print(f"lateral Q of layer 2, (min, max) eigenvalue per tap: Norse "
          f"{eigen_range(setup.learner.rule_state['Q'][1])}, rate {eigen_range(state['Q'][1])}")


if __name__ == "__main__":
    main()
