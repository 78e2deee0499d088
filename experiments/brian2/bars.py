"""Test errors of brian2 sweeps as bars, one per (neuron model, rule, P) (docs/figures/brian2/adex_curve.png).

    python experiments/brian2/bars.py runs/brian2_adex_curve runs/brian2_models/* --out docs/figures/brian2/adex_curve.png

Prints the table (neuron, rule, P, seed, test error, chance) that the figure draws; seeds are averaged.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np


def table(directories) -> dict:
    """``{(neuron, rule, P): [test errors over seeds]}`` of the ``ok`` records in ``directories``."""
    from experiments.store import read_results

    rows = defaultdict(list)
    for directory in directories:
        for r in read_results(directory):
            if r.get("status") == "ok" and r.get("test_error") is not None:
                neuron = r["config"].get("spiking", {}).get("neuron", "lif")
                rows[(neuron, r["rule"], int(r["P"]))].append(float(r["test_error"]))
    return dict(sorted(rows.items()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directories", nargs="+")
    ap.add_argument("--out", default="docs/figures/brian2/adex_curve.png")
    ap.add_argument("--chance", type=float, default=7 / 8, help="chance error (1 - 1 / n_c)")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table(args.directories)
    print("| neuron | rule | P | seeds | test error |\n|---|---|---|---|---|")
    for (neuron, rule, P), errors in rows.items():
        print(f"| {neuron} | {rule} | {P} | {len(errors)} | {np.mean(errors):.3f} |")
    labels = [f"{n}\n{r}\nP={P}" for n, r, P in rows]
    colours = ["C0" if r != "random-features" else "C7" for _, r, _ in rows]
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(rows)), 3.6))
    ax.bar(range(len(rows)), [np.mean(e) for e in rows.values()], color=colours)
    ax.axhline(args.chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("test error")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("brian2 back end, (8,4,8,2,2), width 64, seed 0 (grey: random-features control)", fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
