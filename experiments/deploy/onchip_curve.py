"""On-chip learning curve (docs/hardware.md): online DFA on Lava's learning engine beside Norse float.

For each P, seed and engine (``norse``: float reference; ``lava``: Lava's float learning engine;
``loihi-fixed``: Loihi's bit-approximate engine in integers), :func:`hardware.loihi.training.train_online`
trains the same network on the same presentations (same initial weights, feedback matrices, order
and spikes) and records the test error after every epoch; one JSON record per run is appended to
``--out`` (rerun to resume).

    python experiments/deploy/onchip_curve.py --P 32,64,128 --seeds 0 --out experiments/results/deploy/onchip.jsonl
    python experiments/deploy/onchip_curve.py --P 32,64,128 --seeds 0,1 --engines norse,loihi-fixed \
        --out experiments/results/deploy/onchip_fixed.jsonl
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


def table(out: Path, args) -> str:
    """Markdown rows: per P and seed, every engine's curve, and for each engine other than ``norse`` the
    cosine between its weight change and Norse's (per layer) and the ratio of their norms."""
    from hardware.loihi.training import train_online

    records = [json.loads(line) for line in out.read_text().splitlines()]
    rows = ["| P | seed | engine | test error after epochs 0, 1, ..., 10 | final | weight change vs Norse: "
            "cos, norm ratio (per layer) | wall |", "|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["P"], r["seed"], r["engine"] != "norse")):
        P, seed, engine = r["P"], r["seed"], r["engine"]
        weights = lambda e: np.load(out.with_name(f"{out.stem}_{e}_P{P}_s{seed}.npz"))  # noqa: E731
        compare = ""
        if engine != "norse" and out.with_name(f"{out.stem}_norse_P{P}_s{seed}.npz").exists():
            w0 = train_online(config(P, seed, args.rule, args.width), engine="norse", epochs=0)["weights"]
            mine, ref = weights(engine), weights("norse")
            parts = []
            for l, w in enumerate(w0):
                a, b = (mine[f"arr_{l}"] - w).ravel(), (ref[f"arr_{l}"] - w).ravel()
                norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
                parts.append(f"{a @ b / norm_a / norm_b:.2f}, {norm_a / norm_b:.2f}")
            compare = "; ".join(parts)
        curve = " ".join(f"{c['test_error']:.3f}".lstrip("0") for c in r["curve"])
        rows.append(f"| {P} | {seed} | {engine} | {curve} | {r['test_error']:.3f} | {compare} "
                    f"| {r['wall_time']:.0f} s |")
    return "\n".join(rows)


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
    parser.add_argument("--headroom", type=float, default=2.0,
                        help="loihi-fixed: the initial weights use 1/headroom of the 8-bit range")
    parser.add_argument("--restart", action="store_true",
                        help="loihi-fixed: start every presentation as a new Lava process (fresh random streams, "
                             "weights truncated to even); use another --out")
    parser.add_argument("--table", action="store_true", help="print the markdown table of --out and exit")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(out, args))
        return 0
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
                                 epochs=args.epochs, lr=args.lr, readout_lr=args.lr, headroom=args.headroom,
                                 restart=args.restart)
                records[(engine, P, seed)] = r
                weights = r.pop("weights")
                r.pop("readout")
                r["weights_norm"] = [float(np.linalg.norm(w)) for w in weights]
                np.savez(out.with_name(f"{out.stem}_{engine}_P{P}_s{seed}.npz"), *weights)
                with out.open("a") as handle:
                    handle.write(json.dumps(r) + "\n")
                print(f"{engine:<11} P={P:<4} seed={seed} test error {r['test_error']:.3f} "
                      f"curve {[round(c['test_error'], 3) for c in r['curve']]} ({r['wall_time']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
