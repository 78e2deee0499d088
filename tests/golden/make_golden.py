"""Regenerate tests/golden/golden.json (only when a change of behaviour is intended).

    OMP_NUM_THREADS=1 PYTHONPATH=. python tests/golden/make_golden.py
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from cases import GOLDEN, compute  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    values = compute()
    GOLDEN.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({', '.join(k for k, v in values.items() if v is not None)})")
