"""P = P_max with the real rate back end: recorded as no-test-points (train metrics kept), never diverged."""

import json

from click.testing import CliRunner

from experiments.store import read_results
from spiking_rhm.cli import cli

SMALL = ["--rule", "bp", "--backend", "rate", "--v", "8", "--m", "2", "--nc", "8", "--s", "2", "--L", "2",
         "--epochs", "2", "--width", "8", "--quiet"]  # P_max = 64


def test_train_p_max_is_no_test_points(tmp_path):
    out = tmp_path / "record.json"
    result = CliRunner().invoke(cli, ["train", *SMALL, "--P", "max", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "status: no-test-points" in result.output and "leaves no test points (P_max = 64)" in result.output
    assert result.output.strip().splitlines()[-1] == "test_error: none (no test points)"
    record = json.loads(out.read_text())
    assert record["status"] == "no-test-points" and record["P"] == 64 and record["P_test"] == 0
    assert record["test_error"] is None and 0 <= record["train_error"] <= 1 and not record["metrics"]["diverged"]


def test_curve_up_to_p_max_records_no_diverged_run(tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(cli, ["curve", *SMALL, "--P", "32,64", "--seeds", "0", "--workers", "1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(r["status"] for r in read_results(out)) == ["no-test-points", "ok"]
    result = CliRunner().invoke(cli, ["pstar", str(out), "--boot", "10"])
    assert result.exit_code == 0 and "1 without test points (P = P_max; left out)" in result.output
    assert "diverged" not in result.output
