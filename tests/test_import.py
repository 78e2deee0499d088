"""`import spiking_rhm` and the CLI start-up stay light: no torch, brian2 or lava."""

import subprocess
import sys


def test_core_import_is_light():
    code = ("import sys, spiking_rhm, spiking_rhm.cli; "
            "print(','.join(m for m in ('torch', 'brian2', 'lava', 'norse') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
