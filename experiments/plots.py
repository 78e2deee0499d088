"""Figures of a sweep directory, each saved as PNG and PDF.

* ``learning_curves``: test error vs P, one panel per (RHM setting, back end), one line per
  rule (seed mean, band = min..max over seeds), log-log axes, eps and chance marked;
* ``pstar_scaling``: P* vs n_c m^L per rule (needs >= 2 RHM settings);
* ``sensitivity``: synonymic sensitivity vs P per layer (``metrics["sensitivity"]``);
* ``alignment``: alignment with BP vs P per layer (``metrics["alignment"]``, the last
  snapshot of training when the back end records several).

A figure whose data is missing is skipped with a note.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import numpy as np

from experiments.analysis import Curve, curves, scoring_label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def _no_minor_labels(ax) -> None:
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _label_P(ax, P_values) -> None:
    """x ticks (log axis) at the measured P values, labelled as integers: a sweep's P grid is rarely powers of 10."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    ticks = sorted({float(p) for p in P_values if np.isfinite(p) and p > 0})
    if not ticks:
        return
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.tick_params(axis="x", labelsize=7, labelrotation=45 if len(ticks) > 6 else 0)


def _grid(n: int):
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    return rows, cols


def _panels(all_curves: list[Curve]) -> dict[tuple, list[Curve]]:
    """Curves per panel (RHM setting, grammar, back end), panels in that order: a row per setting."""
    panels: dict[tuple, list[Curve]] = {}
    for curve in all_curves:
        panels.setdefault((curve.rhm, curve.rule_seed, curve.backend), []).append(curve)
    return dict(sorted(panels.items(), key=lambda item: (item[0][0], str(item[0][1]), item[0][2])))


def _rule_colours(all_curves: list[Curve]) -> dict[tuple, str]:
    """One colour per (rule, variant) in every panel (the default cycle, in sorted order)."""
    keys = sorted({(c.rule, c.variant) for c in all_curves})
    return {key: f"C{i % 10}" for i, key in enumerate(keys)}


def plot_learning_curves(all_curves: list[Curve], out: Path, eps: float = 0.1, ylabel: str = "test error"):
    plt = _pyplot()
    panels = _panels(all_curves)
    backends = {key[2] for key in panels}
    rows, cols = _grid(len(panels))
    if 1 < len(backends) <= 3 and len(panels) > 3:  # a column per back end, a row per setting
        cols = len(backends)
        rows = (len(panels) + cols - 1) // cols
    colours = _rule_colours(all_curves)
    # each panel's legend hangs below it: rows further apart when there are several
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, (7.5 if rows > 1 else 5.5) * rows), squeeze=False,
                             gridspec_kw={"hspace": 0.75 if rows > 1 else 0.2})
    for ax, ((rhm, rule_seed, backend), members) in zip(axes.flat, panels.items()):
        floor = None
        measured: list[float] = []
        for curve in members:
            P = np.asarray(curve.P, dtype=float)
            err = curve.errors
            keep = np.isfinite(err).any(axis=0)
            if not keep.any():
                continue
            P_test = min((r["P_test"] for r in curve.records if r.get("P_test")), default=None)
            floor = 0.5 / P_test if P_test else 1e-4  # half a test point: where a zero error is drawn
            mean = np.nanmean(err[:, keep], axis=0)
            low, high = np.nanmin(err[:, keep], axis=0), np.nanmax(err[:, keep], axis=0)
            measured.extend(P[keep])
            (line,) = ax.plot(P[keep], np.maximum(mean, floor), marker="o", ms=3, label=f"{curve.label} (n={len(curve.seeds)})",
                              color=colours[(curve.rule, curve.variant)])
            ax.fill_between(P[keep], np.maximum(low, floor), np.maximum(high, floor), color=line.get_color(), alpha=0.2)
        v, m, n_c, s, L = rhm
        ax.axhline(eps, color="k", ls=":", lw=1, label=f"eps = {eps}")
        ax.axhline(1 - 1 / n_c, color="gray", ls="--", lw=1, label="chance")
        ax.axvline(n_c * m**L, color="gray", ls="-.", lw=1, label="n_c m^L")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training points P")
        ax.set_ylabel(ylabel)
        _no_minor_labels(ax)
        _label_P(ax, measured)
        note = f"; error 0 drawn at {floor:.1g}" if floor else ""
        ax.set_title(f"(v,m,n_c,s,L)=({v},{m},{n_c},{s},{L}), rule seed {rule_seed}, {backend}{note}", fontsize=8)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.14))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    paths = _save(fig, out, "learning_curves")
    plt.close(fig)
    return paths


def plot_pstar_scaling(all_curves: list[Curve], out: Path, eps: float = 0.1):
    plt = _pyplot()
    by_rule: dict[str, list[tuple[int, object]]] = {}
    for curve in all_curves:
        by_rule.setdefault(curve.label, []).append((curve.scale, curve.pstar(eps, n_boot=500)))
    settings = {c.rhm for c in all_curves}
    if len(settings) < 2:
        return None, "P* vs n_c m^L: skipped, the directory holds one RHM setting (needs >= 2)"
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    scales = sorted({s for points in by_rule.values() for s, _ in points})
    drawn = 0
    for label, points in sorted(by_rule.items()):
        points = sorted((s, r) for s, r in points if r.reached and np.isfinite(r.value))
        if not points:
            continue
        x = np.array([s for s, _ in points], dtype=float)
        y = np.array([r.value for _, r in points])
        lo = np.array([r.low for _, r in points])
        hi = np.array([r.high if np.isfinite(r.high) else np.nan for _, r in points])
        ax.errorbar(x, y, yerr=[y - lo, np.nan_to_num(hi - y, nan=0.0)], marker="o", capsize=3, label=label)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None, f"P* vs n_c m^L: skipped, no curve reaches eps = {eps}"
    ref = np.array([scales[0], scales[-1]], dtype=float)
    ax.plot(ref, ref, "k:", lw=1, label="P* = n_c m^L")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n_c m^L")
    ax.set_ylabel(f"P*(eps = {eps})")
    _no_minor_labels(ax)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.14))
    paths = _save(fig, out, "pstar_scaling")
    plt.close(fig)
    return paths, None


def _per_layer_figure(all_curves: list[Curve], out: Path, name: str, getter, ylabel: str, levels: bool):
    plt = _pyplot()
    panels = []
    for curve in all_curves:
        data = curve.metric_by_P(getter)
        if any(np.isfinite(np.asarray(v, dtype=float)).any() for vals in data.values() for v in vals):
            panels.append((curve, data))  # curves without any value (e.g. frozen layers) get no panel
    if not panels:
        return None
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, (curve, data) in zip(axes.flat, panels):
        P = np.array(list(data), dtype=float)
        # values[P][seed] -> array [layers, levels]
        arrays = {p: np.array([np.asarray(v, dtype=float).reshape(len(v), -1) for v in vals]) for p, vals in data.items()}
        n_layers, n_levels = next(iter(arrays.values())).shape[1:]
        level_names = _level_names(curve, getter, n_levels) if levels else [""]
        for k in range(n_layers):
            color = f"C{k}"
            for i in range(n_levels):
                values = [arrays[p][:, k, i] for p in data]
                if not any(np.isfinite(v).any() for v in values):
                    continue  # e.g. a frozen layer has no alignment
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN at some P
                    mean = np.array([np.nanmean(v) for v in values])
                    lo = np.array([np.nanmin(v) for v in values])
                    hi = np.array([np.nanmax(v) for v in values])
                label = f"layer {k + 1}" + (f", {level_names[i]}" if level_names[i] else "")
                ax.plot(P, mean, color=color, ls=styles[i % len(styles)], marker="o", ms=3, label=label)
                ax.fill_between(P, lo, hi, color=color, alpha=0.12)
        ax.axvline(curve.scale, color="gray", ls="-.", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("training points P")
        ax.set_ylabel(ylabel)
        _no_minor_labels(ax)
        _label_P(ax, P)
        ax.set_title(textwrap.fill(f"{curve.label} {curve.rhm}", 60), fontsize=8)
        ax.legend(fontsize=6, ncol=2)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    paths = _save(fig, out, name)
    plt.close(fig)
    return paths


def _level_names(curve: Curve, getter, n_levels: int) -> list[str]:
    for record in curve.records:
        sens = (record.get("metrics") or {}).get("sensitivity")
        if isinstance(sens, dict) and len(sens.get("levels", [])) == n_levels:
            return [f"R_{lvl}" for lvl in sens["levels"]]
    return [f"level {i}" for i in range(n_levels)]


def _sensitivity(metrics: dict):
    sens = metrics.get("sensitivity")
    if isinstance(sens, dict) and sens.get("layers"):
        return [[np.nan if x is None else x for x in layer] for layer in sens["layers"]]
    return None


def _alignment(metrics: dict):
    """Per-layer cosine with BP: a list/dict of numbers, or the rate back end's list of
    snapshots ``{"step", "epoch", "cosine": [per layer]}`` (the last snapshot is used)."""
    align = metrics.get("alignment")
    if isinstance(align, list) and align and isinstance(align[-1], dict) and "cosine" in align[-1]:
        align = align[-1]["cosine"]
    if isinstance(align, dict):
        align = [align[k] for k in sorted(align)]
    if isinstance(align, (list, tuple)) and align and all(isinstance(x, (int, float)) or x is None for x in align):
        return [[np.nan if x is None else x] for x in align]
    return None


def plot_all(records: list[dict], out: str | Path, eps: float = 0.1,
             scoring: str = "recorded") -> tuple[list[Path], list[str]]:
    """Write every figure the records support; returns (files written, notes on skipped figures).

    ``scoring`` (:data:`experiments.analysis.SCORINGS`) names the test error the records hold (rescore them
    first with :func:`experiments.analysis.rescore`); it labels the learning curves' axis.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    all_curves = curves(records)
    files, notes = [], []
    if not any(np.isfinite(c.errors).any() for c in all_curves):
        notes.append("learning curves: skipped, no finished (ok/diverged) runs")
    else:
        files += plot_learning_curves(all_curves, out, eps, ylabel=scoring_label(scoring))
    paths, note = plot_pstar_scaling(all_curves, out, eps)
    files += paths or []
    if note:
        notes.append(note)
    paths = _per_layer_figure(all_curves, out, "sensitivity", _sensitivity, "synonymic sensitivity S", levels=True)
    if paths:
        files += paths
    else:
        notes.append("sensitivity vs P: skipped, no record has metrics['sensitivity']")
    paths = _per_layer_figure(all_curves, out, "alignment", _alignment, "alignment with BP (cosine, end of training)", levels=False)
    if paths:
        files += paths
    else:
        notes.append("alignment per layer: skipped, no record has metrics['alignment']")
    return files, notes
