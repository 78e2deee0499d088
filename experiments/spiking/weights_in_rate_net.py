"""Diagnostic (issue 6, stop 10): are spiking-trained weights bad, or only read through noisy spike counts?

Trains one Norse run, then scores its trained hidden weights three ways with the converged linear probe on the
top layer: (1) as the run does (spiking network, the run's T), (2) the spiking network with a longer window
``--eval-T``, (3) the rate network (``rate_models``; same weight layout, relu instead of LIF).

    OMP_NUM_THREADS=1 python experiments/spiking/weights_in_rate_net.py --P 1536 --T 30 --eval-T 100
"""

from __future__ import annotations

import argparse
import json

import torch

import spiking_rhm.backends.norse.train as norse_train
from rate_models.networks import NetParams, forward, make_spec
from spiking_rhm.config import RunConfig
from spiking_rhm.metrics import linear_probe
from spiking_rhm.rhm import onehot


# the operating point and code of the documented numbers (the back end's defaults before its "Operating point")
OLD_POINT = {"code": "rate", "v_rest": 1.0, "drive": 4.0, "reset": "zero", "v_init": "rest"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rule", default="sibling-cca")
    ap.add_argument("--P", type=int, default=1536)
    ap.add_argument("--T", type=int, default=30)
    ap.add_argument("--eval-T", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--P-test", type=int, default=2000)
    a = ap.parse_args(argv)
    cfg = RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 3}, "P": a.P, "P_test": a.P_test,
                               "rule": a.rule, "backend": "norse", "seed": a.seed, "net": {"width": 128},
                               "optim": {"epochs": 30, "batch_size": 32},
                               "spiking": {"T": a.T, "max_rate": 1000.0, **OLD_POINT}})
    holder = {}

    class Recording(norse_train.NorseSetup):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            holder["setup"] = self

    norse_train.NorseSetup = Recording
    record = norse_train.train_norse(cfg)
    setup = holder["setup"]
    train, test = setup.rhm.split(*cfg.sizes(), seed=cfg.seed)
    out = {"config": cfg.to_dict(), "spiking_T_run": record["test_error"]}

    long_cfg = RunConfig.from_dict({**cfg.to_dict(), "spiking": {"T": a.eval_T, "max_rate": 1000.0, **OLD_POINT}})
    long = norse_train.NorseSetup(long_cfg)
    long.weights.hidden[:] = setup.weights.hidden
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    f_tr, f_te = norse_train.evaluate(long, train, gen)[2], norse_train.evaluate(long, test, gen)[2]
    out[f"spiking_T{a.eval_T}"] = linear_probe(f_tr, train.labels, f_te, test.labels, 8)["test_error"]

    spec = make_spec("cnn", 8, 8, 2, 3, 128, 8)
    params = NetParams(spec, tuple(w.detach() for w in setup.weights.hidden), (None,) * 3, setup.weights.readout)
    feats = [forward(params, onehot(s.inputs, 8))[1].post[-1].mean(-1) for s in (train, test)]
    out["rate_network"] = linear_probe(feats[0], train.labels, feats[1], test.labels, 8)["test_error"]
    print(json.dumps({k: v for k, v in out.items() if k != "config"}))
    return out


if __name__ == "__main__":
    main()
