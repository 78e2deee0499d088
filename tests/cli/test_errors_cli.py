"""Every malformed command line of tests/cli/bad_inputs.py: one ``error:`` line, exit code 2, and neither torch
nor Norse nor Brian2 imported (checked in ``sys.modules`` of a fresh interpreter, not with a clock)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bad_inputs import BAD_INPUTS

HERE = Path(__file__).parent
HEAVY = ("torch", "norse", "brian2", "lava")

SCRIPT = textwrap.dedent("""
    import json, sys
    from click.testing import CliRunner
    from spiking_rhm.cli import cli
    results = []
    for args in json.loads(sys.argv[1]):
        result = CliRunner().invoke(cli, args)
        results.append({"args": args, "code": result.exit_code, "output": result.output,
                        "heavy": [m for m in %r if m in sys.modules]})
    print(json.dumps(results))
""" % (HEAVY,))


def test_bad_inputs_are_one_line_exit_2_without_torch(tmp_path):
    cases = [[a.replace("{tmp}", str(tmp_path)) for a in args] for args, _ in BAD_INPUTS]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(cases)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    problems = []
    for result, (_, needle) in zip(results, BAD_INPUTS):
        lines = [line for line in result["output"].splitlines() if line.strip()]
        ok = (result["code"] == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
              and not result["heavy"])
        if not ok:
            problems.append(f"{' '.join(result['args'])} -> exit {result['code']}, imported {result['heavy']}: "
                            f"{result['output']!r}")
        if result["heavy"]:
            break  # later cases would inherit the import
    assert not problems, "\n".join(problems)
    assert list(tmp_path.iterdir()) == []  # nothing created by a refused command


def test_usage_error_of_a_real_process_is_one_line():
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
    proc = subprocess.run([sys.executable, "-m", "spiking_rhm.cli", "train", "--seed", "a"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["error: Invalid value for '--seed': 'a' is not a valid integer. "
                                        "(see `spiking-rhm train --help`)"]
