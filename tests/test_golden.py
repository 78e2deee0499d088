"""Behaviour pinned across refactorings: a fixed small set of runs against committed golden values.

Rate bp, dfa, clapp, sibling-cca and Norse dfa, clapp train end to end (the whole record, timing
removed, and the norms/sums of the trained weights must match); Norse's learner update must equal
Brian2's and Lava's on-chip update on the same spikes, and match its golden norms.  Every spiking
option is pinned in ``tests/golden/cases.py``.  Floats: relative 1e-4 (float32 training; a changed order of float32 sums moves the converged probe's norm by ~1e-5);
integers, strings and errors exactly.  Regenerate with ``python tests/golden/make_golden.py``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import cases  # noqa: E402

GOLDEN = json.loads(cases.GOLDEN.read_text())
RTOL, ATOL = 1e-4, 1e-8
AGREEMENT = {"brian2-vs-norse": 1e-4, "lava-vs-norse": 1e-9}  # the tolerances of the agreement tests


def assert_close(got, want, where="") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{where}: {got!r} != {want!r}"
        assert math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("name", [*cases.RATE_RUNS, *cases.NORSE_RUNS])
def test_training_run_matches_golden(name):
    if name.startswith("norse"):
        pytest.importorskip("norse")
    got = json.loads(json.dumps(cases.compute([name])[name]))
    assert_close(got, GOLDEN[name], name)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", sorted(AGREEMENT))
def test_learning_update_agreement_matches_golden(name):
    got = cases.compute([name])[name]
    if got is None:
        pytest.skip(f"{name}: simulator not installed")
    assert max(got["rel_err"]) < AGREEMENT[name]
    assert_close({k: v for k, v in got.items() if k != "rel_err"},
                 {k: v for k, v in GOLDEN[name].items() if k != "rel_err"}, name)


def test_comparison_can_fail():
    """A changed number, key or length is reported."""
    want = GOLDEN["rate-dfa"]
    for bad in ({**want, "test_error": want["test_error"] + 1e-3}, {**want, "extra": 1},
                {**want, "metrics": {**want["metrics"], "alignment": want["metrics"]["alignment"][:-1]}}):
        with pytest.raises(AssertionError):
            assert_close(bad, want)
