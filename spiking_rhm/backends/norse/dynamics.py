r"""Plasticity dynamics of a Norse run: record, then plot as PNG files.

:func:`record_dynamics` trains ``cfg`` (backend norse) for ``steps`` batches and keeps, for
sample 0 of every batch's first window: spikes and pre-reset potentials of every layer, the
pre trace ``xbar``, the surrogate ``psi`` and, for a few synapses ``(j, k)`` at position 0,
the eligibility ``e_jk(t)`` (recomputed with :func:`traces.eligibility_step` from the same
``psi_j`` and ``xbar_k``: the numbers the learner used).  After every batch it keeps the
modulator ``L^l_j`` of sample 0 for those neurons and the weights ``W^l_jk``.
:func:`plot_dynamics` writes ``rasters.png``, ``membrane.png``, ``eligibility.png``,
``modulator.png`` and ``weights.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from spiking_rhm.backends.norse.network import activity
from spiking_rhm.backends.norse.traces import EligibilityState, eligibility_step
from spiking_rhm.backends.norse.train import NorseSetup
from spiking_rhm.errors import ConfigError


class DynamicsRecord(NamedTuple):
    """Arrays (numpy) of one recorded run; time in steps of ``dt`` seconds."""

    dt: float
    v_th: float
    input_spikes: np.ndarray  # [T, C * d] of sample 0 in the last batch
    spikes: list[np.ndarray]  # per layer [T, P * H] (last batch)
    v_pre: list[np.ndarray]  # per layer [T, P * H] (last batch)
    eligibility: list[np.ndarray]  # per layer [T, n_syn] (last batch)
    psi: list[np.ndarray]  # per layer [T, n_syn] (psi of the post neuron of each synapse)
    xbar: list[np.ndarray]  # per layer [T, n_syn] (normalised pre trace of each synapse)
    synapses: list[list[tuple[int, int]]]  # per layer (post j, pre k) at position 0
    modulator: list[np.ndarray]  # per layer [steps, n_syn] L^l_j of sample 0, post neuron of each synapse
    weights: list[np.ndarray]  # per layer [steps + 1, n_syn] W^l_jk (initial first)
    loss: np.ndarray  # [steps] readout cross-entropy
    rule: str
    energy: dict | None = None  # network.activity of the last batch after training (spikes, synops per layer)


def record_dynamics(cfg, steps: int = 20, n_synapses: int = 6) -> DynamicsRecord:
    """Train ``cfg`` for ``steps`` batches and record the quantities of :class:`DynamicsRecord`."""
    if cfg.backend != "norse":
        cfg = cfg.replace(backend="norse")
    if steps < 1 or n_synapses < 1:
        raise ConfigError("steps and n_synapses must be >= 1")
    setup = NorseSetup(cfg)
    if not hasattr(setup.learner, "rule"):
        raise ConfigError(f"rule {cfg.rule!r} trains by BPTT on the norse back end; it has no traces to record")
    spec, p = setup.spec, setup.params
    P, _ = cfg.sizes()
    train, _ = setup.rhm.split(P, 0, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 17)
    synapses: list[list[tuple[int, int]]] = []  # chosen after the first window: pre inputs that fire
    hidden_lr, readout_lr = setup.learning_rates()
    opt = torch.optim.SGD([{"params": setup.weights.hidden, "lr": hidden_lr},
                           {"params": [setup.weights.readout], "lr": readout_lr}], lr=hidden_lr,
                          momentum=cfg.optim.momentum)

    def weight_row(hidden):
        rows = []
        for W, syn in zip(hidden, synapses):
            W0 = W if W.dim() == 2 else W[0]
            rows.append(np.array([float(W0[j, k]) for j, k in syn]))
        return rows

    history = [[W.clone() for W in setup.weights.hidden]]
    signals: list[list[torch.Tensor]] = []
    losses = []
    batch_size = min(cfg.optim.batch_size, P)
    for step in range(steps):
        start = (step * batch_size) % max(1, P - batch_size + 1)
        sample = train.take(np.arange(start, min(P, start + batch_size)))
        window = {l: {"z": [], "v_pre": [], "psi": [], "xbar": []} for l in range(spec.depth)}

        def recorder(t, l, values, window=window):
            for key in window[l]:
                window[l][key].append(values[key][0].detach().cpu())  # sample 0

        batch = setup.present(sample)
        res = setup.learner.step(setup.weights, batch, hidden_lr, recorder=recorder)
        for param, grad in zip(setup.weights.parameters(), [*res.grads, res.grad_readout]):
            param.grad = grad
        opt.step()
        losses.append(res.loss)
        history.append([W.clone() for W in setup.weights.hidden])
        signals.append([L[0].detach().cpu() for L in res.signals])
    # synapses to follow: random post neurons, pre inputs that fired in the last window (sample 0, position 0)
    for l, (H, K) in enumerate(zip(spec.widths, spec.fan_in)):
        active = torch.nonzero(torch.stack(window[l]["xbar"])[:, 0].sum(0) > 0).flatten()
        pool = active if len(active) else torch.arange(K)
        js = torch.randperm(H, generator=gen)[:n_synapses].tolist()
        ks = pool[torch.randint(len(pool), (len(js),), generator=gen)].tolist()
        synapses.append(list(zip(js, ks)))
    weights = [np.stack([weight_row(h)[l] for h in history]) for l in range(spec.depth)]
    modulator = [np.stack([np.array([float(sig[l][j, 0]) for j, _ in synapses[l]]) for sig in signals])
                 for l in range(spec.depth)]
    # eligibility of the chosen synapses in the last window, from the learner's own psi and xbar
    elig, psi_rec, xbar_rec, spikes, v_pre = [], [], [], [], []
    for l, syn in enumerate(synapses):
        js = torch.tensor([j for j, _ in syn])
        ks = torch.tensor([k for _, k in syn])
        psi = torch.stack(window[l]["psi"])[:, 0, js]  # [T, n_syn] at position 0
        xbar = torch.stack(window[l]["xbar"])[:, 0, ks] / p.rho_in[l]
        n = len(syn)
        state = EligibilityState(torch.zeros(1, 1, n, n))
        trace = []
        for t in range(psi.shape[0]):  # outer product of the factors; synapse i is the diagonal (j_i, k_i)
            e, state = eligibility_step(psi[t].view(1, 1, n), xbar[t].view(1, 1, n), state, p.elig, p.dt)
            trace.append(torch.diagonal(e[0, 0]).clone())
        elig.append(torch.stack(trace).numpy())
        psi_rec.append(psi.numpy())
        xbar_rec.append(xbar.numpy())
        spikes.append(torch.stack(window[l]["z"]).flatten(1).numpy())
        v_pre.append(torch.stack(window[l]["v_pre"]).flatten(1).numpy())
    input_spikes = batch.spikes[:, 0].transpose(1, 2).flatten(1).cpu().numpy()
    energy = activity(batch.spikes, setup.network_weights(), spec, p)
    return DynamicsRecord(p.dt, float(p.lif.v_th), input_spikes, spikes, v_pre, elig, psi_rec, xbar_rec, synapses,
                          modulator, weights, np.array(losses), cfg.rule, energy)


def plot_dynamics(record: DynamicsRecord, out: str | Path) -> list[Path]:
    """Write the five figures of ``record`` into the folder ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ms = record.dt * 1e3
    L = len(record.spikes)
    paths = []

    def save(fig, name):
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    fig, axes = plt.subplots(L + 1, 1, figsize=(8, 2.2 * (L + 1)), sharex=True)
    for ax, z, title in zip(axes, [record.input_spikes, *record.spikes],
                            ["input (position x channel)"] + [f"layer {l + 1} (position x neuron)" for l in range(L)]):
        t, n = np.nonzero(z)
        ax.scatter((t + 0.5) * ms, n, marker="|", s=12, color="k")
        ax.set_ylim(-0.5, z.shape[1] - 0.5)
        ax.set_ylabel("neuron")
        ax.set_title(f"{title}: {int(z.sum())} spikes")
    axes[-1].set_xlabel("time (ms)")
    fig.suptitle(f"spike rasters, sample 0 of the last batch ({record.rule})")
    save(fig, "rasters.png")

    fig, axes = plt.subplots(L, 1, figsize=(8, 2.5 * L), sharex=True, squeeze=False)
    for l, ax in enumerate(axes[:, 0]):
        v = record.v_pre[l]
        for j, _ in record.synapses[l][:4]:
            ax.plot(np.arange(v.shape[0]) * ms, v[:, j], lw=1, label=f"neuron {j}")
        ax.axhline(record.v_th, color="r", ls="--", lw=0.8, label="v_th")
        ax.set_ylabel(f"layer {l + 1}: v (pre-reset)")
        ax.legend(fontsize=6, loc="upper right")
    axes[-1, 0].set_xlabel("time (ms)")
    save(fig, "membrane.png")

    fig, axes = plt.subplots(L, 2, figsize=(10, 2.5 * L), squeeze=False)
    for l in range(L):
        T = record.eligibility[l].shape[0]
        time = np.arange(T) * ms
        for i, (j, k) in enumerate(record.synapses[l]):
            axes[l, 0].plot(time, record.eligibility[l][:, i], lw=1, label=f"e[{j},{k}]")
        axes[l, 0].set_ylabel(f"layer {l + 1}: eligibility")
        axes[l, 0].legend(fontsize=6, loc="upper left")
        axes[l, 1].plot(time, record.psi[l][:, 0], label="psi (post)")
        axes[l, 1].plot(time, record.xbar[l][:, 0], label="xbar / rho (pre)")
        axes[l, 1].set_title(f"factors of synapse {record.synapses[l][0]}", fontsize=8)
        axes[l, 1].legend(fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    save(fig, "eligibility.png")

    for name, series, ylabel in (("modulator.png", record.modulator, "L^l_j (sample 0)"),
                                 ("weights.png", record.weights, "W^l_jk")):
        fig, axes = plt.subplots(L + (name == "modulator.png"), 1, figsize=(8, 2.3 * (L + 1)), squeeze=False)
        for l in range(L):
            ax = axes[l, 0]
            for i, (j, k) in enumerate(record.synapses[l]):
                ax.plot(series[l][:, i], marker=".", lw=1, label=f"j={j}" if name == "modulator.png" else f"({j},{k})")
            ax.set_ylabel(f"layer {l + 1}: {ylabel}", fontsize=8)
            ax.legend(fontsize=6, loc="upper right")
        if name == "modulator.png":
            axes[-1, 0].plot(record.loss, color="k")
            axes[-1, 0].set_ylabel("readout CE")
        axes[-1, 0].set_xlabel("training step (batch)")
        save(fig, name)
    return paths
