"""Figures and compact tables of the brian2 neuron-model study (docs/results_spiking.md, "Brian2 neuron models").

    python experiments/brian2/neuron_study.py results/brian2_neurons --out docs/figures/brian2/neuron_study.png
    python experiments/brian2/neuron_study.py results/brian2_delay results/brian2_neurons --axis delay \
        --out docs/figures/brian2/modulator_delay.png

    python experiments/brian2/neuron_study.py results/brian2_dendrite --axis dendrite

``--axis dendrite`` (a table only): per rule and network the two-compartment neuron's dendritic delivery
(``delivery``, ``inject``, ``phase_spikes``), the test error and, from the records' ``brian2.delivered_signal``, the
seed means of ``cos(L~, L)`` and of the cosine between the delivered and the point update.
``--axis neuron``: one panel per rule, test error against P, one line per network (rate, Norse LIF, brian2 with
each neuron model; seed mean, bars min..max). ``--axis delay``: test error against ``spiking.modulator_delay``
at each P, one line per (rule, back end, neuron, plasticity) run with a delay (its delay-0 runs may come from
another directory), every seed drawn, and the linear probe's error dashed. Both print the table they draw
(seed mean [min, max]). Records are grouped by :func:`experiments.analysis.curves`, as ``spiking-rhm report``
groups them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

NETWORKS = ["rate", "norse lif", "brian2 lif", "brian2 adex", "brian2 cond", "brian2 two-compartment"]
RULES = ["dfa", "clapp", "eprop", "random-features"]


def _spiking(curve) -> dict:
    return curve.records[0]["config"].get("spiking", {})


def network(curve) -> str:
    """``rate``, ``norse lif`` or ``brian2 <neuron>``, plus `` online`` for online plasticity."""
    if curve.backend == "rate":
        return "rate"
    sp = _spiking(curve)
    name = f"{curve.backend} {sp.get('neuron', 'lif')}"
    return f"{name} online" if sp.get("plasticity") == "online" else name


def _cell(errors) -> str:
    errors = [e for e in errors if np.isfinite(e)]
    if not errors:
        return "-"
    return f"{np.mean(errors):.3f} [{min(errors):.3f}, {max(errors):.3f}]"


def neuron_table(all_curves) -> dict:
    """``{(rule, network): {P: [test errors over seeds]}}``."""
    out = {}
    for c in all_curves:
        out[c.rule, network(c)] = {P: list(c.errors[:, j]) for j, P in enumerate(c.P)}
    return out


def delay_table(all_curves) -> dict:
    """``{(rule, network, P): {delay in ms: [test errors over seeds]}}``."""
    out: dict = {}
    for c in all_curves:
        delay = 1e3 * float(_spiking(c).get("modulator_delay", 0.0))
        for j, P in enumerate(c.P):
            out.setdefault((c.rule, network(c), P), {})[delay] = list(c.errors[:, j])
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items()) if any(d > 0 for d in v)}


def delivery(curve) -> str:
    """How a two-compartment run's dendritic signal reached the synapses: ``point (delivery = 0)``, ``delivered,
    inject x[, silent soma]`` or ``branches`` (sibling-cca); ``-`` for the other neurons and rules."""
    from spiking_rhm.rules.base import rule_class

    brian2 = curve.records[0]["metrics"].get("brian2", {})
    rule = rule_class(curve.rule)
    if brian2.get("neuron") != "two-compartment" or not rule.dendritic_signal:
        return "-"
    coupling = f", g_c {brian2['g_c']:g}" if brian2.get("g_c", 1.0) != 1.0 else ""
    if rule.signal_site == "branch":
        return "branches" + coupling
    if "delivered_signal" not in brian2:
        return "point (delivery = 0)" + coupling
    soma = ", silent soma" if brian2.get("phase_spikes") == 0 else ""
    return f"delivered, inject {brian2['inject']:g}{soma}{coupling}"


def _mean_of(curve, key: str) -> str:
    values = [r["metrics"]["brian2"]["delivered_signal"].get(key) for r in curve.records
              if "delivered_signal" in r["metrics"].get("brian2", {})]
    values = [v for v in values if v is not None]
    return f"{np.mean(values):.2f}" if values else "-"


def dendrite_rows(all_curves) -> list[tuple]:
    """``(rule, network, delivery, test errors at each P, cos(L~, L), gradient cosine)`` per curve."""
    rows = []
    for c in sorted(all_curves, key=lambda c: (RULES.index(c.rule) if c.rule in RULES else len(RULES), c.rule,
                                               network(c), delivery(c))):
        rows.append((c.rule, network(c), delivery(c), {P: list(c.errors[:, j]) for j, P in enumerate(c.P)},
                     _mean_of(c, "cosine"), _mean_of(c, "gradient_cosine")))
    return rows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_neurons(table: dict, chance: float, out: Path, title: str) -> None:
    plt = _pyplot()
    rules = [r for r in RULES if any(rule == r for rule, _ in table)]
    cols = min(2, len(rules))
    rows = -(-len(rules) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), sharey=True, squeeze=False)
    for ax, rule in zip(axes.flat, rules):
        for i, net in enumerate(NETWORKS):
            by_P = table.get((rule, net))
            if not by_P:
                continue
            P = np.array(sorted(by_P), dtype=float)
            errs = [np.array(by_P[p], dtype=float) for p in sorted(by_P)]
            mean = np.array([np.nanmean(e) for e in errs])
            lo = mean - np.array([np.nanmin(e) for e in errs])
            hi = np.array([np.nanmax(e) for e in errs]) - mean
            style = "--" if not net.startswith("brian2") else "-"
            ax.errorbar(P + (i - 2.5) * 4, mean, yerr=[lo, hi], ls=style, marker="o", ms=4, capsize=2,
                        color=f"C{i}", label=net)
        ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.set_title(rule, fontsize=9)
        ax.set_xlabel("training points P")
        ax.set_xticks(sorted({p for (r, _), by in table.items() if r == rule for p in by}))
        ax.set_ylim(0, 1)
    for ax in axes.flat[len(rules):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test error (dotted: chance)")
    axes.flat[0].legend(fontsize=7, frameon=False, loc="lower left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def plot_delays(table: dict, probe: dict, chance: float, out: Path, title: str) -> None:
    """Solid: the recorded test error (the rule's own readout for dfa); dashed: the linear probe."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, ((rule, net, P), by_delay) in enumerate(table.items()):
        delays = np.array(list(by_delay), dtype=float)
        mean = np.array([np.nanmean(e) for e in by_delay.values()])
        (line,) = ax.plot(delays, mean, marker="o", color=f"C{i}", label=f"{rule}, {net}, P = {P}")
        for d, errs in by_delay.items():
            ax.plot([d] * len(errs), errs, ".", color=line.get_color(), alpha=0.5)
        if (rule, net, P) in probe:
            by = probe[rule, net, P]
            ax.plot(list(by), [np.nanmean(e) for e in by.values()], ls="--", marker="x", color=line.get_color(),
                    label=f"{rule}, {net}: linear probe")
    ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set_xlabel("modulator delay (ms)")
    ax.set_ylabel("test error (line: seed mean, dots: seeds)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main(argv=None) -> None:
    from experiments.analysis import curves, rescore
    from experiments.store import read_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directories", nargs="+")
    ap.add_argument("--axis", choices=["neuron", "delay", "dendrite"], default="neuron")
    ap.add_argument("--out", type=Path, help="the figure (PNG); none: the table only")
    args = ap.parse_args(argv)
    records = [r for d in args.directories for r in read_results(d)]
    all_curves = curves(records)
    chance = all_curves[0].chance
    width = {c.records[0]["config"]["net"]["width"] for c in all_curves}
    seeds = max(len(c.seeds) for c in all_curves)
    title = f"(v,m,n_c,s,L) = {all_curves[0].rhm}, width {', '.join(map(str, sorted(width)))}, {seeds} seeds"
    if args.axis == "neuron":
        table = neuron_table(all_curves)
        sizes = sorted({P for by in table.values() for P in by})
        print("| rule | network | " + " | ".join(f"P = {P}" for P in sizes) + " |")
        print("|---|---|" + "---|" * len(sizes))
        for rule in RULES:
            for net in NETWORKS:
                if (rule, net) in table:
                    print(f"| {rule} | {net} | " + " | ".join(_cell(table[rule, net].get(P, [])) for P in sizes) + " |")
        if args.out:
            plot_neurons(table, chance, args.out, title)
    elif args.axis == "dendrite":
        rows = dendrite_rows(all_curves)
        sizes = sorted({P for row in rows for P in row[3]})
        print("| rule | network | signal | " + " | ".join(f"P = {P}" for P in sizes)
              + " | cos(L~, L) | cos(update, point update) |")
        print("|---|---|---|" + "---|" * len(sizes) + "---|---|")
        for rule, net, how, by_P, cos, grad_cos in rows:
            print(f"| {rule} | {net} | {how} | " + " | ".join(_cell(by_P.get(P, [])) for P in sizes)
                  + f" | {cos} | {grad_cos} |")
    else:
        table = delay_table(all_curves)
        probe = delay_table(curves(rescore(records, "probe")[0]))
        delays = sorted({d for by in table.values() for d in by})
        print("| rule | network | P | scoring | " + " | ".join(f"{d:g} ms" for d in delays) + " |")
        print("|---|---|---|---|" + "---|" * len(delays))
        for key, by in table.items():
            rule, net, P = key
            for scoring, values in (("recorded", by), ("linear probe", probe.get(key, {}))):
                print(f"| {rule} | {net} | {P} | {scoring} | " + " | ".join(_cell(values.get(d, [])) for d in delays)
                      + " |")
        if args.out:
            plot_delays(table, probe, chance, args.out, title)
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
