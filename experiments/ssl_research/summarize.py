"""Tables of the SSL-research log: mean test error per (setting, tag, P) and P*(10 %) per tag.

    python -m experiments.ssl_research.summarize [results.jsonl]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from spiking_rhm.metrics import pstar

DEFAULT = Path(__file__).with_name("results.jsonl")


def load(path=DEFAULT):
    return [json.loads(line) for line in open(path) if line.strip()]


def table(records):
    groups = defaultdict(list)
    for r in records:
        groups[(r["setting"], r["tag"], r["P"])].append(r)
    lines = ["| setting | variant | P | seeds | test error (mean) | per seed | S_bottom per layer (mean) |",
             "|---|---|---|---|---|---|---|"]
    for (setting, tag, P), rs in sorted(groups.items()):
        err = [r["test_error"] for r in rs]
        sens = np.mean([r["sens_bottom"] for r in rs if r["sens_bottom"]], axis=0) if rs[0]["sens_bottom"] else []
        lines.append(f"| {setting} | {tag} | {P} | {len(rs)} | {np.mean(err):.4f} | "
                     f"{', '.join(f'{e:.4f}' for e in err)} | {', '.join(f'{x:.3f}' for x in sens)} |")
    return "\n".join(lines)


def pstars(records, eps=0.1):
    by = defaultdict(lambda: defaultdict(dict))
    for r in records:
        by[(r["setting"], r["tag"])][r["P"]][r["seed"]] = r["test_error"]
    out = []
    for (setting, tag), curve in sorted(by.items()):
        Ps = sorted(curve)
        if len(Ps) < 2:
            continue
        seeds = sorted({s for p in Ps for s in curve[p]})
        errs = [[curve[p].get(s, np.nan) for p in Ps] for s in seeds]
        ps = pstar(Ps, errs, eps=eps)
        out.append(f"| {setting} | {tag} | {Ps} | {ps.value:.0f} ({ps.status}) | [{ps.low:.0f}, {ps.high:.0f}] |")
    return "\n".join(["| setting | variant | P grid | P*(10 %) | 90 % bootstrap |", "|---|---|---|---|---|", *out])


if __name__ == "__main__":
    recs = load(sys.argv[1] if len(sys.argv) > 1 else DEFAULT)
    print(table(recs))
    print()
    print(pstars(recs))
