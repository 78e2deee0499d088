"""A rate-trained network converted to spikes: test error vs T, as is or weight-normalised, readout kept or refitted.

A table of variants of one network (its rate checkpoint trained once, then simulated at several T, percentiles and
readouts).  Converted networks as rows of a sweep, with P* and learning curves, are the ``norse-converted`` back end
(``spiking-rhm curve --backend rate,norse-converted``; experiments/spiking/rate_vs_norse_converted.sh).

Trains (or loads) a rate network, simulates it on the Norse back end's defaults (regular 200 Hz code, rest v_th / 2,
reset by subtraction, g = 6) at each T, with the weights as trained or after data-based normalisation
(``deployed.normalise``: each layer scaled by the p-th percentile of its rate activations on the training points),
with the rate network's readout or one refitted on the spiking features of the training points.  The rate
error is measured on the same held-out points.  One JSON line per (T, normalisation, readout).

    OMP_NUM_THREADS=1 nice -n 5 python experiments/spiking/convert.py --out results/convert_scca.jsonl
    python experiments/spiking/convert.py --table results/convert_scca.jsonl
    python experiments/spiking/convert.py --summary results/convert_scca.jsonl   # mean over seeds

With ``--out`` a row already in the file (same network, settings, T, weights and readout) is not recomputed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from spiking_rhm import api
from spiking_rhm.backends.norse.deployed import (
    encode,
    from_checkpoint,
    held_out_error,
    normalise,
    rate_logits,
    refit_readout,
    run_points,
    simulate,
)
from spiking_rhm.checkpoint import Checkpoint
from spiking_rhm.config import RunConfig


def rate_error(net, n_test: int) -> float:
    """The rate network's error on the first ``n_test`` held-out points (ReLU, the checkpoint's readout)."""
    _, test = run_points(net.config, n_test)
    return float((rate_logits(net, test.inputs).argmax(1).numpy() != test.labels).mean())


def train_checkpoint(a, path: Path) -> Checkpoint:
    if not path.exists():
        import rate_models  # noqa: F401  (registers the rate back end)

        cfg = RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": a.L}, "P": a.P, "P_test": a.P_test,
                                   "rule": a.rule, "backend": "rate", "seed": a.seed, "net": {"width": a.width},
                                   "optim": {"epochs": 30, "batch_size": 32}})
        path.parent.mkdir(parents=True, exist_ok=True)
        api.train(cfg, progress=False, checkpoint=str(path))
    return Checkpoint.load(path)


def row_key(r: dict) -> tuple:
    """What identifies a measurement: the network (rule, L, P, P_test, width, seed) and how it was simulated."""
    return (r["rule"], r["L"], r["P"], r.get("P_test"), r["width"], r["seed"], json.dumps(r["spiking"], sort_keys=True),
            r["T"], r["weights"], r["readout"])


def summary(path: str) -> None:
    """Mean over seeds per (rule, L, P, width, settings, T, weights, readout), the gap's range over seeds."""
    groups: dict = {}
    for r in (json.loads(line) for line in open(path)):
        key = (r["rule"], r["L"], r["P"], r["width"], json.dumps(r.get("spiking", {}), sort_keys=True), r["T"],
               r["weights"], r["readout"])
        groups.setdefault(key, []).append(r)
    print("| rule | L | P | width | settings | T | weights | readout | seeds | rate error | spiking error | gap [min, max] |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (rule, L, P, width, settings, T, weights, readout), rows in sorted(groups.items()):
        settings = ", ".join(f"{k} = {v}" for k, v in json.loads(settings).items()) or "defaults"
        rate = sum(r["rate_error"] for r in rows) / len(rows)
        spk = sum(r["spiking_error"] for r in rows) / len(rows)
        gaps = [r["spiking_error"] - r["rate_error"] for r in rows]
        print(f"| {rule} | {L} | {P} | {width} | {settings} | {T} | {weights} | {readout} | {len(rows)} | {rate:.3f} | "
              f"{spk:.3f} | {sum(gaps) / len(gaps):+.3f} [{min(gaps):+.3f}, {max(gaps):+.3f}] |")


def table(path: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    print("| rule | seed | settings | T | weights | readout | rate error | spiking error | gap | spikes per step (top) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        settings = ", ".join(f"{k} = {v}" for k, v in r.get("spiking", {}).items()) or "defaults"
        print(f"| {r['rule']} | {r['seed']} | {settings} | {r['T']} | {r['weights']} | {r['readout']} | {r['rate_error']:.3f} | "
              f"{r['spiking_error']:.3f} | {r['spiking_error'] - r['rate_error']:+.3f} | {r['top_rate']:.3f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rule", default="sibling-cca")
    ap.add_argument("--L", type=int, default=3)
    ap.add_argument("--P", type=int, default=1536)
    ap.add_argument("--P-test", type=int, default=4000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--T", default="30,100", help="comma list of window lengths")
    ap.add_argument("--percentile", default="99.9,99", help="comma list of normalisation percentiles")
    ap.add_argument("--target", type=float, default=1.0, help="rate of the percentile unit (spikes per step)")
    ap.add_argument("--n-test", type=int, default=1000, help="held-out points scored")
    ap.add_argument("--checkpoint", help="rate checkpoint [runs/convert/<rule>_L<L>_P<P>_t<P_test>_w<width>_s<seed>.npz, "
                                         "trained if missing]")
    ap.add_argument("--spiking", action="append", default=[], metavar="K=V",
                    help="simulation setting of the converted network, e.g. v_rest=1.0 (repeatable)")
    ap.add_argument("--no-refit", action="store_true", help="only the rate network's readout")
    ap.add_argument("--normalised-only", action="store_true", help="skip the weights as trained")
    ap.add_argument("--out", help="append JSON lines here")
    ap.add_argument("--table", help="print the Markdown table of a results file and stop")
    ap.add_argument("--summary", help="print the seed-mean Markdown table of a results file and stop")
    a = ap.parse_args(argv)
    if a.table:
        return table(a.table)
    if a.summary:
        return summary(a.summary)
    path = Path(a.checkpoint or f"runs/convert/{a.rule}_L{a.L}_P{a.P}_t{a.P_test}_w{a.width}_s{a.seed}.npz")
    ckpt = train_checkpoint(a, path)
    settings = {}
    for text in a.spiking:
        key, _, value = text.partition("=")
        try:
            settings[key] = float(value) if "." in value or "e" in value else int(value)
        except ValueError:
            settings[key] = value
    done = set()
    if a.out and Path(a.out).exists():
        done = {row_key(json.loads(line)) for line in open(a.out) if line.strip()}
    base = from_checkpoint(ckpt, spiking=settings)
    r_err = rate_error(base, a.n_test)
    print(f"{a.rule} rate network: error {r_err:.4f} on {a.n_test} held-out points (record: {ckpt.test_error})")
    variants = ([] if a.normalised_only else [("as trained", None)]) + [(f"normalised p{p}", float(p)) for p in a.percentile.split(",") if p]
    for T in (int(t) for t in a.T.split(",")):
        for name, p in variants:
            net = from_checkpoint(ckpt, spiking={**settings, "T": T})
            if p is not None:
                net, _ = normalise(net, percentile=p, target=a.target)
            for readout in ("rate",) if a.no_refit else ("rate", "refitted"):
                key = row_key({"rule": a.rule, "L": a.L, "P": a.P, "P_test": a.P_test, "width": a.width, "seed": a.seed,
                               "spiking": settings, "T": T, "weights": name, "readout": readout})
                if key in done:
                    continue
                t0 = time.perf_counter()
                scored = refit_readout(net)[0] if readout == "refitted" else net
                err = held_out_error(scored, a.n_test)
                _, test = run_points(net.config, 256)
                counts, _, _ = simulate(net, encode(net, test.inputs, 1))
                top = float(counts[-1].mean() / T)
                row = {"rule": a.rule, "spiking": settings, "L": a.L, "P": a.P, "P_test": a.P_test, "seed": a.seed, "width": a.width, "T": T, "weights": name,
                       "percentile": p, "target": a.target if p else None, "readout": readout,
                       "rate_error": r_err, "spiking_error": err, "n_test": a.n_test, "top_rate": top,
                       "wall_s": time.perf_counter() - t0}
                print(json.dumps(row), flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
