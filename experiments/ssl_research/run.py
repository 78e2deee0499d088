"""Run one SSL-research variant and append its record to a JSON-lines log.

Usage (every number in docs/results_ssl_research.md comes from a line of this kind)::

    python -m experiments.ssl_research.run --tag bp --setting 8 --rule bp --P 4x --seeds 0 1 \
        --width 128 --epochs 20 [--lr 1.0] [--opt key=value ...] [--out experiments/ssl_research/results.jsonl]

``--setting 8`` is (8, 4, 8, 2, 3), ``--setting 16`` is (16, 4, 16, 2, 3).  Each record keeps the
full config, test/train error, synonymic sensitivity per layer and the data-use record.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from rate_models.train import train_rate
from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig

SETTINGS = {"8": dict(v=8, m=4, n_c=8, s=2, L=3), "16": dict(v=16, m=4, n_c=16, s=2, L=3)}
DEFAULT_OUT = Path(__file__).with_name("results.jsonl")


def parse_value(text: str):
    return yaml.safe_load(text)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--setting", choices=SETTINGS, default="8")
    ap.add_argument("--rule", required=True)
    ap.add_argument("--P", nargs="+", default=["4x"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--P_test", type=int, default=8192)
    ap.add_argument("--opt", nargs="*", default=[])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    a = ap.parse_args(argv)
    opts = {}
    for item in a.opt:
        k, v = item.split("=", 1)
        opts[k] = parse_value(v)
    for P in a.P:
        for seed in a.seeds:
            P_val = parse_value(P) if not str(P).endswith("x") else P
            cfg = RunConfig(rhm=RHMConfig(**SETTINGS[a.setting]), P=P_val, P_test=a.P_test, rule=a.rule, seed=seed,
                            net=NetConfig(width=a.width),
                            optim=OptimConfig(epochs=a.epochs, batch_size=a.batch, lr=a.lr),
                            rule_options=opts)
            t0 = time.time()
            m = train_rate(cfg)
            sens = m["sensitivity"]
            rec = {"tag": a.tag, "setting": a.setting, "rule": a.rule, "P": cfg.sizes()[0], "P_spec": P, "seed": seed,
                   "width": a.width, "epochs": a.epochs, "lr": m["lr"], "options": opts,
                   "rule_options_resolved": m["rule"]["options"],
                   "test_error": m["test_error"], "train_error": m["train_error"], "train_loss": m["train_loss"],
                   "diverged": m["diverged"], "epochs_run": m["epochs_run"],
                   "sens_bottom": None if sens is None else [row[0] for row in sens["layers"]],
                   "sensitivity": sens, "data": m["data"], "curve_test": m["curve"]["test_error"],
                   "wall": time.time() - t0, "config": cfg.to_dict()}
            with open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            sb = rec["sens_bottom"]
            print(f"{a.tag:28s} s{a.setting} P={rec['P']:6d} seed={seed} test={m['test_error']:.4f} "
                  f"train={m['train_error']:.3f} S_bottom={None if sb is None else [round(x, 3) for x in sb]} "
                  f"wall={rec['wall']:.0f}s", flush=True)


if __name__ == "__main__":
    main()
