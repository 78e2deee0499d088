"""`spiking-rhm rules` reads the rule metadata from the sources (no torch) and agrees with the registry."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from spiking_rhm.cli.rule_table import rule_rows
from spiking_rhm.cli.train import rule_lines

ROOT = Path(__file__).parents[2]


def test_static_rule_table_equals_the_registry():
    assert rule_lines(static=True) == rule_lines(static=False)
    assert rule_rows() is not None and len(rule_rows()) >= 10


def test_rules_command_imports_no_torch():
    script = "import sys\nfrom spiking_rhm.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n" \
             "print('torch' in sys.modules, file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", script, "rules"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stderr.strip() == "False"
    assert proc.stdout.splitlines() == rule_lines(static=False)


def test_what_cannot_be_read_statically_falls_back(tmp_path):
    (tmp_path / "base.py").write_text("class Rule:\n    name = ''\n    family = ''\n    supervised = True\n"
                                      "    summary = ''\n")
    (tmp_path / "a.py").write_text(textwrap.dedent("""
        @register
        class A(Rule):
            name = "a"
            family = "control"
            summary = "x" + "y"
    """))
    assert rule_rows(tmp_path) is None  # a computed summary
    (tmp_path / "a.py").write_text(textwrap.dedent("""
        class Mixin:
            family = "mixed"

        @register
        class A(Mixin, Rule):
            name = "a"
            summary = "xy"
            supervised: bool = False
    """))
    assert rule_rows(tmp_path) == [("a", "mixed", False, "xy")]
