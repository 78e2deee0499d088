"""Time from the command line to the error: every malformed input of tests/cli/bad_inputs.py, run as
``python -m spiking_rhm.cli ...`` in a fresh process (wall time, best of ``--repeats``), plus
``spiking-rhm --help`` and ``spiking-rhm rules`` for reference.

    OMP_NUM_THREADS=1 python benchmarks/cli_errors.py [--repo PATH] [--repeats 3]

``--repo`` times another checkout (its code first on PYTHONPATH), e.g. to compare with a branch.
Last line: ``max_error_s=<slowest error> median_error_s=<median>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import best_of

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from bad_inputs import BAD_INPUTS  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=ROOT, help="checkout whose spiking_rhm is timed")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(args.repo.resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        def run(cli_args):
            cli_args = [a.replace("{tmp}", tmp) for a in cli_args]
            return subprocess.run([sys.executable, "-c", "from spiking_rhm.cli import main; main()", *cli_args],
                                  capture_output=True, text=True, env=env, cwd=tmp)

        times = []
        print(f"{'s':>6}  exit  lines  command")
        for cli_args, _ in BAD_INPUTS:
            seconds, proc = best_of(lambda: run(cli_args), args.repeats)
            times.append(seconds)
            lines = len([line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()])
            print(f"{seconds:6.2f}  {proc.returncode:4d}  {lines:5d}  {' '.join(cli_args)}")
        for reference in (["--help"], ["rules"]):
            seconds, proc = best_of(lambda: run(reference), args.repeats)
            print(f"{seconds:6.2f}  {proc.returncode:4d}  {'-':>5}  {' '.join(reference)}  (reference)")
    print(f"max_error_s={max(times):.2f} median_error_s={statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
