"""Converted networks as rows of a sweep: ``backends = ["rate", "norse-converted"]`` gives one curve per back end
("bp [rate]", "bp [norse-converted]"), told apart by their simulation settings when those vary, and the report
tabulates them from the records' own numbers."""

import json

import numpy as np
import pytest

pytest.importorskip("norse")

from experiments.analysis import curves, pstar_rows  # noqa: E402
from experiments.report import build_report  # noqa: E402
from experiments.sweep import SweepConfig, run_sweep  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.norse

SIZES = [128, 256]


@pytest.fixture(scope="module")
def converted_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("converted_rows")
    base = {"rules": ["bp"], "P": SIZES, "seeds": [0], "P_test": 64, "workers": 1,
            "rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "net": {"width": 12}, "optim": {"epochs": 3}}
    run_sweep(SweepConfig.from_dict({**base, "backends": ["rate", "norse-converted"]}), out, progress=False)
    # the same rate networks converted at a longer window: a second curve of the same back end
    run_sweep(SweepConfig.from_dict({**base, "backends": ["norse-converted"], "spiking": {"T": 60}}), out,
              progress=False)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return out, records


def test_converted_runs_are_curves_of_their_own_labelled_by_back_end_and_settings(converted_sweep):
    _, records = converted_sweep
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    grouped = curves(records)
    assert sorted(c.label for c in grouped) == ["bp [norse-converted] spiking.T=30", "bp [norse-converted] spiking.T=60",
                                                "bp [rate]"]
    for curve in grouped:
        assert curve.P == SIZES and curve.errors.shape == (1, 2)
        assert all(r["backend"] == curve.backend for r in curve.records)
    rate = {r["P"]: r["test_error"] for r in records if r["backend"] == "rate"}
    for r in records:  # every conversion carries the rate run it converted
        if r["backend"] == "norse-converted":
            assert r["metrics"]["rate"]["test_error"] == rate[r["P"]]
    assert len(pstar_rows(records, eps=0.8, n_boot=10)) == 3


def test_the_report_shows_the_converted_rows_with_their_own_numbers(converted_sweep):
    out, records = converted_sweep
    report = build_report([str(out)], eps=0.8, n_boot=10)
    text = report.markdown()
    assert "| bp [norse-converted] spiking.T=30 | (8,4,8,2,2) |" in text and "| bp [rate] | (8,4,8,2,2) |" in text
    assert "rate network's online readout" in text
    rows = [r for r in report.summary if r["backend"] == "norse-converted"]
    assert len(rows) == 4
    for row in rows:
        T = int(row["variant"].split("=")[1])
        mine = [r for r in records if r["backend"] == "norse-converted" and r["P"] == row["P"]
                and r["config"]["spiking"]["T"] == T]
        assert len(mine) == 1
        assert row["test_error_mean"] == pytest.approx(mine[0]["test_error"])
        assert row["probe_test_error_mean"] == pytest.approx(mine[0]["metrics"]["probe"]["test_error"])
    assert len([r for r in report.pstar if r["backend"] == "norse-converted"]) == 2
    assert np.isfinite([r["test_error_mean"] for r in report.summary]).all()


def test_a_sweep_with_a_bad_conversion_setting_is_refused_before_running(tmp_path):
    with pytest.raises(ConfigError, match="convert.readout"):
        SweepConfig.from_dict({"rules": ["bp"], "P": [64], "backends": ["rate", "norse-converted"],
                               "rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "convert": {"readout": "x"}})
