"""Tables of result directories: the P* table and the per-P summary, as Markdown and CSV.

Records are read through :func:`experiments.store.read_results` and grouped into curves by
:func:`experiments.analysis.curves` (same RHM setting, rule, back end and settings; P and seed vary).
The per-P summary has one row per (curve, P)::

    test_error_mean = mean_seeds e_s,   e_s = test error of seed s (diverged run: chance 1 - 1/n_c)

(the same convention as ``spiking-rhm pstar``); failed runs are counted and left out.  The P* table
is :func:`experiments.analysis.pstar_rows`.

``scoring`` selects which test error is tabulated: ``recorded`` (the record's ``test_error``, i.e.
the scoring named by ``metrics.evaluation``), ``online`` (``metrics.online_readout``: the rule's own
readout) or ``probe`` (``metrics.probe``: the converged linear probe).  With ``online``/``probe``, ok
runs whose record lacks that scoring are left out and counted.

``ratio_to`` (a rule name) adds the ratio table :func:`experiments.analysis.pstar_ratio_rows`:
``P*(rule) / P*(ratio_to)`` per rule and setting, with a paired bootstrap interval over the (grammar, seed)
pairs both rules share and the per-grammar ratios.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from experiments.analysis import (SCORINGS, _fmt_p as _size, _fmt_ratio, curves, pstar_ratio_rows, pstar_rows,
                                  ratio_legend, rescore, scoring_headline)
from experiments.store import read_results
from spiking_rhm.errors import ConfigError


SUMMARY_COLUMNS = (
    "source", "v", "m", "n_c", "s", "L", "rule_seed", "rule", "backend", "variant", "scoring", "P", "P_rel",
    "n_runs", "n_ok", "n_diverged", "n_failed", "seeds", "test_error_mean", "test_error_min", "test_error_max",
    "train_error_mean", "online_test_error_mean", "probe_test_error_mean", "epochs_run_mean", "wall_time_mean_s",
)
"""Columns of the per-P summary (CSV); ``P_rel`` = P / (n_c m^L); errors of diverged runs count at chance."""

PSTAR_COLUMNS = (
    "source", "v", "m", "n_c", "s", "L", "rule_seed", "rule", "backend", "variant", "scoring", "eps", "pstar",
    "pstar_low", "pstar_high", "status", "pstar_rel", "scale", "n_seeds", "n_P", "notes",
)
"""Columns of the P* table (CSV); ``pstar_rel`` = P* / (n_c m^L), ``scale`` = n_c m^L."""

RATIO_COLUMNS = (
    "source", "v", "m", "n_c", "s", "L", "rule_seed", "rule", "backend", "variant", "reference",
    "reference_backend", "reference_variant", "scoring", "eps", "pstar", "pstar_reference", "status",
    "status_reference", "ratio", "ratio_low", "ratio_high", "ratio_per_grammar", "n_pairs", "notes",
)
"""Columns of the ratio table (CSV, ``--ratio-csv``): ``ratio`` = ``pstar / pstar_reference`` over the ``n_pairs``
shared (grammar, seed) pairs, ``ratio_low``/``ratio_high`` its paired bootstrap interval, ``ratio_per_grammar``
``g0:1.49 g1:...``."""


@dataclass
class Report:
    """The tables of one or more result directories (rows as dicts keyed by the column names)."""

    summary: list[dict]
    pstar: list[dict]
    eps: float
    confidence: float
    notes: list[str]
    headline: str = ""  # which scoring the tables use (analysis.scoring_headline)
    ratios: list[dict] = field(default_factory=list)  # RATIO_COLUMNS rows when ratio_to is given
    ratio_to: str = ""
    n_boot: int = 2000

    def markdown(self) -> str:
        """Both tables as Markdown, one section per source directory."""
        parts = [f"{self.headline}\n"] if self.headline else []
        for source in dict.fromkeys(row["source"] for row in self.summary + self.pstar):
            parts.append(f"## {source}\n")
            pstar = [r for r in self.pstar if r["source"] == source]
            parts.append(f"### P*(eps = {self.eps}), {int(self.confidence * 100)} % bootstrap interval over (grammar, seed) pairs\n")
            parts.append("P* per grammar: the P* of each grammar's seed-mean curve; train error (worst P): the largest "
                         "seed-mean final train error over P (NOT CONVERGED above 0.01).\n")
            parts.append(markdown_pstar(pstar) + "\n")
            if self.ratio_to:
                parts.append(f"### P* / P*({self.ratio_to}), {int(self.confidence * 100)} % paired bootstrap interval "
                             "over the (grammar, seed) pairs both rules share\n")
                parts.append(ratio_legend(self.ratio_to, self.n_boot, self.confidence) + "\n")
                parts.append(markdown_ratios([r for r in self.ratios if r["source"] == source]) + "\n")
            parts.append("### Test error per P (seed mean [min, max]; diverged runs at chance)\n")
            parts.append(markdown_summary([r for r in self.summary if r["source"] == source]) + "\n")
        parts.extend(f"note: {note}" for note in self.notes)
        return "\n".join(parts).rstrip() + "\n"


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(values)) if values else None


def _counts(values) -> str:
    """``"budget 2, train_error 4"``: how often each value occurs (None left out)."""
    counts = Counter(v for v in values if v is not None)
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))


def _curve_fields(curve, source: str) -> dict:
    v, m, n_c, s, L = curve.rhm
    return {"source": source, "v": v, "m": m, "n_c": n_c, "s": s, "L": L, "rule_seed": curve.rule_seed,
            "rule": curve.rule, "backend": curve.backend, "variant": curve.variant}


def _scoring(records: list[dict]) -> str:
    names = sorted({(r.get("metrics") or {}).get("evaluation") or "unrecorded" for r in records})
    return "+".join(names)


def summary_rows(records: list[dict], source: str = "") -> list[dict]:
    """One row per (curve, P): run counts, test error mean/min/max, mean train error, both scorings."""
    rows = []
    for curve in curves(records):
        for P in curve.P:
            runs = [r for r in curve.records if r["P"] == P]
            finished = [r for r in runs if r["status"] in ("ok", "diverged")]
            ok = [r for r in runs if r["status"] == "ok"]

            def at_chance(r, key):
                return curve.chance if r["status"] == "diverged" else r.get(key)

            test = [x for x in (at_chance(r, "test_error") for r in finished) if x is not None]
            metric = [(r.get("metrics") or {}) for r in ok]
            rows.append({
                **_curve_fields(curve, source), "scoring": _scoring(finished), "P": P, "P_rel": P / curve.scale,
                "n_runs": len(runs), "n_ok": len(ok), "n_diverged": sum(r["status"] == "diverged" for r in runs),
                "n_failed": len(runs) - len(finished),
                "seeds": " ".join(str(s) for s in sorted({r["seed"] for r in finished})),
                "test_error_mean": _mean(test), "test_error_min": min(test) if test else None,
                "test_error_max": max(test) if test else None,
                "train_error_mean": _mean(at_chance(r, "train_error") for r in finished),
                "online_test_error_mean": _mean((m.get("online_readout") or {}).get("test_error") for m in metric),
                "probe_test_error_mean": _mean((m.get("probe") or {}).get("test_error") for m in metric),
                "epochs_run_mean": _mean(m.get("epochs_run") for m in metric),
                "stop_reasons": _counts(m.get("stop_reason") for m in metric),
                "wall_time_mean_s": _mean(r.get("wall_time") for r in ok),
            })
    return rows


def pstar_table_rows(records: list[dict], source: str = "", eps: float = 0.1, n_boot: int = 2000,
                     confidence: float = 0.9) -> list[dict]:
    """:func:`experiments.analysis.pstar_rows` flattened into :data:`PSTAR_COLUMNS`."""
    grouped = curves(records)
    rows = pstar_rows(records, eps=eps, n_boot=n_boot, confidence=confidence)
    assert len(grouped) == len(rows)  # pstar_rows walks curves(records) in order
    out = []
    for curve, row in zip(grouped, rows):
        result = row["pstar"]
        out.append({
            **_curve_fields(curve, source), "scoring": _scoring(curve.records), "eps": eps, "pstar": result.value,
            "pstar_low": result.low, "pstar_high": result.high, "status": result.status, "pstar_rel": row["ratio"],
            "scale": row["scale"], "n_seeds": row["n_seeds"], "n_P": row["n_P"], "notes": row["notes"],
            "train_error_worst": row["train_error_worst"], "per_grammar": row["per_grammar"],
        })
    return out


def ratio_table_rows(records: list[dict], reference: str, source: str = "", eps: float = 0.1, n_boot: int = 2000,
                     confidence: float = 0.9) -> list[dict]:
    """:func:`experiments.analysis.pstar_ratio_rows` flattened into :data:`RATIO_COLUMNS`."""
    out = []
    for row in pstar_ratio_rows(records, reference, eps=eps, n_boot=n_boot, confidence=confidence):
        curve, ref, result = row["curve"], row["reference"], row["result"]
        out.append({
            **_curve_fields(curve, source), "reference": ref.rule, "reference_backend": ref.backend,
            "reference_variant": ref.variant, "scoring": _scoring(curve.records), "eps": eps, "pstar": result.a,
            "pstar_reference": result.b, "status": result.a_status, "status_reference": result.b_status,
            "ratio": result.value, "ratio_low": result.low, "ratio_high": result.high, "bound": row["bound"],
            "ratio_per_grammar": " ".join(f"g{g}:{_fmt_ratio(v)}" for g, v in row["per_grammar"].items()),
            "n_pairs": result.n_pairs, "notes": row["notes"],
        })
    return out


def build_report(directories: Sequence[str], eps: float = 0.1, n_boot: int = 2000, confidence: float = 0.9,
                 scoring: str = "recorded", ratio_to: str | None = None) -> Report:
    """Read every directory through the store and tabulate it (see the module docstring)."""
    if not 0 < eps < 1:
        raise ConfigError(f"eps must lie in (0, 1), got {eps}")
    if n_boot < 1:
        raise ConfigError(f"the number of bootstrap resamples must be >= 1, got {n_boot}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    summary, pstar, notes, scored, ratios = [], [], [], [], []
    for directory in directories:
        records = read_results(directory)
        if not records:
            raise ConfigError(f"{str(directory)!r} holds no records yet")
        records, missing = rescore(records, scoring)
        if missing:
            notes.append(f"{directory}: {missing} ok run(s) have no '{scoring}' scoring in their record (left out)")
        if not records:
            continue
        source = str(directory)
        scored += records
        summary += summary_rows(records, source)
        pstar += pstar_table_rows(records, source, eps=eps, n_boot=n_boot, confidence=confidence)
        if ratio_to:
            try:
                ratios += ratio_table_rows(records, ratio_to, source, eps=eps, n_boot=n_boot, confidence=confidence)
            except ConfigError as err:
                raise ConfigError(f"--ratio-to {ratio_to}: {directory}: {err}") from None
    return Report(summary, pstar, eps, confidence, notes, scoring_headline(scored, scoring), ratios, ratio_to or "",
                  n_boot)


# -- formatting -----------------------------------------------------------------
def _num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _label(row: dict) -> str:
    text = f"{row['rule']} [{row['backend']}]"
    return f"{text} {row['variant']}" if row["variant"] else text


def _setting(row: dict) -> str:
    text = f"({row['v']},{row['m']},{row['n_c']},{row['s']},{row['L']})"
    return text if not row["rule_seed"] else f"{text} g{row['rule_seed']}"


def _markdown(header: list[str], body: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, body)])


def markdown_pstar(rows: list[dict]) -> str:
    """P* rows as a Markdown table (``<=`` marks an upper bound: already below eps at the smallest P)."""
    body = []
    for r in rows:
        prefix = "<=" if r["status"] == "below_range" else ""
        grammars = r.get("per_grammar") or {}
        body.append([_label(r), _setting(r), prefix + _size(r["pstar"]),
                     f"[{_size(r['pstar_low'])}, {_size(r['pstar_high'])}]",
                     " ".join(f"g{g}:{_size(v)}" for g, v in grammars.items()) or "-", prefix + _size(r["pstar_rel"]),
                     r["n_seeds"], r["n_P"], _num(r.get("train_error_worst")), r["scoring"], r["notes"]])
    return _markdown(["rule [backend]", "(v,m,n_c,s,L)", "P*", "interval", "P* per grammar", "P*/(n_c m^L)",
                      "(grammar, seed) rows", "P values", "train error (worst P)", "scoring", "notes"], body)


def markdown_ratios(rows: list[dict]) -> str:
    """Ratio rows (:data:`RATIO_COLUMNS`) as a Markdown table."""
    body = []
    for r in rows:
        reference = f"{r['reference']} [{r['reference_backend']}]" + (f" {r['reference_variant']}"
                                                                       if r["reference_variant"] else "")
        body.append([_label(r), _setting(r), reference, _size(r["pstar"]), _size(r["pstar_reference"]),
                     r["bound"] + _fmt_ratio(r["ratio"]),
                     f"[{_fmt_ratio(r['ratio_low'])}, {_fmt_ratio(r['ratio_high'])}]",
                     r["ratio_per_grammar"] or "-", r["n_pairs"], r["scoring"], r["notes"]])
    return _markdown(["rule [backend]", "(v,m,n_c,s,L)", "reference", "P*", "P*(reference)", "ratio", "interval",
                      "ratio per grammar", "shared (grammar, seed) pairs", "scoring", "notes"], body)


def markdown_summary(rows: list[dict]) -> str:
    """Per-P rows as a Markdown table."""
    body = []
    for r in rows:
        counts = f"{r['n_ok']}" + (f" +{r['n_diverged']}d" if r["n_diverged"] else "") + \
                 (f" +{r['n_failed']}f" if r["n_failed"] else "")
        body.append([_label(r), _setting(r), r["P"], _size(r["P_rel"]), counts,
                     f"{_num(r['test_error_mean'])} [{_num(r['test_error_min'])}, {_num(r['test_error_max'])}]",
                     _num(r["train_error_mean"]), r.get("stop_reasons") or "-", _num(r["online_test_error_mean"]),
                     _num(r["probe_test_error_mean"]), r["scoring"]])
    return _markdown(["rule [backend]", "(v,m,n_c,s,L)", "P", "P/(n_c m^L)", "runs", "test error",
                      "train error", "stopped by", "online readout", "linear probe", "scoring"], body)


def _csv_value(x):
    if x is None:
        return ""
    if isinstance(x, float):
        return "inf" if math.isinf(x) else ("" if math.isnan(x) else f"{x:.6g}")
    return x


def to_csv(rows: list[dict], columns: Sequence[str]) -> str:
    """Rows as CSV text with a header line (floats to 6 significant digits, missing = empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buffer.getvalue()


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV written by :func:`to_csv` (all values as strings)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
