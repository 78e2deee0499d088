"""Tables of the SSL-research log: mean test error per (setting, tag, P) and P*(10 %) per tag.

    python -m experiments.ssl_research.summarize [results.jsonl] [--csv summary.csv]

``--csv`` writes one row per (setting, tag, P) (runs, seeds, test error mean/min/max, mean train
error, mean synonymic sensitivity per layer); it also reads the log of ``batch_cca.py``
(``results_cca.jsonl``, tags ``batch-cca`` and ``batch-cca control``).
"""

from __future__ import annotations

import argparse
import json
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


CSV_COLUMNS = ("setting", "tag", "rule", "P", "n_runs", "seeds", "test_error_mean", "test_error_min",
               "test_error_max", "train_error_mean", "n_diverged", "S_bottom_mean")


def csv_rows(records):
    """One row per (setting, tag, P); ``setting`` "8" = (8,4,8,2,3), "16" = (16,4,16,2,3) (as in run.py)."""
    groups = defaultdict(list)
    for r in records:
        setting = r["setting"]
        setting = {"8,4,8,2,3": "8", "16,4,16,2,3": "16"}.get(",".join(map(str, setting)), ",".join(map(str, setting))) \
            if isinstance(setting, list) else str(setting)
        if "tag" not in r:  # batch_cca.py log: its method (older logs label it "sibling-cca") or its control
            control = r["rule"].startswith("random-features")
            r = {**r, "tag": "batch-cca control" if control else "batch-cca",
                 "rule": r["rule"] if control else "batch-cca"}
        groups[(setting, r["tag"], r["P"])].append(r)
    rows = []
    for (setting, tag, P), rs in sorted(groups.items(), key=lambda kv: (int(kv[0][0].split(",")[0]), kv[0][1], kv[0][2])):
        err = [r["test_error"] for r in rs]
        sens = [r.get("sens_bottom") or r.get("S_bottom_per_layer") for r in rs]
        sens = [x for x in sens if x]
        rows.append({"setting": setting, "tag": tag, "rule": rs[0]["rule"], "P": P, "n_runs": len(rs),
                     "seeds": " ".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"])),
                     "test_error_mean": float(np.mean(err)), "test_error_min": min(err), "test_error_max": max(err),
                     "train_error_mean": float(np.mean([r["train_error"] for r in rs])),
                     "n_diverged": sum(bool(r.get("diverged")) for r in rs),
                     "S_bottom_mean": " ".join(f"{x:.4g}" for x in np.mean(sens, axis=0)) if sens else ""})
    return rows


if __name__ == "__main__":
    from experiments.report import to_csv

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log", nargs="?", default=str(DEFAULT))
    ap.add_argument("--csv", help="write the per-(setting, tag, P) rows here instead of printing the tables")
    args = ap.parse_args()
    recs = load(args.log)
    if args.csv:
        Path(args.csv).write_text(to_csv(csv_rows(recs), CSV_COLUMNS))
    else:
        print(table(recs))
        print()
        print(pstars(recs))
