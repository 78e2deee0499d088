"""The committed summary tables (DIR/summary.csv, DIR/pstar.csv) match the sweep configs that regenerate them:
each config expands to exactly the (setting, rule, back end, P) points and run counts of its table."""

import math
import re
from collections import Counter
from pathlib import Path

import pytest

from experiments.report import PSTAR_COLUMNS, SUMMARY_COLUMNS, read_csv
from experiments.sweep import SweepConfig
from spiking_rhm.config import load_config_file

ROOT = Path(__file__).resolve().parents[2]

# results directory -> the sweep configs (with the command-line changes of their script) that fill it
SWEEPS = {
    "experiments/results/claim1_bp_scaling": [("experiments/claims/claim1_bp_scaling.toml", {})],
    "experiments/results/claim1_bp_scaling_lr0.3": [("experiments/claims/claim1_bp_lr0.3.toml", {})],
    "experiments/results/claim2_direct_feedback": [("experiments/claims/claim2_direct_feedback.toml", {}),
                                                   ("experiments/claims/claim2_dfa_unmasked.toml", {})],
    # experiments/claims/claim2_lr_check.sh: --lr 0.3, --lr 0.1, --lr 0.01 --rule sdfa
    "experiments/results/claim2_lr_check": [("experiments/claims/claim2_lr_check.toml", {"optim.lr": 0.3}),
                                            ("experiments/claims/claim2_lr_check.toml", {"optim.lr": 0.1}),
                                            ("experiments/claims/claim2_lr_check.toml", {"optim.lr": 0.01,
                                                                                         "rules": ["sdfa"]})],
    "experiments/results/claim3_selfsupervised": [("experiments/claims/claim3_selfsupervised.toml", {})],
    "experiments/results/fair_claim1_reduced": [("experiments/claims/fair/claim1_reduced.toml", {})],
    "experiments/results/fair_claim2_reduced": [("experiments/claims/fair/claim2_reduced.toml", {})],
    "experiments/results/fair_claim2_L4_reduced": [("experiments/claims/fair/claim2_L4_reduced.toml", {})],
    "experiments/results/fair_claim2_L4_dfa_budget": [("experiments/claims/fair/claim2_L4_dfa_budget.toml", {})],
    "experiments/results/fair_claim3_reduced": [("experiments/claims/fair/claim3_reduced.toml", {})],
    # infonce and vicreg at 8 n_c m^L without the plateau rule, run with --rule infonce, then --rule vicreg
    "experiments/results/fair_claim3_L4_ssl_budget": [("experiments/claims/fair/claim3_L4_ssl_budget.toml", {})],
    # the self-supervised rules run with --rule RULE --P 2x,4x,8x; bp, reference-bp and the control at every P
    "experiments/results/fair_claim3_L4_reduced": [
        ("experiments/claims/fair/claim3_L4_reduced.toml", {"rules": ["bp", "reference-bp", "random-features"]}),
        ("experiments/claims/fair/claim3_L4_reduced.toml", {"rules": ["clapp", "sibling-cca", "vicreg", "infonce"],
                                                            "P": ["2x", "4x", "8x"]})],
    "experiments/results/fair_masking_reduced": [("experiments/claims/fair/masking_reduced.toml", {})],
    # run with --rule fa-unmasked first, then the whole config (fa)
    "experiments/results/fair_fa_unmasked_check": [("experiments/claims/fair/masking_fa_unmasked_check.toml", {})],
    # the four masking rules run with --rule ... --P 8x, then --P 4x; bp and the control at every P
    "experiments/results/fair_masking_L4_reduced": [
        ("experiments/claims/fair/masking_L4_reduced.toml", {"rules": ["bp", "random-features"]}),
        ("experiments/claims/fair/masking_L4_reduced.toml", {"rules": ["bp-unmasked", "fa", "fa-unmasked",
                                                                       "dfa-masked"], "P": ["4x", "8x"]})],
    "experiments/results/fair_sibling_cca_reduced": [("experiments/claims/fair/sibling_cca_reduced.toml", {})],
    # experiments/spiking/rate_vs_norse.sh: (8,4,8,2,2); (8,4,8,2,3) with its command-line additions
    "experiments/spiking/rate_vs_norse": [
        ("experiments/spiking/rate_vs_norse.toml", {}),
        ("experiments/spiking/rate_vs_norse_L3.toml", {}),
        ("experiments/spiking/rate_vs_norse_L3.toml", {"rules": ["eprop", "dfa", "clapp", "sibling-cca",
                                                                 "random-features"], "backends": ["rate"]}),
        ("experiments/spiking/rate_vs_norse_L3.toml", {"rules": ["sibling-cca"], "backends": ["rate"],
                                                       "P": [2048, 3072]}),
        ("experiments/spiking/rate_vs_norse_L3.toml", {"rules": ["sibling-cca"], "backends": ["norse"],
                                                       "P": [1024, 1536]}),
        ("experiments/spiking/rate_vs_norse_L3.toml", {"rules": ["eprop", "dfa", "clapp", "random-features"],
                                                       "backends": ["norse"], "P": [1024]}),
        ("experiments/spiking/rate_vs_norse_L3.toml", {"rules": ["sibling-cca"], "backends": ["norse"], "P": [2048]}),
        # its sibling-cca-online block
        ("experiments/spiking/scca_online.toml", {}),
        ("experiments/spiking/scca_online_L3.toml", {}),
        ("experiments/spiking/scca_online_L3.toml", {"backends": ["norse"], "seeds": [0], "P": [1024]}),
        ("experiments/spiking/scca_online_L3.toml", {"optim.lr": 0.2}),
        ("experiments/spiking/scca_online_L3.toml", {"optim.lr": 0.2, "backends": ["norse"], "seeds": [0], "P": [1024]}),
        ("experiments/spiking/scca_online_L3.toml", {"optim.lr": 0.1, "seeds": [0], "P": [3072]}),
    ],
    # experiments/spiking/rate_vs_norse_converted.sh: rate and converted rows, converted also at T = 100
    "experiments/spiking/rate_vs_norse_converted": [
        *[(config, {"rules": ["bp", "sibling-cca"], "backends": ["rate", "norse-converted"]})
          for config in ("experiments/spiking/rate_vs_norse_L3.toml", "experiments/spiking/rate_vs_norse.toml")],
        ("experiments/spiking/rate_vs_norse_L3.toml", {"rules": ["sibling-cca"], "backends": ["rate", "norse-converted"],
                                                       "P": [2048, 3072]}),
        *[(config, {"rules": [rule], "backends": ["norse-converted"], "spiking.T": 100, **neuron, **sizes})
          for rule, neuron in (("sibling-cca", {"spiking.tau_mem": 1.0}), ("bp", {"spiking.tau_mem": 1.0}),
                               ("sibling-cca", {}))
          for config, sizes in (("experiments/spiking/rate_vs_norse.toml", {}),
                                ("experiments/spiking/rate_vs_norse_L3.toml",
                                 {"P": [512, 1024, 1536, 2048, 3072]} if rule == "sibling-cca" else {}))],
    ],
    **{f"experiments/spiking/{name}": [(f"experiments/spiking/{name}.toml", {})]
       for name in ("curve_small", "curve_small_200hz", "curve_t30", "curve_t30_scca", "scca_s8", "scca_s8_t100",
                    "scca_T100_L3")},
    # experiments/brian2/neurons.sh
    "experiments/brian2/neurons": [("experiments/brian2/neurons.toml", {}),
                                   ("experiments/brian2/neurons_reference.toml", {})],
    "experiments/brian2/delay": [("experiments/brian2/delay.toml", {}),
                                 ("experiments/brian2/delay.toml", {"rules": ["clapp"], "vary": {
                                     "spiking.neuron": ["lif"], "spiking.modulator_delay": [0.01, 0.05]}})],
    "experiments/brian2/delay_online": [("experiments/brian2/delay_norse_online.toml", {})],
    "experiments/brian2/delay_lr": [("experiments/brian2/delay.toml", {
        "vary": {"spiking.neuron": ["lif"], "spiking.modulator_delay": [0.05]}, "optim.lr": 12.182494,
        "rule_options.readout_lr": 1.0})],
    "experiments/brian2/dendrite": [
        ("experiments/brian2/dendrite.toml", {}),
        ("experiments/brian2/dendrite.toml", {"rules": ["sibling-cca"],
                                              "vary": {"spiking.neuron": ["two-compartment"]}}),
        ("experiments/brian2/dendrite.toml", {"rules": ["sibling-cca"], "backends": ["norse"],
                                              "vary": {"spiking.neuron": ["lif"]}}),
        *[("experiments/brian2/dendrite.toml", {"rules": ["clapp"], "vary": {
            "spiking.neuron": ["two-compartment"], f"spiking.neuron_options.{key}": [0]}})
          for key in ("delivery", "phase_spikes")],
        ("experiments/brian2/dendrite.toml", {"rules": ["clapp"], "vary": {
            "spiking.neuron": ["two-compartment"], "spiking.neuron_options.inject": [0.05, 1.0]}}),
        ("experiments/brian2/dendrite.toml", {"rules": ["clapp"], "vary": {
            "spiking.neuron": ["two-compartment"], "spiking.neuron_options.g_c": [0.2],
            "spiking.neuron_options.delivery": [0, 1]}}),
    ],
}


def expanded_points(configs) -> Counter:
    points = Counter()
    for path, changes in configs:
        data = load_config_file(ROOT / path)
        for key, value in changes.items():
            section, _, name = key.rpartition(".")
            (data.setdefault(section, {}) if section else data)[name] = value
        for cfg in SweepConfig.from_dict(data, where=path).runs():
            r = cfg.rhm
            points[(r.v, r.m, r.n_c, r.s, r.L, cfg.preset or cfg.rule, cfg.backend, cfg.sizes()[0])] += 1
    return points


@pytest.mark.parametrize("directory", sorted(SWEEPS))
def test_summary_csv_matches_the_config_that_regenerates_it(directory):
    rows = read_csv(ROOT / directory / "summary.csv")
    assert rows and list(rows[0]) == list(SUMMARY_COLUMNS)
    table = Counter()
    for row in rows:
        key = tuple(int(row[k]) for k in ("v", "m", "n_c", "s", "L")) + (row["rule"], row["backend"], int(row["P"]))
        table[key] += int(row["n_runs"])
    assert table == expanded_points(SWEEPS[directory])
    pstar = read_csv(ROOT / directory / "pstar.csv")
    assert pstar and list(pstar[0]) == list(PSTAR_COLUMNS)
    assert {(r["rule"], r["backend"], r["variant"]) for r in pstar} == \
        {(r["rule"], r["backend"], r["variant"]) for r in rows}


def test_every_committed_summary_has_its_config():
    found = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("experiments/*/*/summary.csv")}
    assert found == set(SWEEPS)


# docs/results.md section heading -> the committed results directory whose report tables it shows
FAIR_SECTIONS = {
    "## Reduced fair-protocol run: claim 1": "fair_claim1_reduced",
    "## Reduced fair-protocol run: claim 2": "fair_claim2_reduced",
    "## Reduced fair-protocol run at depth 4: claim 2": "fair_claim2_L4_reduced",
    "## Reduced fair-protocol run at depth 4: dfa without the plateau rule": "fair_claim2_L4_dfa_budget",
    "## Reduced fair-protocol run: claim 3": "fair_claim3_reduced",
    "## Reduced fair-protocol run at depth 4: claim 3": "fair_claim3_L4_reduced",
    "## Reduced fair-protocol run at depth 4: infonce and vicreg without the plateau rule": "fair_claim3_L4_ssl_budget",
    "## Reduced fair-protocol run: the masking 2x2": "fair_masking_reduced",
    "## Reduced fair-protocol run: fa-unmasked and fa at depth 3": "fair_fa_unmasked_check",
    "## Reduced fair-protocol run at depth 4: the masking 2x2": "fair_masking_L4_reduced",
    "## Reduced fair-protocol run: the sibling-cca headline": "fair_sibling_cca_reduced",
}


def _spellings(text: str, spell) -> str:
    """A regex of the table spellings (``spell``) of the values that a 6-significant-digit CSV cell rounds from:
    the table rounds the full value, so a CSV value at a rounding boundary (239.15: 239.1 or 239.2) has two."""
    x = float(text)
    if not math.isfinite(x) or x == 0:
        return re.escape(spell(x))
    half = 0.999 * 0.5 * 10 ** (math.floor(math.log10(abs(x))) - 5)
    return "(?:" + "|".join(sorted({re.escape(spell(v)) for v in (x - half, x, x + half)})) + ")"


@pytest.mark.parametrize("heading", sorted(FAIR_SECTIONS))
def test_the_fair_run_tables_in_results_md_are_the_committed_summaries(heading):
    """docs/results.md's reduced fair-protocol tables (report --scoring online) carry the committed CSVs' numbers,
    not hand-copied ones: every P* row and every per-P row (test error mean [min, max], train error, both scorings)."""
    from experiments.report import _num, _setting, _size

    text = (ROOT / "docs" / "results.md").read_text()
    start = text.index(heading)
    section = text[start:text.index("\n## ", start + 1)]
    directory = ROOT / "experiments" / "results" / FAIR_SECTIONS[heading]
    for row in read_csv(directory / "pstar.csv"):
        size = {k: _spellings(row[k], _size) for k in ("pstar", "pstar_low", "pstar_high")}
        head = re.escape(f"| {row['rule']} [rate] | {_setting(row)} | ")
        bound = "<=" if row["status"] == "below_range" else ""  # an upper bound: below eps at the smallest P
        assert re.search(head + rf"{bound}{size['pstar']} \| \[{size['pstar_low']}, {size['pstar_high']}\] \|",
                         section)
    for row in read_csv(directory / "summary.csv"):
        num = {k: _spellings(row[k], _num) for k in ("test_error_mean", "test_error_min", "test_error_max",
                                                     "train_error_mean", "online_test_error_mean",
                                                     "probe_test_error_mean")}
        line = next(l for l in section.splitlines()
                    if l.startswith(f"| {row['rule']} [rate] | {_setting(row)} | {row['P']} |"))
        assert re.search(rf"{num['test_error_mean']} \[{num['test_error_min']}, {num['test_error_max']}\] \| "
                         rf"{num['train_error_mean']} \|", line), line
        assert re.search(rf"\| {num['online_test_error_mean']} \| {num['probe_test_error_mean']} \|", line), line


# docs/results.md section heading -> the committed ratio table (report --ratio-to bp --ratio-csv) it shows
RATIO_SECTIONS = {
    "## Reduced fair-protocol run: the sibling-cca headline": "fair_sibling_cca_reduced/ratio_bp.csv",
    "## Reduced fair-protocol run at depth 4: claim 2": "fair_claim2_L4_reduced/ratio_bp.csv",
    "## Reduced fair-protocol run at depth 4: dfa without the plateau rule": "fair_claim2_L4_dfa_budget/ratio_bp.csv",
    "## Reduced fair-protocol run at depth 4: claim 3": "fair_claim3_L4_reduced/ratio_bp.csv",
}


@pytest.mark.parametrize("heading", sorted(RATIO_SECTIONS))
def test_the_ratio_tables_in_results_md_are_the_committed_ratio_csv(heading):
    """The P* / P*(bp) rows of the section (report --scoring online --ratio-to bp) carry the committed CSV's
    numbers: both P*, the ratio, its paired interval and the per-grammar ratios."""
    from experiments.analysis import _fmt_ratio
    from experiments.report import RATIO_COLUMNS, _setting, _size

    text = (ROOT / "docs" / "results.md").read_text()
    start = text.index(heading)
    section = text[start:text.index("\n## ", start + 1)]
    rows = read_csv(ROOT / "experiments" / "results" / RATIO_SECTIONS[heading])
    assert rows and list(rows[0]) == list(RATIO_COLUMNS)
    for row in rows:
        size = {k: _spellings(row[k], _size) for k in ("pstar", "pstar_reference")}
        ratio = {k: _spellings(row[k], _fmt_ratio) for k in ("ratio", "ratio_low", "ratio_high")}
        reference = f"{row['reference']} [{row['reference_backend']}]"
        head = re.escape(f"| {row['rule']} [rate] | {_setting(row)} | {reference} | ")
        grammars = re.escape(row["ratio_per_grammar"])
        assert re.search(head + rf"{size['pstar']} \| {size['pstar_reference']} \| {ratio['ratio']} \| "
                         rf"\[{ratio['ratio_low']}, {ratio['ratio_high']}\] \| {grammars} \| "
                         rf"{row['n_pairs']} \| online readout \|", section), row

