"""P* table and figures from synthetic records (exact expected P*), missing data skipped with a note."""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from experiments.analysis import curves, format_pstar_table, pstar_rows
from experiments.plots import plot_all
from experiments.store import ResultStore


def record(rule, rhm, P, seed, error, status="ok", lr=None, metrics=None):
    config = {"rhm": dict(zip(("v", "m", "n_c", "s", "L"), rhm), rule_seed=0), "rule": rule, "backend": "rate",
              "P": P, "P_test": 1000, "seed": seed, "optim": {"lr": lr}}
    return {"run_id": f"{rule}-{rhm}-{P}-{seed}-{lr}".replace(" ", ""), "rule": rule, "backend": "rate", "P": P,
            "P_test": 1000, "seed": seed, "status": status, "test_error": error if status == "ok" else None,
            "train_error": 0.0, "metrics": metrics or {}, "config": config, "version": "0", "wall_time": 1.0}


def synthetic(with_layers=True):
    """bp: error = 1 - 0.25 log2(P / (n_c m^L / 4)) (P* at 0.1 = 2^1.6 / 4 n_c m^L, linear in log P);
    dfa: never learns; two RHM settings."""
    records = []
    for rhm in [(8, 4, 8, 2, 2), (8, 4, 8, 2, 3)]:
        scale = rhm[2] * rhm[1] ** rhm[4]
        for k in range(6):
            P = int(scale / 4 * 2**k)
            for seed in range(3):
                err = float(np.clip(1 - 0.25 * k, 0, 1))
                sens = {"levels": [1, 0], "layers": [[1.0 / (k + 1), 0.9], [0.5 / (k + 1), 0.8]]}
                metrics = {"sensitivity": sens, "alignment": [{"step": 0, "epoch": 1, "cosine": [0.9, 1.0]}]}
                records.append(record("bp", rhm, P, seed, err, metrics=metrics if with_layers else None))
                records.append(record("dfa", rhm, P, seed, 0.8, status="diverged" if k == 5 else "ok"))
    return records


def test_pstar_rows_exact_on_synthetic_curves():
    rows = pstar_rows(synthetic(), eps=0.1, n_boot=100)
    bp = [r for r in rows if r["rule"].startswith("bp")]
    assert len(bp) == 2 and len(rows) == 4
    for row in bp:
        scale = row["scale"]
        expected = scale / 4 * 2 ** 3.6  # 1 - 0.25 k = 0.1 at k = 3.6
        assert row["pstar"].value == pytest.approx(expected, rel=1e-9)
        assert row["pstar"].low == row["pstar"].high == pytest.approx(expected, rel=1e-9)  # identical seeds
        assert row["ratio"] == pytest.approx(2**3.6 / 4, rel=1e-9)
    dfa = [r for r in rows if r["rule"].startswith("dfa")]
    assert all(math.isinf(r["pstar"].value) and "1 diverged" not in r["notes"] and "3 diverged" in r["notes"]
               for r in dfa)
    table = format_pstar_table(rows, 0.1)
    assert "bp [rate]" in table and "inf" in table and "never" in table


def test_curves_separate_variants():
    records = [record("bp", (8, 4, 8, 2, 2), P, 0, 0.5, lr=lr) for P in (64, 128) for lr in (0.1, 1.0)]
    found = curves(records)
    assert len(found) == 2 and {c.variant for c in found} == {"optim.lr=0.1", "optim.lr=1.0"}


def test_a_record_without_a_newer_config_field_joins_the_curve_of_records_with_its_default():
    from spiking_rhm.config import RunConfig

    old = [record("bp", (8, 4, 8, 2, 2), P, 0, 0.5) for P in (64, 128)]
    new = [record("bp", (8, 4, 8, 2, 2), P, 1, 0.4) for P in (64, 128)]
    for rec in new:  # written after spiking.weight_bits existed: the field at its default
        rec["config"]["spiking"] = {"weight_bits": RunConfig().spiking.weight_bits}
    found = curves(old + new)
    assert len(found) == 1 and found[0].variant == "" and found[0].seeds == [(0, 0), (0, 1)]
    new[0]["config"]["spiking"]["weight_bits"] = 8  # a non-default value still makes its own curve
    assert sorted(c.variant for c in curves(old + new)) == ["spiking.weight_bits=8", "spiking.weight_bits=None"]


def test_plot_all_writes_png_and_pdf(tmp_path):
    files, notes = plot_all(synthetic(), tmp_path, eps=0.1)
    names = sorted(p.name for p in files)
    assert names == sorted(f"{n}.{e}" for n in ("learning_curves", "pstar_scaling", "sensitivity", "alignment")
                           for e in ("png", "pdf"))
    assert all(p.stat().st_size > 1000 for p in files) and not notes


def test_plot_skips_missing_data_with_a_note(tmp_path):
    one_setting = [r for r in synthetic(with_layers=False) if r["config"]["rhm"]["L"] == 2]
    files, notes = plot_all(one_setting, tmp_path)
    assert sorted(p.name for p in files) == ["learning_curves.pdf", "learning_curves.png"]
    assert any("one RHM setting" in n for n in notes) and any("sensitivity" in n for n in notes)
    assert any("alignment" in n for n in notes)


def test_cli_pstar_and_plot_on_a_store(tmp_path):
    from spiking_rhm.cli import cli

    store = ResultStore(tmp_path)
    for r in synthetic():
        store.add(r)
    runner = CliRunner()
    result = runner.invoke(cli, ["pstar", str(tmp_path), "--boot", "50"])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("bp [rate]") and "8,4,8,2,2" in l)
    assert f"{128 / 4 * 2 ** 3.6:.4g}" in line
    result = runner.invoke(cli, ["plot", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figures" / "learning_curves.pdf").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(cli, ["pstar", str(empty)]).exit_code == 2


def _grammar(rec, rule_seed, train_error=0.0):
    rec = {**rec, "config": {**rec["config"], "rhm": {**rec["config"]["rhm"], "rule_seed": rule_seed}},
           "run_id": f"{rec['run_id']}-g{rule_seed}", "train_error": train_error}
    return rec


def test_grammars_of_one_setting_form_one_curve_with_rows_per_grammar_and_seed():
    rhm = (8, 4, 8, 2, 2)
    records = [_grammar(record("bp", rhm, P, seed, 0.5 - 0.1 * k - 0.05 * g), g)
               for g in range(3) for seed in range(2) for k, P in enumerate([64, 128, 256])]
    (curve,) = curves(records)
    assert curve.rule_seed == "0,1,2" and curve.variant == ""
    assert curve.seeds == [(g, s) for g in range(3) for s in range(2)]
    np.testing.assert_allclose(curve.errors[:, 0], [0.5, 0.5, 0.45, 0.45, 0.4, 0.4])
    (row,) = pstar_rows(records, eps=0.1, n_boot=50)
    assert row["n_seeds"] == 6


def test_pstar_flags_curves_not_trained_to_zero_train_error():
    rhm = (8, 4, 8, 2, 2)
    good = [record("bp", rhm, P, 0, 0.5 / (k + 1)) for k, P in enumerate([64, 128, 256])]
    bad = [_grammar(record("dfa", rhm, P, 0, 0.5 / (k + 1)), 0, train_error=0.2 if P == 256 else 0.0)
           for k, P in enumerate([64, 128, 256])]
    rows = {r["rule"]: r for r in pstar_rows(good + bad, eps=0.2, n_boot=20)}
    assert rows["bp [rate]"]["converged"] and "NOT CONVERGED" not in rows["bp [rate]"]["notes"]
    assert not rows["dfa [rate]"]["converged"]
    assert "NOT CONVERGED: train error 0.200 at P = 256" in rows["dfa [rate]"]["notes"]


def test_cli_pstar_scoring_rescores_and_says_which(tmp_path):
    from spiking_rhm.cli import cli as main

    store = ResultStore(tmp_path)
    rhm = (8, 4, 8, 2, 2)
    for k, P in enumerate([64, 128, 256]):
        metrics = {"online_readout": {"test_error": 0.9, "train_error": 0.5},
                   "probe": {"test_error": 0.4 / (k + 1), "train_error": 0.0}, "evaluation": "online readout"}
        store.add(record("bp", rhm, P, 0, 0.9, metrics=metrics))
    runner = CliRunner()
    online = runner.invoke(main, ["pstar", str(tmp_path), "--eps", "0.2", "--boot", "10", "--scoring", "online"])
    probe = runner.invoke(main, ["pstar", str(tmp_path), "--eps", "0.2", "--boot", "10", "--scoring", "probe"])
    assert online.exit_code == 0 and probe.exit_code == 0
    assert "scoring: online readout" in online.output and "scoring: linear probe" in probe.output
    assert "inf" in online.output and "NOT CONVERGED" in online.output
    assert "inf" not in probe.output.split("\n")[3]


def test_cli_plot_scoring_draws_the_chosen_test_error_and_names_it(tmp_path, monkeypatch):
    from experiments import plots
    from spiking_rhm.cli import cli as main

    store = ResultStore(tmp_path)
    for k, P in enumerate([64, 128, 256]):
        metrics = {"online_readout": {"test_error": 0.9, "train_error": 0.5},
                   "probe": {"test_error": 0.4 / (k + 1), "train_error": 0.0}, "evaluation": "online readout"}
        store.add(record("bp", (8, 4, 8, 2, 2), P, 0, 0.9, metrics=metrics))
    seen = {}

    def capture(fig, out, name):
        if name == "learning_curves":
            (ax,) = [ax for ax in fig.axes if ax.get_visible()]
            seen[name] = (ax.get_ylabel(), next(l.get_ydata() for l in ax.get_lines() if l.get_label().startswith("bp")))
        return []

    monkeypatch.setattr(plots, "_save", capture)
    expected = {"recorded": ("test error", [0.9] * 3), "online": ("test error (online readout)", [0.9] * 3),
                "probe": ("test error (linear probe)", [0.4, 0.2, 0.4 / 3])}
    for scoring, (label, errors) in expected.items():
        result = CliRunner().invoke(main, ["plot", str(tmp_path), "--scoring", scoring])
        assert result.exit_code == 0, result.output
        assert seen["learning_curves"][0] == label
        np.testing.assert_allclose(seen["learning_curves"][1], errors)


def test_learning_curves_keep_a_rule_colour_across_panels_and_a_row_per_setting(tmp_path, monkeypatch):
    """Panels sorted by (setting, grammar, back end), a column per back end; a rule's line has the same colour in
    every panel, also when a panel lacks a rule (the first setting has no bp here: the colour cycle shifted)."""
    from experiments import plots

    records = [r for r in synthetic(with_layers=False) if not (r["rule"] == "bp" and r["config"]["rhm"]["L"] == 2)]
    norse = [{**r, "backend": "norse", "run_id": r["run_id"] + "-n", "config": {**r["config"], "backend": "norse"}}
             for r in records]
    seen = {}

    def capture(fig, out, name):
        seen["axes"] = [ax for ax in fig.axes if ax.get_visible()]
        return []

    monkeypatch.setattr(plots, "_save", capture)
    plots.plot_learning_curves(curves((records + norse)[::-1]), tmp_path)  # reversed: order must not follow records
    axes = seen["axes"]
    assert len(axes) == 4 and axes[0].get_gridspec().ncols == 2
    assert ["(8,4,8,2,2)" in ax.get_title() for ax in axes] == [True, True, False, False]
    assert [ax.get_title().split(", ")[-1].split(";")[0] for ax in axes] == ["norse", "rate"] * 2
    colours = {}
    for ax in axes:
        for line in ax.get_lines():
            rule = line.get_label().split(" [")[0]
            if rule in ("bp", "dfa"):
                colours.setdefault(rule, set()).add(line.get_color())
    assert all(len(c) == 1 for c in colours.values()) and colours["bp"] != colours["dfa"]
