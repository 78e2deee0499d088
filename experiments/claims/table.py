"""Markdown table of a results directory: seed-mean test error (and mean train error) per curve and P.

    python -m experiments.claims.table experiments/results/claim2_direct_feedback

A curve is (RHM setting, rule, rule options, learning rate; "x H" holds for the width-scaled supervised
rules, the only ones run with an explicit lr here); cells are ``test (train)`` means over the
seeds, ``d`` marks diverged runs (counted at chance 1 - 1/n_c, as in ``spiking-rhm pstar``).
"""

from __future__ import annotations

import sys
from collections import defaultdict

from experiments.analysis import has_test_points
from experiments.store import read_results


def rows(directory: str):
    """The records of ``directory`` with a test error (runs without test points are left out)."""
    return [r for r in read_results(directory) if has_test_points(r)]


def table(directory: str) -> str:
    cells = defaultdict(list)
    sizes = set()
    for r in rows(directory):
        c = r["config"]
        setting = ",".join(str(c["rhm"][k]) for k in ("v", "m", "n_c", "s", "L"))
        opts = ", ".join(f"{k}={v}" for k, v in sorted((c.get("rule_options") or {}).items()))
        lr = c["optim"].get("lr")
        curve = (setting, r["rule"], opts, "default" if lr is None else f"{lr} x H")
        chance = 1 - 1 / c["rhm"]["n_c"]
        ok = r["status"] == "ok"
        cells[curve, r["P"]].append((r["test_error"] if ok else chance, r["train_error"] if ok else chance, ok))
        sizes.add((setting, r["P"]))
    curves = sorted({k[0] for k in cells})
    out = []
    for setting in sorted({c[0] for c in curves}):
        Ps = sorted(P for s, P in sizes if s == setting)
        out.append(f"\n(v, m, n_c, s, L) = ({setting}); cell = seed-mean test error (seed-mean train error)\n")
        out.append("| rule | options | lr | " + " | ".join(f"P = {P}" for P in Ps) + " |")
        out.append("|---|---|---|" + "---|" * len(Ps))
        for curve in (c for c in curves if c[0] == setting):
            row = []
            for P in Ps:
                runs = cells.get((curve, P), [])
                if not runs:
                    row.append("")
                    continue
                test = sum(t for t, _, _ in runs) / len(runs)
                train = sum(t for _, t, _ in runs) / len(runs)
                nd = sum(not ok for _, _, ok in runs)
                row.append(f"{test:.3f} ({train:.2f})" + (f" {nd}d" if nd else ""))
            out.append(f"| {curve[1]} | {curve[2]} | {curve[3]} | " + " | ".join(row) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    for d in sys.argv[1:]:
        print(table(d))
