"""``--ratio-to``: P*(rule) / P*(reference) over shared (grammar, seed) pairs, against a hand computation and an
independent paired bootstrap; unshared pairs left out; inf handled; an unknown reference is one line, exit 2."""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from experiments.analysis import format_ratio_table, pstar_ratio_rows
from experiments.report import RATIO_COLUMNS, build_report, read_csv
from experiments.store import ResultStore
from spiking_rhm.cli import cli

SIZES = [100, 200, 400, 800]
BASE = {"bp": [0.6, 0.3, 0.05, 0.0], "fa": [0.8, 0.5, 0.2, 0.04], "never": [0.8, 0.7, 0.6, 0.5]}
SLOPE = {"bp": (0.02, 0.01), "fa": (0.03, -0.01), "never": (0.0, 0.0)}  # error += a * grammar + b * seed


def error(rule, grammar, seed, k):
    a, b = SLOPE[rule]
    return BASE[rule][k] + a * grammar + b * seed


def record(rule, grammar, seed, P):
    rhm = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2, "rule_seed": grammar}
    config = {"rhm": rhm, "rule": rule, "backend": "rate", "P": P, "P_test": 1000, "seed": seed}
    return {"run_id": f"{rule}-{grammar}-{seed}-{P}", "rule": rule, "backend": "rate", "P": P, "P_test": 1000,
            "seed": seed, "status": "ok", "test_error": error(rule, grammar, seed, SIZES.index(P)),
            "train_error": 0.0, "metrics": {}, "config": config, "version": "0", "wall_time": 1.0}


PAIRS = [(g, s) for g in (0, 1) for s in (0, 1)]


def synthetic():
    """bp, fa and never on 2 grammars x 2 seeds; fa also has (grammar 1, seed 2), which bp lacks."""
    records = [record(rule, g, s, P) for rule in BASE for g, s in PAIRS for P in SIZES]
    return records + [record("fa", 1, 2, P) for P in SIZES]


def hand_pstar(mean, eps=0.1):
    """First crossing of eps, linear in log P, written out (not via spiking_rhm.metrics)."""
    for k in range(1, len(SIZES)):
        if mean[k] <= eps < mean[k - 1]:
            frac = (mean[k - 1] - eps) / (mean[k - 1] - mean[k])
            return math.exp(math.log(SIZES[k - 1]) + frac * (math.log(SIZES[k]) - math.log(SIZES[k - 1])))
    return math.inf


def mean_curve(rule, pairs):
    return [sum(error(rule, g, s, k) for g, s in pairs) / len(pairs) for k in range(len(SIZES))]


def test_ratio_equals_a_hand_computation_over_the_shared_pairs():
    rows = pstar_ratio_rows(synthetic(), "bp", eps=0.1, n_boot=200)
    assert [row["curve"].rule for row in rows] == ["fa", "never"]
    fa, never = rows
    want_fa, want_bp = hand_pstar(mean_curve("fa", PAIRS)), hand_pstar(mean_curve("bp", PAIRS))
    assert 400 < want_fa < 800 and 200 < want_bp < 400  # both cross inside the range
    result = fa["result"]
    assert result.n_pairs == 4  # fa's (1, 2) has no bp partner: left out
    assert result.a == pytest.approx(want_fa, rel=1e-12) and result.b == pytest.approx(want_bp, rel=1e-12)
    assert result.value == pytest.approx(want_fa / want_bp, rel=1e-12)
    assert result.low <= result.value <= result.high
    assert "1 (grammar, seed) pair(s) of fa [rate] not shared" in fa["notes"]
    for g in (0, 1):
        grammar_pairs = [(g, s) for s in (0, 1)]
        want = hand_pstar(mean_curve("fa", grammar_pairs)) / hand_pstar(mean_curve("bp", grammar_pairs))
        assert fa["per_grammar"][g] == pytest.approx(want, rel=1e-12)
    # a rule that never reaches eps: inf (point, interval, every grammar), never NaN
    assert never["result"].value == never["result"].low == never["result"].high == math.inf
    assert never["per_grammar"] == {0: math.inf, 1: math.inf}
    assert "rule never reaches eps: ratio inf" in never["notes"]
    table = format_ratio_table(rows, 0.1)
    assert "nan" not in table.lower() and "inf" in table


def test_ratio_interval_is_an_independent_paired_bootstrap_with_the_same_seed():
    """The interval is the percentile interval of the ratio over resamples that draw the SAME pairs for both rules,
    rewritten here from numpy alone: default_rng(0), n_boot draws of n_pairs indices."""
    n_boot, confidence = 300, 0.8
    (fa, _) = pstar_ratio_rows(synthetic(), "bp", eps=0.1, n_boot=n_boot, confidence=confidence)
    err = {rule: np.array([[error(rule, g, s, k) for k in range(len(SIZES))] for g, s in PAIRS]) for rule in BASE}
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(PAIRS), size=len(PAIRS))
        boots.append(hand_pstar(err["fa"][idx].mean(0)) / hand_pstar(err["bp"][idx].mean(0)))
    boots.sort()
    alpha = (1 - confidence) / 2
    low, high = boots[math.floor(alpha * (n_boot - 1))], boots[math.ceil((1 - alpha) * (n_boot - 1))]
    assert (fa["result"].low, fa["result"].high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    assert low < high  # a real spread, so the comparison can fail


def test_identical_curves_give_exactly_one_with_a_degenerate_interval():
    """Pairing: a rule with the same errors as the reference on every pair has ratio 1 in every resample; an
    unpaired bootstrap would spread it (the pairs' curves differ)."""
    records = synthetic()
    records += [{**r, "rule": "copy", "run_id": "copy-" + r["run_id"], "config": {**r["config"], "rule": "copy"}}
                for r in records if r["rule"] == "bp"]
    (copy,) = [row for row in pstar_ratio_rows(records, "bp", n_boot=200) if row["curve"].rule == "copy"]
    assert (copy["result"].value, copy["result"].low, copy["result"].high) == (1.0, 1.0, 1.0)
    assert set(copy["per_grammar"].values()) == {1.0} and copy["notes"] == ""


@pytest.fixture
def stored(tmp_path):
    store = ResultStore(tmp_path / "sweep")
    for rec in synthetic():
        store.add(rec)
    return tmp_path / "sweep"


def test_report_ratio_to_prints_the_table_and_writes_csv(stored, tmp_path):
    csv_path = tmp_path / "ratio.csv"
    result = CliRunner().invoke(cli, ["report", str(stored), "--boot", "50", "--ratio-to", "bp",
                                      "--ratio-csv", str(csv_path)])
    assert result.exit_code == 0, result.output
    report = build_report([str(stored)], n_boot=50, ratio_to="bp")
    assert result.output.replace(f"wrote {csv_path}\n", "") == report.markdown()
    assert "### P* / P*(bp), 90 % paired bootstrap interval" in result.output
    assert "ratio = P*(rule) / P*(bp)" in result.output
    rows = read_csv(csv_path)
    assert list(rows[0]) == list(RATIO_COLUMNS) and [r["rule"] for r in rows] == ["fa", "never"]
    want = hand_pstar(mean_curve("fa", PAIRS)) / hand_pstar(mean_curve("bp", PAIRS))
    assert float(rows[0]["ratio"]) == pytest.approx(want, rel=1e-5) and rows[0]["n_pairs"] == "4"
    assert rows[1]["ratio"] == rows[1]["ratio_low"] == rows[1]["ratio_high"] == "inf"
    plain = CliRunner().invoke(cli, ["pstar", str(stored), "--boot", "50", "--ratio-to", "bp"])
    assert plain.exit_code == 0 and f"{want:.2f}" in plain.output and "paired interval" in plain.output


@pytest.mark.parametrize("command, args, message", [
    ("report", ["--ratio-to", "nosuch"], "no runs of the reference rule 'nosuch' (rules here: bp, fa, never)"),
    ("pstar", ["--ratio-to", "nosuch"], "no runs of the reference rule 'nosuch'"),
    ("report", ["--ratio-csv", "x.csv"], "--ratio-csv needs --ratio-to RULE"),
])
def test_unknown_reference_is_one_line_and_exit_2(stored, command, args, message):
    result = CliRunner().invoke(cli, [command, str(stored), "--boot", "10", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
