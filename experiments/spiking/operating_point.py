"""How the spiking defaults were chosen: operating point x code x T candidates, rules vs the spiking control.

Each candidate is a set of ``spiking`` settings over the legacy point (Bernoulli rate code at 200 Hz, T = 20,
rest at threshold, reset to 0, g = 4); every run is (8,4,8,2,2), P = 384, 128 test points, width 64, batch
32, >= 400 steps, every rule at its default learning rate.  Selected on seed 0, checked on seed 1::

    OMP_NUM_THREADS=1 nice -n 5 python experiments/spiking/operating_point.py --out results/operating_point.jsonl
    OMP_NUM_THREADS=1 nice -n 5 python experiments/spiking/operating_point.py --seed 1 --only default \\
        --out results/operating_point.jsonl
    python experiments/spiking/operating_point.py --table results/operating_point.jsonl

One JSON line per run: candidate, rule, seed, settings, test error, wall time and ``metrics.energy`` (active
fraction, largest one-step volley and mean rate per layer).  About 50 runs, 10-40 s each on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

OLD = {"code": "rate", "T": 20, "v_rest": 1.0, "reset": "zero", "v_init": "rest", "drive": 4.0}
REGULAR = {"code": "regular"}
POP5 = {"code": "population", "population_size": 5}
ZERO_G4 = {"v_rest": 0.0, "reset": "subtract", "v_init": "half"}
ZERO_G8 = {**ZERO_G4, "drive": 8.0}
HALF_G4 = {"v_rest": 0.5, "reset": "subtract"}
HALF_G8 = {**HALF_G4, "drive": 8.0}
AT_TH_SUB = {"reset": "subtract", "v_init": "half"}
CANDIDATES = {
    "legacy point": {},
    "rest 0, subtract, start v_th/2": ZERO_G4,
    "rest 0, subtract, start v_th/2, g 8": ZERO_G8,
    "rest v_th/2, subtract": HALF_G4,
    "rest v_th/2, subtract, g 8": HALF_G8,
    "rest 0.8, subtract, start v_th/2": {"v_rest": 0.8, "reset": "subtract", "v_init": "half"},
    "rest v_th, subtract, start v_th/2": AT_TH_SUB,
    "regular; legacy point": REGULAR,
    "regular; rest v_th, subtract, start v_th/2": {**REGULAR, **AT_TH_SUB},
    "regular; rest v_th/2, subtract, g 8": {**REGULAR, **HALF_G8},
    "population 5; rest v_th, subtract, start v_th/2": {**POP5, **AT_TH_SUB},
    "population 5; rest v_th/2, subtract, g 8": {**POP5, **HALF_G8},
    "regular, T 30; rest v_th, subtract, start v_th/2": {**REGULAR, **AT_TH_SUB, "T": 30},
    "regular, T 30; rest v_th/2, subtract, g 8": {**REGULAR, **HALF_G8, "T": 30},
    "regular, T 30; rest v_th/2, subtract, g 8, tau_elig 30 ms": {**REGULAR, **HALF_G8, "T": 30, "tau_elig": 0.03},
    "regular, T 30; rest v_th/2, subtract, g 6": {**REGULAR, **HALF_G4, "drive": 6.0, "T": 30},
}
RULES = ("random-features", "dfa", "clapp")


def config(rule: str, seed: int, spiking: dict | None):
    """``spiking=None``: the back end's defaults; else ``OLD`` with ``spiking`` on top."""
    from spiking_rhm.config import RunConfig

    data = {"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 384, "P_test": 128, "rule": rule,
            "backend": "norse", "net": {"width": 64}, "seed": seed,
            "optim": {"epochs": 30, "batch_size": 32, "min_steps": 400}}
    if spiking is not None:
        data["spiking"] = {**OLD, **spiking}
    return RunConfig.from_dict(data)


def run(out: Path, seed: int, only: list[str] | None) -> None:
    from spiking_rhm.backends.norse.train import train_norse

    candidates = {**CANDIDATES, "default": None}
    for name in only or list(CANDIDATES):
        for rule in RULES:
            start = time.perf_counter()
            m = train_norse(config(rule, seed, candidates[name]))
            e = m["energy"]
            rec = {"candidate": name, "rule": rule, "seed": seed, "spiking": candidates[name],
                   "test_error": m["test_error"], "wall_s": time.perf_counter() - start, "active": e["active"],
                   "max_step_fraction": e["max_step_fraction"], "rate_hz": e["rate_hz"]}
            print(json.dumps(rec), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")


def table(path: Path) -> str:
    rows: dict[tuple[str, int], dict[str, float]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows.setdefault((r["candidate"], r["seed"]), {})[r["rule"]] = r["test_error"]
    out = ["| candidate | seed | control | dfa | clapp |", "|---|---|---|---|---|"]
    for (name, seed), errs in rows.items():
        out.append(f"| {name} | {seed} | " + " | ".join(f"{errs.get(r, float('nan')):.3f}" for r in RULES) + " |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", help="candidate names (default: all; 'default' = the back end's defaults)")
    ap.add_argument("--table", type=Path, help="print the markdown table of a JSONL file and exit")
    a = ap.parse_args(argv)
    if a.table:
        print(table(a.table))
        return
    if a.out is None:
        ap.error("--out is required")
    run(a.out, a.seed, a.only)


if __name__ == "__main__":
    main()
