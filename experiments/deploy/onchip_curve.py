"""On-chip learning curve (docs/hardware.md): online DFA on Lava's float learning engine beside Norse float.

For each P, seed and engine, :func:`hardware.loihi.training.train_online` trains the same network
on the same presentations (same initial weights, feedback matrices, order and spikes) and records
the test error after every epoch; one JSON record per run is appended to ``--out`` (rerun to resume).

    python experiments/deploy/onchip_curve.py --P 32,64,128 --seeds 0 --out experiments/results/deploy/onchip.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def config(P: int, seed: int, rule: str, width: int):
    """The curve's run: a rate code at the operating point a NIR CubaLIF and Lava's neurons express
    (reset to zero, start at rest, rest at threshold, drive 4)."""
    from spiking_rhm.config import LEGACY_OPERATING_POINT, NetConfig, RHMConfig, RunConfig, SpikingConfig

    return RunConfig(rhm=RHMConfig(v=8, m=4, n_c=4, s=2, L=2), P=P, P_test=128, rule=rule, backend="norse", seed=seed,
                     net=NetConfig("lcn", width), spiking=SpikingConfig(T=20, max_rate=500.0, code="rate", drive=4.0,
                                                                       **LEGACY_OPERATING_POINT))


def main(argv=None) -> int:
    from hardware.loihi.training import train_online

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--P", default="32,64,128")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--engines", default="norse,lava")
    parser.add_argument("--rule", default="dfa")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=300.0, help="hidden and readout learning rate (plain SGD)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["engine"], r["rule"], r["P"], r["seed"]))
    records = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for P in [int(p) for p in args.P.split(",")]:
            for engine in args.engines.split(","):
                if (engine, args.rule, P, seed) in done:
                    continue
                r = train_online(config(P, seed, args.rule, args.width), engine=engine, batch=args.batch,
                                 epochs=args.epochs, lr=args.lr, readout_lr=args.lr)
                records[(engine, P, seed)] = r
                weights = r.pop("weights")
                r.pop("readout")
                r["weights_norm"] = [float(np.linalg.norm(w)) for w in weights]
                np.savez(out.with_name(f"{out.stem}_{engine}_P{P}_s{seed}.npz"), *weights)
                with out.open("a") as handle:
                    handle.write(json.dumps(r) + "\n")
                print(f"{engine:<6} P={P:<4} seed={seed} test error {r['test_error']:.3f} "
                      f"curve {[round(c['test_error'], 3) for c in r['curve']]} ({r['wall_time']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
