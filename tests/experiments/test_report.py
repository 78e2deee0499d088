"""experiments.report and ``spiking-rhm report``: tables of a small stored sweep (fake trainer) against
the fake error law computed by hand."""

import math

import pytest
import sweep_fakes
from click.testing import CliRunner

from experiments.report import PSTAR_COLUMNS, SUMMARY_COLUMNS, build_report, read_csv, to_csv
from experiments.sweep import SweepConfig, run_sweep
from spiking_rhm.cli import cli
from spiking_rhm.rules import base

RHM = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 3}  # n_c m^L = 512
SIZES = [128, 256, 1024]
SEEDS = [0, 1]


@pytest.fixture(autouse=True)
def fake_rule(monkeypatch):
    base._load_builtin_rules()
    monkeypatch.setitem(base._REGISTRY, "fake", sweep_fakes.FakeRule)


@pytest.fixture
def sweep_dir(tmp_path):
    """A stored sweep: 'fake' (default options) at 3 sizes x 2 seeds, and one diverged run of mode=diverge."""
    out = tmp_path / "sweep"
    base_sweep = {"rules": ["fake"], "rhm": dict(RHM), "workers": 1, "P_test": 100}
    run_sweep(SweepConfig.from_dict({**base_sweep, "P": SIZES, "seeds": SEEDS}), out,
              train_fn=sweep_fakes.fake_train, progress=False)
    run_sweep(SweepConfig.from_dict({**base_sweep, "P": [SIZES[0]], "seeds": [0],
                                     "rule_options": {"mode": "diverge"}}),
              out, train_fn=sweep_fakes.fake_train, progress=False)
    return out


def expected_mean(P):
    """Seed mean of the fake law min(0.9, 50/P) (1 + 0.1 seed), written out independently."""
    return sum(min(0.9, 50.0 / P) * (1.0 + 0.1 * s) for s in SEEDS) / len(SEEDS)


def test_report_reproduces_the_per_P_table_and_pstar_of_a_stored_sweep(sweep_dir, tmp_path):
    runner = CliRunner()
    md, summary_csv, pstar_csv = tmp_path / "r.md", tmp_path / "s.csv", tmp_path / "p.csv"
    result = runner.invoke(cli, ["report", str(sweep_dir), "--out", str(md), "--csv", str(summary_csv),
                                 "--pstar-csv", str(pstar_csv), "--boot", "50"])
    assert result.exit_code == 0, result.output

    rows = read_csv(summary_csv)
    assert list(rows[0]) == list(SUMMARY_COLUMNS)
    ok = [r for r in rows if r["variant"] == "rule_options.mode=None"]
    assert [int(r["P"]) for r in ok] == SIZES
    for row in ok:
        P = int(row["P"])
        errors = [min(0.9, 50.0 / P) * (1.0 + 0.1 * s) for s in SEEDS]
        assert float(row["test_error_mean"]) == pytest.approx(expected_mean(P), rel=1e-5)
        assert float(row["test_error_min"]) == pytest.approx(min(errors), rel=1e-5)
        assert float(row["test_error_max"]) == pytest.approx(max(errors), rel=1e-5)
        assert float(row["train_error_mean"]) == 0.0
        assert (row["n_runs"], row["n_ok"], row["n_diverged"], row["n_failed"]) == ("2", "2", "0", "0")
        assert row["seeds"] == "0 1" and float(row["P_rel"]) == pytest.approx(P / 512)
        assert row["online_test_error_mean"] == "" and row["probe_test_error_mean"] == ""  # the fake has neither
    (diverged,) = [r for r in rows if r["variant"] == "rule_options.mode=diverge"]
    assert (diverged["n_runs"], diverged["n_ok"], diverged["n_diverged"]) == ("1", "0", "1")
    assert float(diverged["test_error_mean"]) == pytest.approx(1 - 1 / 8)  # counted at chance, as in pstar

    # P*: the seed-mean curve first falls below 0.1 between P = 256 and 1024; linear in log P there
    e0, e1 = expected_mean(256), expected_mean(1024)
    want = math.exp(math.log(256) + (e0 - 0.1) / (e0 - e1) * (math.log(1024) - math.log(256)))
    stars = {r["variant"]: r for r in read_csv(pstar_csv)}
    assert list(next(iter(stars.values()))) == list(PSTAR_COLUMNS)
    assert float(stars["rule_options.mode=None"]["pstar"]) == pytest.approx(want, rel=1e-5)
    assert float(stars["rule_options.mode=None"]["pstar_rel"]) == pytest.approx(want / 512, rel=1e-5)
    assert stars["rule_options.mode=None"]["status"] == "reached"
    assert stars["rule_options.mode=diverge"]["pstar"] == "inf"

    text = md.read_text()
    assert f"## {sweep_dir}" in text
    assert f"| {want:.4g} |" in text
    assert f"{expected_mean(256):.3f} [" in text
    assert "wrote" in result.output


def test_report_prints_markdown_and_csv_matches_library(sweep_dir):
    result = CliRunner().invoke(cli, ["report", str(sweep_dir), "--boot", "20"])
    assert result.exit_code == 0, result.output
    report = build_report([str(sweep_dir)], n_boot=20)
    assert result.output == report.markdown()
    text = to_csv(report.summary, SUMMARY_COLUMNS)
    assert text.count("\n") == 1 + len(SIZES) + 1  # header, the ok curve, the diverged point


def test_report_scoring_probe_leaves_out_runs_without_a_probe(sweep_dir):
    report = build_report([str(sweep_dir)], n_boot=10, scoring="probe")
    (row,) = report.summary  # only the diverged run is left (it has no score to replace)
    assert (row["P"], row["n_diverged"], row["n_ok"]) == (SIZES[0], 1, 0)
    assert report.notes and "6 ok run(s) have no 'probe' scoring" in report.notes[0]


@pytest.mark.parametrize("args, message", [
    (["--eps", "2"], "eps must lie in (0, 1)"),
    (["--boot", "0"], "bootstrap resamples must be >= 1"),
    (["--csv", "/no/such/dir/x.csv"], "does not exist"),
])
def test_bad_report_input_is_one_line_and_exit_2(sweep_dir, args, message):
    result = CliRunner().invoke(cli, ["report", str(sweep_dir), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_report_of_a_directory_without_records_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "no results found" in result.output


def test_report_of_a_real_stored_sweep_matches_its_records(tmp_path):
    """A small real sweep (rate bp with an lr grid on validation points, and the random-features control, on two
    grammars): for both scorings, every per-P row is the mean of the records' own scores (read back from the
    stored JSON lines by hand), with the train error and the stop reasons; the P* table has one P* per grammar."""
    import json

    import numpy as np

    import rate_models  # noqa: F401
    from spiking_rhm.metrics import pstar_point

    out = tmp_path / "real"
    grammars, sizes = (0, 1), [128, 256]
    sweep = SweepConfig.from_dict({
        "rules": ["bp", "random-features"], "P": sizes, "seeds": [0], "P_test": 64, "workers": 1,
        "rhm": [{"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2, "rule_seed": g} for g in grammars],
        "net": {"width": 8}, "optim": {"epochs": 2, "validation": 0.25, "stop_train_error": 0.0},
        "overrides": {"bp": {"grid": {"lr": [0.3, 1.0]}}}})
    run_sweep(sweep, out, progress=False)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    assert all(r["metrics"]["selection"]["chosen"]["lr"] in (0.3, 1.0) for r in records if r["rule"] == "bp")

    eps = 0.8
    for scoring, key, name in (("online", "online_readout", "online readout"), ("probe", "probe", "linear probe")):
        report = build_report([str(out)], n_boot=10, eps=eps, scoring=scoring)
        assert not report.notes and report.headline.startswith(f"scoring: {name}")
        assert len(report.summary) == 2 * len(sizes)
        for row in report.summary:
            mine = [r for r in records if r["rule"] == row["rule"] and r["P"] == row["P"]]
            assert row["n_ok"] == len(grammars) and row["seeds"] == "0"
            assert row["test_error_mean"] == pytest.approx(np.mean([r["metrics"][key]["test_error"] for r in mine]))
            assert row["train_error_mean"] == pytest.approx(np.mean([r["metrics"][key]["train_error"] for r in mine]))
            assert row["online_test_error_mean"] == pytest.approx(
                np.mean([r["metrics"]["online_readout"]["test_error"] for r in mine]))
            assert row["probe_test_error_mean"] == pytest.approx(
                np.mean([r["metrics"]["probe"]["test_error"] for r in mine]))
            reasons = [r["metrics"]["stop_reason"] for r in mine]
            assert row["stop_reasons"] == ", ".join(f"{k} {reasons.count(k)}" for k in sorted(set(reasons)))
        for row in report.pstar:
            assert row["rule_seed"] == "0,1" and row["n_seeds"] == len(grammars)
            for g in grammars:
                curve = [np.mean([r["metrics"][key]["test_error"] for r in records if r["rule"] == row["rule"]
                                  and r["P"] == P and r["config"]["rhm"]["rule_seed"] == g]) for P in sizes]
                assert row["per_grammar"][g] == pstar_point(sizes, curve, eps)[0]
            worst = max(np.mean([r["metrics"][key]["train_error"] for r in records
                                 if r["rule"] == row["rule"] and r["P"] == P]) for P in sizes)
            assert row["train_error_worst"] == pytest.approx(worst)
        text = report.markdown()
        assert "P* per grammar" in text and "stopped by" in text and "g1:" in text
