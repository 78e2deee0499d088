r"""``spiking-rhm dynamics --backend brian2``: one training presentation of the Brian2 network, recorded.

For a few layer-1 neurons of the first sample: the model's state variables (somatic ``v``; AdEx ``wad``,
conductances ``ge``/``gi``, dendritic ``v_dend``) and spikes over the window; for a few of their input
synapses: the eligibility ``e`` over the window, the modulator's delay and its arrival, the modulated
accumulator ``sum_k (1 - a_m) a_m^k e(T + D + k)``, and the step's gradient on their weight-table entries
(``grad W = c sum L e / sqrt(K)`` summed over the batch and the weight copies).  With the dendritic delivery
(two-compartment neuron, a clapp-family rule): the learning phase after the window, the dendrite with and without
the delivered current, and per neuron the current, the rule's signal ``L`` and the third factor ``L~`` read from
the dendrite.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch


class Brian2Dynamics(NamedTuple):
    dt: float
    T: int  # window steps (the modulator phase follows)
    model: str
    neurons: np.ndarray  # flat layer-1 indices
    variables: dict  # name -> [n_neurons, T]
    spikes: np.ndarray  # [T, n_neurons]
    synapses: np.ndarray  # flat synapse indices of layer 1
    elig: np.ndarray  # [n_synapses, steps] window + delay + modulator
    wacc: np.ndarray  # [n_synapses, steps]
    grad: np.ndarray  # [n_synapses] the step's gradient on their table entries
    modulator: tuple  # (delay s, tau s)
    # the dendritic delivery's learning phase (two-compartment, clapp family; None otherwise): steps S, the chosen
    # neurons' variables over it without ("reference") and with ("delivered") the current, the current, the rule's
    # signal L and the third factor L~ read from the dendrite
    phase: dict | None = None


def record_dynamics(cfg, n_neurons: int = 3, n_synapses: int = 6) -> Brian2Dynamics:
    """Build the run of ``cfg`` (Brian2Backend) with monitors on layer 1 of the first sample, present its first
    training batch once; keep the ``n_neurons`` that fired most and the ``n_synapses`` of their input synapses
    with the largest eligibility at the window's end."""
    from spiking_rhm.backends.brian2.equations import neuron_model
    from spiking_rhm.backends.brian2.train import Brian2Backend

    recorded = neuron_model(cfg.spiking.neuron, cfg.spiking.neuron_options, cfg.spiking.reset).recorded
    from spiking_rhm.backends.norse.build import build_network

    spec = build_network(cfg, cfg.rhm.v)[1]
    P, H, K = spec.positions[1], spec.widths[0], spec.fan_in[0]
    neurons = np.arange(P * H)  # sample 0: neuron (0, p, h) is p H + h, synapse (0, p, h, k) is (p H + h) K + k
    backend = Brian2Backend(cfg, network_options={"record": {1: neurons}, "record_vars": recorded,
                                                  "record_synapses": {1: np.arange(P * H * K)}})
    net, T = backend.net, cfg.spiking.T
    hidden_lr, _ = backend.learning_rates()
    out = backend.step(torch.arange(backend.batch), hidden_lr, False)
    mon = net.monitor(1)
    spike_mon = net.layers[0][2]
    steps = np.rint(np.asarray(spike_mon.t_) / net.dt).astype(int)
    ids = np.asarray(spike_mon.i)
    keep = (ids < P * H) & (steps < T)
    spikes = np.zeros((T, P * H))
    spikes[steps[keep], ids[keep]] = 1
    chosen = np.sort(np.argsort(-spikes.sum(0), kind="stable")[:n_neurons])
    syn_mon = net.net["synapse_monitor1"]
    elig, wacc = np.asarray(syn_mon.elig), np.asarray(syn_mon.wacc)
    candidates = np.concatenate([np.arange(n * K, (n + 1) * K) for n in chosen])
    order = np.argsort(-np.abs(elig[candidates, T - 1]), kind="stable")[:n_synapses]
    synapses = np.sort(candidates[order])
    widx = net.layers[0][-1][synapses]
    grad = out.grads[0].detach().numpy().reshape(-1)[widx]
    variables = {v: np.asarray(getattr(mon, v))[chosen, :T] for v in recorded}
    phase = None
    if backend.delivers:  # the learning phase after the window: the monitors hold the delivered run's steps
        S, d = backend.model.phase_steps(net.dt), backend.last_delivery
        first = lambda x: np.asarray(x[0][0]).reshape(-1)[chosen]  # noqa: E731  (layer 1, sample 0: p H + h)
        phase = {"steps": S, **{run: {v: net.phase_record[run][0][v][chosen] for v in recorded}
                                for run in ("reference", "delivered")},
                 "current": first(d["current"]), "signal": first([d["signal"][0].transpose(1, 2).numpy()]),
                 "third_factor": first([d["third_factor"][0].transpose(1, 2).numpy()])}
        a_e = np.exp(-net.dt / float(cfg.spiking.tau_elig))  # the phase's eligibility: e(T) a_e^t (plasticity off)
        elig = np.concatenate([elig[:, :T], elig[:, T - 1:T] * a_e ** np.arange(1, S + 1)], 1)
        wacc = wacc[:, :T]
    return Brian2Dynamics(net.dt, T, backend.model.name, chosen, variables, spikes[:, chosen], synapses,
                          elig[synapses], wacc[synapses], grad, tuple(backend.modulator), phase)


def plot_dynamics(rec: Brian2Dynamics, out: str | Path) -> Path:
    """One figure (``brian2_dynamics.png`` in ``out``): neuron variables and spikes, eligibility and the modulated
    accumulator of the chosen synapses, their gradient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phase = rec.phase
    rows = 4 if phase else 3
    fig, axes = plt.subplots(rows, 1, figsize=(9, 10 if phase else 8),
                             gridspec_kw={"height_ratios": [2, 2, 1, 1][:rows]})
    t = np.arange(rec.T) * rec.dt * 1e3
    ax = axes[0]
    for j, i in enumerate(rec.neurons):
        for k, (name, values) in enumerate(rec.variables.items()):
            ax.plot(t, values[j], color=f"C{j}", ls=["-", "--", ":", "-."][k % 4], lw=1,
                    label=f"{name} neuron {i}" if j == 0 or k == 0 else None)
        ax.plot(t[rec.spikes[:, j] > 0], np.full(int(rec.spikes[:, j].sum()), 1.3 + 0.08 * j), "|", color=f"C{j}")
        if phase:  # the learning phase: the dendrite with (solid) and without (dotted) the delivered current
            tp = (rec.T + np.arange(phase["steps"])) * rec.dt * 1e3
            ax.plot(tp, phase["delivered"]["v_dend"][j], color=f"C{j}", lw=1.6)
            ax.plot(tp, phase["reference"]["v_dend"][j], color=f"C{j}", lw=1, ls=":")
    if phase:
        ax.axvspan(rec.T * rec.dt * 1e3, (rec.T + phase["steps"]) * rec.dt * 1e3, color="0.92", zorder=0)
        ax.set_title("window, then the learning phase (grey): v_dend with the delivered current (thick) and "
                     "without it (dotted)", fontsize=8)
    ax.set_ylabel(f"{rec.model}: state")
    ax.legend(fontsize=7, ncol=3, frameon=False)
    ax = axes[1]
    steps = rec.elig.shape[1]
    ts = np.arange(steps) * rec.dt * 1e3
    for j, s in enumerate(rec.synapses):
        ax.plot(ts, rec.elig[j], color=f"C{j}", lw=1, label=f"e, synapse {s}")
        if not phase:
            ax.plot(ts, rec.wacc[j], color=f"C{j}", lw=1, ls="--")
    ax.axvline(rec.T * rec.dt * 1e3, color="grey", lw=0.8)
    delay, tau = rec.modulator
    if phase:
        ax.set_title("eligibility e; in the learning phase (after the grey line) plasticity is off and e(T) a_e^t "
                     "weights the dendrite's deviation", fontsize=8)
    else:
        ax.set_title(f"eligibility e (solid) and modulated accumulator (dashed); window ends at the grey line, "
                     f"modulator delay {delay * 1e3:g} ms, tau {tau * 1e3:g} ms", fontsize=8)
    ax.set_xlabel("time (ms)")
    ax.legend(fontsize=7, ncol=3, frameon=False)
    ax = axes[2]
    ax.bar(range(len(rec.synapses)), rec.grad, color=[f"C{j}" for j in range(len(rec.synapses))])
    ax.set_xticks(range(len(rec.synapses)), [str(s) for s in rec.synapses], fontsize=7)
    ax.set_ylabel("gradient")
    ax.set_xlabel("synapse (its weight-table entry's gradient after the presentation)")
    if phase:
        ax = axes[3]
        x = np.arange(len(rec.neurons))
        ax.bar(x - 0.2, phase["signal"], 0.4, color="0.6", label="rule's signal L")
        ax.bar(x + 0.2, phase["third_factor"], 0.4, color=[f"C{j}" for j in x], label="third factor L~ (dendrite)")
        ax.set_xticks(x, [f"neuron {i}\ninj = {c:.3g}" for i, c in zip(rec.neurons, phase["current"])], fontsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel("delivered signal")
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    path = Path(out) / "brian2_dynamics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["Brian2Dynamics", "plot_dynamics", "record_dynamics"]
