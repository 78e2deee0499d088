"""A sweep with stacked runs: one record per run, equal to the sweep that trains every run alone."""

import pytest

from experiments import stacking
from experiments.store import read_results
from experiments.sweep import SweepConfig, run_sweep

pytest.importorskip("rate_models.stacked")

SWEEP = {"rules": ["dfa", "bp-unmasked"], "P": [128], "seeds": [0, 1, 2], "workers": 1, "P_test": 128,
         "rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "net": {"width": 16}, "optim": {"epochs": 3}}


def test_stacked_sweep_records_equal_unstacked_sweep(tmp_path):
    sweep = SweepConfig.from_dict({**SWEEP, "stack": 2})
    groups = stacking.jobs(sweep.runs(), sweep.stack)
    assert sorted(len(g) for g in groups) == [1, 1, 1, 1, 2]  # dfa: 3 seeds as 2 + 1; bp-unmasked alone
    summary = run_sweep(sweep, tmp_path / "stacked", progress=False)
    assert summary.statuses == {"ok": 6}
    alone = run_sweep(SweepConfig.from_dict({**SWEEP, "stack": 1}), tmp_path / "alone", progress=False)
    assert alone.statuses == {"ok": 6}
    stacked = {r["run_id"]: r for r in read_results(tmp_path / "stacked")}
    single = {r["run_id"]: r for r in read_results(tmp_path / "alone")}
    assert sorted(stacked) == sorted(single)
    sizes = sorted(r["metrics"].get("stack", {}).get("size", 1) for r in stacked.values())
    assert sizes == [1, 1, 1, 1, 2, 2]
    for run_id, record in stacked.items():
        assert "stack" not in single[run_id]["metrics"]
        assert record["test_error"] == pytest.approx(single[run_id]["test_error"], abs=1.5 / 128)
        assert record["metrics"]["test_loss"] == pytest.approx(single[run_id]["metrics"]["test_loss"], rel=1e-4)
    again = run_sweep(sweep, tmp_path / "stacked", progress=False)  # resumes: nothing left to run
    assert again.skipped == 6 and not again.statuses


def test_a_sweep_stacks_only_when_asked():
    """Default stack = 1: a sweep without ``stack`` trains every run alone (stacked runs of chaotic settings end
    elsewhere than alone, docs/performance.md)."""
    runs = SweepConfig.from_dict(SWEEP).runs()
    assert stacking.default_stack() == 1
    assert [len(g) for g in stacking.jobs(runs, None)] == [1] * len(runs)
    assert sorted(len(g) for g in stacking.jobs(runs, 3)) == [1, 1, 1, 3]


def test_stack_must_be_a_positive_integer():
    from spiking_rhm.errors import ConfigError

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="stack must be an integer >= 1"):
            SweepConfig.from_dict({**SWEEP, "stack": bad})


def test_cli_curve_stack_option(tmp_path):
    from click.testing import CliRunner

    from spiking_rhm.cli import cli

    args = ["curve", "--rule", "dfa", "--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2", "--P", "128",
            "--P-test", "128", "--seeds", "0,1", "--epochs", "2", "--width", "16", "--workers", "1", "--quiet",
            "--out", str(tmp_path / "out")]
    bad = CliRunner().invoke(cli, [*args, "--stack", "0"])
    assert bad.exit_code == 2 and "stack must be an integer >= 1" in bad.output and "Traceback" not in bad.output
    good = CliRunner().invoke(cli, [*args, "--stack", "2"])
    assert good.exit_code == 0, good.output
    assert [r["metrics"]["stack"]["size"] for r in read_results(tmp_path / "out")] == [2, 2]
