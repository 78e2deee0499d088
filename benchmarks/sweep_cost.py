"""Where a stored sweep's time went, per rule and P (not a test).

Reads the records of a sweep directory (``experiments.store.read_results``) and prints, per (rule, P): runs,
trainings (a run with a selection grid trains every grid point), the summed and mean wall time of the runs
(``wall_time`` of the record: every grid point, the final scores and the sensitivity included), the mean
epochs of the chosen point and the largest per-run memory (``metrics.memory``, :mod:`spiking_rhm.memory`: the
process's peak resident memory during the run, and what the run added to the resident memory it started
with; "-" for records written before it was recorded); then the totals.  Then, for another sweep config, the number of runs and trainings
it expands to, and a rough cost: each of its trainings priced at the measured mean seconds per training of the
same rule (the rule's mean over P; rules not measured are left out and named) -- rough, because budgets, widths
and P differ between configs.

    python benchmarks/sweep_cost.py experiments/results/fair_claim2_reduced \\
        [--estimate experiments/claims/fair/claim2.toml]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict


def trainings(record: dict) -> int:
    selection = (record.get("metrics") or {}).get("selection") or {}
    return max(1, len(selection.get("points") or []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--estimate", help="a sweep config to price with the measured seconds per training")
    args = parser.parse_args()

    from experiments.store import read_results

    rows = defaultdict(lambda: {"runs": 0, "trainings": 0, "wall": 0.0, "epochs": [], "peak": [], "added": []})
    for record in read_results(args.directory):
        rule = record["config"].get("preset") or record["rule"]
        row = rows[(rule, record["P"])]
        row["runs"] += 1
        row["trainings"] += trainings(record)
        row["wall"] += float(record.get("wall_time") or 0.0)
        metrics = record.get("metrics") or {}
        row["epochs"].append(metrics.get("epochs_run") or 0)
        memory = metrics.get("memory") or {}
        for key, name in (("peak", "peak_rss_mb"), ("added", "peak_increase_mb")):
            if memory.get(name) is not None:
                row[key].append(memory[name])
    print(f"{'rule':<16} {'P':>6} {'runs':>5} {'trainings':>9} {'wall s':>8} {'s/run':>7} {'epochs':>7} "
          f"{'peak MB':>8} {'added MB':>8}")
    per_training = defaultdict(lambda: [0.0, 0])
    for (rule, P), row in sorted(rows.items()):
        peak = f"{max(row['peak']):.0f}" if row["peak"] else "-"
        added = f"{max(row['added']):.0f}" if row["added"] else "-"
        print(f"{rule:<16} {P:>6} {row['runs']:>5} {row['trainings']:>9} {row['wall']:>8.0f} "
              f"{row['wall'] / row['runs']:>7.1f} {sum(row['epochs']) / len(row['epochs']):>7.0f} {peak:>8} {added:>8}")
        per_training[rule][0] += row["wall"]
        per_training[rule][1] += row["trainings"]
    total = sum(r["wall"] for r in rows.values())
    print(f"total: {sum(r['runs'] for r in rows.values())} runs, {sum(r['trainings'] for r in rows.values())} "
          f"trainings, {total:.0f} s of run wall time ({total / 60:.1f} min)")
    if args.estimate:
        from experiments.sweep import SweepConfig

        runs = SweepConfig.from_file(args.estimate).runs()
        cost, missing, n_train = 0.0, set(), 0
        for cfg in runs:
            rule = cfg.preset or cfg.rule
            n = max(1, math.prod(len(v) for v in cfg.grid.values())) if cfg.grid else 1
            n_train += n
            if rule in per_training:
                cost += n * per_training[rule][0] / per_training[rule][1]
            else:
                missing.add(rule)
        print(f"{args.estimate}: {len(runs)} runs, {n_train} trainings; the measured rules alone at the measured "
              f"s/training: {cost / 3600:.1f} h" + (f" (not priced: {', '.join(sorted(missing))})" if missing else ""))


if __name__ == "__main__":
    main()
