"""From records to learning curves and P* tables.

Records are grouped into *curves*: runs that differ only in P, P_test, seed and the grammar
(``rhm.rule_seed``) -- same RHM parameters, rule, back end and every other setting.  A setting a record
lacks (written before that config field existed) counts as its current default, as in the run id.  A run built
from a protocol preset (``config.preset``) is labelled by the preset's name.  A curve's
rows are its (grammar, seed) pairs, so P* intervals (bootstrap over rows) are over grammars and
data seeds together.  Within a curve:

* ``ok`` runs contribute their test error;
* ``diverged`` runs count as chance-level error ``1 - 1/n_c`` (the rule did not learn);
* ``failed`` runs (exceptions) are left out and counted;
* runs without test points (status ``no-test-points``: P = P_max, P_test = 0) have no test error:
  they are left out of the curve and counted.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from spiking_rhm.api import NO_TEST_POINTS
from spiking_rhm.config import _default_dict
from spiking_rhm.errors import ConfigError
from spiking_rhm.metrics import PStar, pstar, pstar_point

from experiments.sweep import _deep_merge

_SWEPT = ("P", "P_test", "seed")
TRAIN_ERROR_FLAG = 0.01
"""A curve whose seed-mean final train error exceeds this at some P is flagged as not trained to convergence."""


@dataclass
class Curve:
    """Test error of one (setting, rule, backend, variant) against P, per seed."""

    rule: str
    backend: str
    rhm: tuple[int, int, int, int, int]  # (v, m, n_c, s, L)
    rule_seed: int | str  # the grammar, or "0,1,2" for a curve over several grammars
    variant: str  # "" or the settings that tell this curve from others of the same rule/backend/rhm
    P: list[int] = field(default_factory=list)
    seeds: list[tuple[int, int]] = field(default_factory=list)  # (rule_seed, seed) of every row
    errors: np.ndarray | None = None  # [n_rows, n_P], NaN = missing
    records: list[dict] = field(default_factory=list)
    n_diverged: int = 0
    n_failed: int = 0
    n_no_test: int = 0

    @property
    def scale(self) -> int:
        v, m, n_c, s, L = self.rhm
        return n_c * m**L

    @property
    def chance(self) -> float:
        return 1.0 - 1.0 / self.rhm[2]

    @property
    def label(self) -> str:
        text = f"{self.rule} [{self.backend}]"
        return f"{text} {self.variant}" if self.variant else text

    def pstar(self, eps: float = 0.1, **kwargs) -> PStar:
        return pstar(self.P, self.errors, eps=eps, **kwargs)

    def pstar_by_grammar(self, eps: float = 0.1) -> dict[int, float]:
        """``grammar -> P*`` of that grammar's seed-mean curve (:func:`~spiking_rhm.metrics.pstar_point`): the
        spread over grammars, beside the bootstrap over (grammar, seed) rows."""
        out = {}
        for grammar in sorted({g for g, _ in self.seeds}):
            rows = self.errors[[i for i, (g, _) in enumerate(self.seeds) if g == grammar]]
            finished = rows[np.isfinite(rows).any(axis=1)]
            if len(finished):
                with np.errstate(invalid="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a P without finished runs: NaN, skipped
                    out[grammar] = pstar_point(self.P, np.nanmean(finished, axis=0), eps)[0]
        return out

    def metric_by_P(self, getter) -> dict[int, list]:
        """``P -> [getter(record) for its ok records]`` (None values dropped)."""
        out: dict[int, list] = {}
        for record in self.records:
            if record.get("status") != "ok":
                continue
            value = getter(record.get("metrics") or {})
            if value is not None:
                out.setdefault(record["P"], []).append(value)
        return dict(sorted(out.items()))


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], obj


def curves(records: list[dict]) -> list[Curve]:
    """Group records into curves (see the module docstring), sorted by setting, rule, backend."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        # the settings a record lacks at their defaults: the record's config merged over the default one
        config = {k: v for k, v in _deep_merge(_default_dict(), record["config"]).items() if k not in _SWEPT}
        config["rhm"] = {k: v for k, v in config["rhm"].items() if k != "rule_seed"}
        groups.setdefault(json.dumps(config, sort_keys=True), []).append(record)
    flat = {key: dict(_flatten(json.loads(key))) for key in groups}
    out = []
    for key, members in groups.items():
        config = json.loads(key)
        r = config["rhm"]
        family = [k for k in flat if _same_family(flat[k], flat[key])]
        varying = sorted({name for k in family for name, value in flat[k].items() if flat[key].get(name) != value}
                         | {name for k in family for name in flat[key] if name not in flat[k]})
        variant = " ".join(f"{name}={flat[key].get(name)}" for name in varying)
        grammars = sorted({_rule_seed(rec) for rec in members})
        curve = Curve(rule=config.get("preset") or config["rule"], backend=config["backend"], rhm=(r["v"], r["m"], r["n_c"], r["s"], r["L"]),
                      rule_seed=grammars[0] if len(grammars) == 1 else ",".join(map(str, grammars)),
                      variant=variant, records=members)
        no_test = [rec for rec in members if not has_test_points(rec)]
        curve.n_no_test = len(no_test)
        members = [rec for rec in members if has_test_points(rec)]
        curve.P = sorted({rec["P"] for rec in members})
        curve.seeds = sorted({(_rule_seed(rec), rec["seed"]) for rec in members})
        curve.errors = np.full((len(curve.seeds), len(curve.P)), np.nan)
        for rec in members:
            i, j = curve.seeds.index((_rule_seed(rec), rec["seed"])), curve.P.index(rec["P"])
            if rec["status"] == "ok" and rec.get("test_error") is not None:
                curve.errors[i, j] = rec["test_error"]
            elif rec["status"] == "diverged":
                curve.errors[i, j] = curve.chance
                curve.n_diverged += 1
            else:
                curve.n_failed += 1
        out.append(curve)
    return sorted(out, key=lambda c: (c.rhm, str(c.rule_seed), c.rule, c.backend, c.variant))


def _rule_seed(record: dict) -> int:
    return record["config"]["rhm"].get("rule_seed", 0)


SCORINGS = {"recorded": None, "online": "online_readout", "probe": "probe"}
"""``recorded``: the record's ``test_error`` (the scoring its ``metrics.evaluation`` names); ``online``: the
rule's own readout (``metrics.online_readout``); ``probe``: the converged linear probe (``metrics.probe``)."""
_SCORING_NAMES = {"online": "online readout", "probe": "linear probe"}


def rescore(records: list[dict], scoring: str) -> tuple[list[dict], int]:
    """Records whose ``test_error``/``train_error`` are those of ``scoring``; and how many ok runs lack it."""
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    key = SCORINGS[scoring]
    if key is None:
        return records, 0
    out, missing = [], 0
    for record in records:
        if record.get("status") == "ok":
            scored = (record.get("metrics") or {}).get(key) or {}
            if scored.get("test_error") is None:
                missing += 1
                continue
            metrics = {**record["metrics"], "evaluation": _SCORING_NAMES[scoring]}
            record = {**record, "test_error": scored["test_error"], "train_error": scored.get("train_error"),
                      "metrics": metrics}
        out.append(record)
    return out, missing


def scoring_label(scoring: str) -> str:
    """The axis label of a test error under ``scoring``: ``test error (online readout)``, ..."""
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")
    return "test error" if scoring == "recorded" else f"test error ({_SCORING_NAMES[scoring]})"


def scoring_headline(records: list[dict], scoring: str) -> str:
    """One line naming the scoring of a table (every headline says which)."""
    if scoring != "recorded":
        return f"scoring: {_SCORING_NAMES[scoring]} ({SCORINGS[scoring]}) for every rule"
    names = sorted({(r.get("metrics") or {}).get("evaluation") or "unrecorded" for r in records})
    return ("scoring: as recorded (" + ", ".join(names) + "; supervised rules by their online readout, "
            "unsupervised ones by the linear probe); --scoring online|probe scores every rule alike")


def has_test_points(record: dict) -> bool:
    """False for a run without test points (status no-test-points, or an older record with P_test = 0)."""
    return record.get("status") != NO_TEST_POINTS and record.get("P_test") != 0


def _same_family(a: dict, b: dict) -> bool:
    keys = ("rule", "preset", "backend", "rhm.v", "rhm.m", "rhm.n_c", "rhm.s", "rhm.L")
    return all(a.get(k) == b.get(k) for k in keys)


def _fmt_p(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.4g}" if x < 1e5 else f"{x:.3e}"


def worst_train_error(curve: Curve) -> tuple[int, float] | None:
    """``(P, e)``: the largest seed-mean final train error over the curve's P (ok runs), or None."""
    by_P = {}
    for record in curve.records:
        if record.get("status") == "ok" and record.get("train_error") is not None:
            by_P.setdefault(record["P"], []).append(record["train_error"])
    if not by_P:
        return None
    return max(((P, float(np.mean(v))) for P, v in by_P.items()), key=lambda t: t[1])


def pstar_rows(records: list[dict], eps: float = 0.1, n_boot: int = 2000, confidence: float = 0.9,
               train_error_flag: float = TRAIN_ERROR_FLAG) -> list[dict]:
    """One row per curve: P*, its bootstrap interval, P*/(n_c m^L), seeds and notes (a curve whose seed-mean
    final train error exceeds ``train_error_flag`` at some P is noted NOT CONVERGED)."""
    rows = []
    for curve in curves(records):
        result = curve.pstar(eps, n_boot=n_boot, confidence=confidence)
        notes = []
        if result.status == "not_reached":
            notes.append(f"error never <= {eps} (min seed-mean {np.nanmin(np.nanmean(curve.errors, 0)):.3f})"
                         if np.isfinite(curve.errors).any() else "no finished runs")
        elif result.status == "below_range":
            notes.append(f"already <= {eps} at the smallest P: P* <= {curve.P[0]}")
        if curve.n_diverged:
            notes.append(f"{curve.n_diverged} diverged (counted at chance)")
        if curve.n_failed:
            notes.append(f"{curve.n_failed} failed (left out)")
        if curve.n_no_test:
            notes.append(f"{curve.n_no_test} without test points (P = P_max; left out)")
        worst = worst_train_error(curve)
        if worst is not None and worst[1] > train_error_flag:
            notes.append(f"NOT CONVERGED: train error {worst[1]:.3f} at P = {worst[0]} (> {train_error_flag})")
        rows.append({
            "rule": curve.label, "rhm": curve.rhm, "scale": curve.scale, "pstar": result,
            "ratio": result.value / curve.scale, "n_seeds": result.n_seeds, "n_P": len(curve.P),
            "notes": "; ".join(notes), "converged": worst is None or worst[1] <= train_error_flag,
            "train_error_worst": None if worst is None else worst[1], "per_grammar": curve.pstar_by_grammar(eps),
        })
    return rows


def format_pstar_table(rows: list[dict], eps: float, confidence: float = 0.9) -> str:
    """Plain aligned columns (no table library is a dependency)."""
    header = ["rule [backend]", "(v,m,n_c,s,L)", f"P*(eps={eps})", f"{int(confidence * 100)}% interval",
              "P*/(n_c m^L)", "seeds", "P values", "notes"]
    body = []
    for row in rows:
        result: PStar = row["pstar"]
        prefix = "<=" if result.status == "below_range" else ""
        body.append([
            row["rule"], ",".join(map(str, row["rhm"])), prefix + _fmt_p(result.value),
            f"[{_fmt_p(result.low)}, {_fmt_p(result.high)}]", prefix + _fmt_p(row["ratio"]), str(row["n_seeds"]),
            str(row["n_P"]), row["notes"],
        ])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
