"""Per-layer diagnostics of sweeps as Markdown: synonymic sensitivity and alignment with BP's update.

    python -m experiments.claims.layers DIR [DIR...] [--P 2048 4096]

One table per RHM setting; a row per curve (:func:`experiments.analysis.curves`: rule, back end, variant, the
grammars pooled) and P; each cell the mean over the row's ok runs ((grammar, seed) pairs, their number in
``n``) of

* ``S_k``: layer k's synonymic sensitivity to resampling everything below level ``L - k``, the one
  level-``(L - k)`` symbol its receptive field spans (``metrics.sensitivity``, from
  :func:`spiking_rhm.metrics.synonymic_sensitivity`; 0: invariant, 1: as different as two unrelated inputs);
* ``cos_k``: the cosine of the rule's update of ``W^k`` with BP's on the same batch and weights, at the last
  alignment step the run reached (``metrics.alignment[-1].cosine``);
* ``cos_k/n``: the same step's mean over samples of the cosine of each sample's own updates
  (``cosine_per_sample``; rate back end).

A run whose value is undefined (a layer with constant activity has a NaN sensitivity; a zero update has no
cosine) is left out of that cell's mean; ``-``: no run of the row has it (a frozen layer has no update; older
records have no per-sample cosine).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from experiments.analysis import curves, has_test_points
from experiments.store import read_results


def layer_values(record: dict) -> dict[str, list[float | None]] | None:
    """``{"S": [...], "cos": [...], "cos/n": [...]}`` per hidden layer of one ok record (None otherwise)."""
    if record.get("status") != "ok":
        return None
    metrics = record.get("metrics") or {}
    sens = metrics.get("sensitivity") or {}
    layers = sens.get("layers") or []
    # layer k (1-based) against level L - k: levels are [L-1, ..., 0], so index k - 1
    S = [row[k] if k < len(row) else None for k, row in enumerate(layers)]
    align = metrics.get("alignment") or []
    last = align[-1] if align and isinstance(align[-1], dict) else {}
    return {"S": S, "cos": list(last.get("cosine") or []), "cos/n": list(last.get("cosine_per_sample") or [])}


def _mean(values: list) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else None


def rows(records: list[dict], Ps: list[int] | None = None) -> list[dict]:
    """One dict per (curve, P): setting, rule, variant, P, n, and per quantity the per-layer means."""
    out = []
    for curve in curves([r for r in records if has_test_points(r)]):
        for P in curve.P:
            if Ps and P not in Ps:
                continue
            values = [v for r in curve.records if r["P"] == P and (v := layer_values(r)) is not None]
            if not values:
                continue
            depth = max(len(v["S"]) for v in values) or curve.rhm[4]
            row = {"rhm": curve.rhm, "rule": curve.label, "P": P, "n": len(values)}
            for key in ("S", "cos", "cos/n"):
                row[key] = [_mean([v[key][k] for v in values if k < len(v[key])]) for k in range(depth)]
            out.append(row)
    return out


def table(records: list[dict], Ps: list[int] | None = None) -> str:
    """The Markdown tables of :func:`rows`."""
    lines = []
    found = rows(records, Ps)
    for rhm in sorted({r["rhm"] for r in found}):
        mine = [r for r in found if r["rhm"] == rhm]
        depth = max(len(r["S"]) for r in mine)
        cols = [f"{key}_{k + 1}" for key in ("S", "cos", "cos/n") for k in range(depth)]
        lines.append(f"\n(v, m, n_c, s, L) = {rhm}; cells: means over the runs (n); S_k: layer k's synonymic "
                     f"sensitivity to resampling below level L - k; cos_k, cos/n_k: cosine of the rule's update of "
                     f"W^k with BP's, on the batch and per sample, at the last alignment step\n")
        lines.append("| rule | P | n | " + " | ".join(cols) + " |")
        lines.append("|---|---|---|" + "---|" * len(cols))
        for r in mine:
            cells = [_fmt(r[key][k] if k < len(r[key]) else None) for key in ("S", "cos", "cos/n") for k in range(depth)]
            lines.append(f"| {r['rule']} | {r['P']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+")
    parser.add_argument("--P", type=int, nargs="*", help="only these training-set sizes")
    args = parser.parse_args(argv)
    records = [r for d in args.directories for r in read_results(d)]
    if not records:
        print(f"no records in {', '.join(args.directories)}", file=sys.stderr)
        return 2
    print(table(records, args.P))
    return 0


if __name__ == "__main__":
    sys.exit(main())
