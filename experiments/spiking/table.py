"""Markdown table (mean and per-seed test error) of a spiking-vs-rate curve directory.

    python experiments/spiking/table.py experiments/spiking/curve_small [more dirs...]
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict

from experiments.store import read_results


def table(directory: str) -> str:
    rows: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in read_results(directory):
        if r.get("status") == "ok":
            rows[(r["config"]["rule"], r["backend"])][int(r["config"]["P"])].append(r["test_error"])
    sizes = sorted({P for by_P in rows.values() for P in by_P})
    out = ["| rule | backend | " + " | ".join(f"P = {P}" for P in sizes) + " |",
           "|---|---|" + "---|" * len(sizes)]
    for (rule, backend), by_P in sorted(rows.items()):
        cells = []
        for P in sizes:
            errs = by_P.get(P, [])
            cells.append(f"{statistics.mean(errs):.2f} ({', '.join(f'{e:.2f}' for e in errs)})" if errs else "-")
        out.append(f"| {rule} | {backend} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    for d in sys.argv[1:]:
        print(f"### {d}\n\n{table(d)}\n")
