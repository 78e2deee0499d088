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
from spiking_rhm.metrics import PStar, pstar, pstar_point, pstar_ratio, ratio_value

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
        return _pstar_by_grammar(self.P, self.errors, self.seeds, eps)

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


def _pstar_by_grammar(P: list[int], errors: np.ndarray, seeds: list[tuple[int, int]], eps: float) -> dict[int, float]:
    """``grammar -> P*`` of the seed-mean curve of the rows ``errors[i]`` whose ``seeds[i]`` has that grammar."""
    out = {}
    for grammar in sorted({g for g, _ in seeds}):
        rows = errors[[i for i, (g, _) in enumerate(seeds) if g == grammar]]
        finished = rows[np.isfinite(rows).any(axis=1)]
        if len(finished):
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a P without finished runs: NaN, skipped
                out[grammar] = pstar_point(P, np.nanmean(finished, axis=0), eps)[0]
    return out


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


def pstar_ratio_rows(records: list[dict], reference: str, eps: float = 0.1, n_boot: int = 2000,
                     confidence: float = 0.9) -> list[dict]:
    """``P*(rule) / P*(reference)`` for every curve of another rule that has a curve of rule ``reference`` at
    the same RHM setting (of the same back end if there is one; one row per such reference curve).

    Both P* come from the seed-mean curves over the (grammar, seed) pairs the two curves share; the interval
    is :func:`~spiking_rhm.metrics.pstar_ratio`'s paired bootstrap (the resampling and seed of the P* interval,
    each resample drawing the same pairs for both curves); ``per_grammar``: ``grammar -> ratio`` of that
    grammar's seed-mean P* over the shared pairs.  Raises :class:`ConfigError` when no curve is of ``reference``.
    """
    grouped = curves(records)
    rules = sorted({c.rule for c in grouped})
    if reference not in rules:
        raise ConfigError(f"no runs of the reference rule {reference!r} (rules here: {', '.join(rules)})")
    refs = [c for c in grouped if c.rule == reference]
    rows = []
    for curve in grouped:
        if curve.rule == reference:
            continue
        matches = [r for r in refs if r.rhm == curve.rhm]
        matches = [r for r in matches if r.backend == curve.backend] or matches
        for ref in matches:
            rows.append(_ratio_row(curve, ref, eps, n_boot, confidence))
    return rows


def _ratio_row(curve: Curve, ref: Curve, eps: float, n_boot: int, confidence: float) -> dict:
    shared = sorted(set(curve.seeds) & set(ref.seeds))
    errors = [c.errors[[c.seeds.index(pair) for pair in shared]].reshape(len(shared), len(c.P)) for c in (curve, ref)]
    result = pstar_ratio(curve.P, errors[0], ref.P, errors[1], eps=eps, n_boot=n_boot, confidence=confidence)
    by_grammar = [_pstar_by_grammar(c.P, e, shared, eps) for c, e in zip((curve, ref), errors)]
    per_grammar = {g: ratio_value(by_grammar[0][g], by_grammar[1][g]) for g in by_grammar[0] if g in by_grammar[1]}
    notes = []
    if result.a_status == "not_reached":
        notes.append("rule never reaches eps: ratio inf" + ("" if result.n_pairs else " (no shared finished pairs)"))
    elif result.b_status == "not_reached":
        notes.append("reference never reaches eps: ratio 0")
    bounds = (result.a_status == "below_range", result.b_status == "below_range")
    if any(bounds):
        notes.append({(True, False): f"rule already <= {eps} at the smallest P: ratio is an upper bound",
                      (False, True): f"reference already <= {eps} at the smallest P: ratio is a lower bound",
                      (True, True): f"both already <= {eps} at the smallest P: ratio of two upper bounds"}[bounds])
    for c in (curve, ref):
        unshared = len(c.seeds) - len(shared)
        if unshared:
            notes.append(f"{unshared} (grammar, seed) pair(s) of {c.label} not shared (left out)")
    return {"curve": curve, "reference": ref, "result": result, "per_grammar": per_grammar,
            "bound": {("below_range", "reached"): "<=", ("reached", "below_range"): ">="}.get(
                (result.a_status, result.b_status), ""),
            "notes": "; ".join(notes)}


def _fmt_ratio(x: float) -> str:
    return "inf" if math.isinf(x) else ("-" if math.isnan(x) else f"{x:.2f}")


def ratio_legend(reference: str, n_boot: int, confidence: float) -> str:
    """What the ratio table's columns mean (printed under or above it)."""
    return (f"ratio = P*(rule) / P*({reference}), both P* from the seed-mean curves over the (grammar, seed) pairs the "
            f"two rules share; interval: {int(confidence * 100)} % percentile bootstrap over those pairs ({n_boot} "
            f"resamples, seed 0, as the P* interval), each resample drawing the same pairs for both rules and "
            f"recomputing both P*; per grammar: ratio of that grammar's seed-mean P*s; inf: the rule never reaches "
            f"eps (a resample in which it does not counts as inf, also when {reference} does not either); 0: only "
            f"{reference} never reaches it; <=: the rule's error is already <= eps at the smallest P (its P* is an "
            f"upper bound), so the ratio is an upper bound; >=: the same for {reference}, a lower bound.")


def format_ratio_table(rows: list[dict], eps: float, confidence: float = 0.9) -> str:
    """Ratio rows (:func:`pstar_ratio_rows`) as plain aligned columns."""
    header = ["rule [backend]", "reference", "(v,m,n_c,s,L)", f"P*(eps={eps})", "P*(reference)", "ratio",
              f"{int(confidence * 100)}% paired interval", "ratio per grammar", "pairs", "notes"]
    body = []
    for row in rows:
        r = row["result"]
        body.append([row["curve"].label, row["reference"].label, ",".join(map(str, row["curve"].rhm)), _fmt_p(r.a),
                     _fmt_p(r.b), row["bound"] + _fmt_ratio(r.value), f"[{_fmt_ratio(r.low)}, {_fmt_ratio(r.high)}]",
                     " ".join(f"g{g}:{_fmt_ratio(v)}" for g, v in row["per_grammar"].items()) or "-",
                     str(r.n_pairs), row["notes"]])
    return _aligned(header, body)


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
    return _aligned(header, body)


def _aligned(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
