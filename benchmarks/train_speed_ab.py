"""bp alone on case b: ``flop_fraction`` of two checkouts in alternating processes (not a test).

On a shared machine the spread between runs is as large as a code change's effect, so the two versions are
measured as alternating processes, each doing what ``benchmarks/train_speed.py`` does for "bp alone" on case b
(the single-thread matmul peak, the flop counter on one step, one 40-epoch training, CPU clock), and the medians
and the median of the pairs' ratios are printed.

    OMP_NUM_THREADS=1 python benchmarks/train_speed_ab.py BEFORE_CHECKOUT AFTER_CHECKOUT [--pairs 4]

``--one DIR`` is the measurement of one process (what the pairs run, with ``PYTHONPATH=DIR``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path


def one(tree: str) -> None:
    sys.path.insert(0, str(Path(tree) / "benchmarks"))
    import torch
    from rate_models.train import train_rate
    from train_speed import CASE_B, case_config, loop_clock, loop_flops, matmul_peak, work

    torch.set_num_threads(1)
    cfg = case_config(CASE_B, "bp", epochs=40)
    flops = loop_flops(cfg)
    train_rate(case_config(CASE_B, "bp", epochs=1))  # warm-up
    with loop_clock("cpu") as clock:
        peak = matmul_peak(clock)
        metrics = train_rate(cfg)
    step, _ev, t, samples = work([metrics], *flops, cfg.P_test)
    print(f"{Path(tree).name:10s} peak {peak:.1f} samples/s {samples / t:.0f} flop_fraction={step / t / 1e9 / peak:.3f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", help="two checkouts: before, after")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--one", help="measure one checkout in this process")
    args = ap.parse_args()
    if args.one:
        return one(args.one)
    if len(args.trees) != 2:
        ap.error("give two checkouts (before, after)")
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    runs: dict[str, list[float]] = {t: [] for t in args.trees}
    for _ in range(args.pairs):
        for tree in args.trees:
            env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve()), "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "--one", str(Path(tree).resolve())], env=env,
                                 capture_output=True, text=True, check=True).stdout
            line = next(l for l in out.splitlines() if "flop_fraction=" in l)
            print(line, flush=True)
            runs[tree].append(float(re.search(r"flop_fraction=([\d.]+)", line).group(1)))
    print(f"load average {os.getloadavg()[0]:.2f}")
    before, after = runs.values()
    for tree, values in runs.items():
        print(f"{tree}: median flop_fraction {statistics.median(values):.3f}")
    print(f"after / before: median of the pairs {statistics.median(b / a for a, b in zip(before, after)):.3f}x")


if __name__ == "__main__":
    main()
