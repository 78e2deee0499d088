"""Membrane traces of every Brian2 neuron model for one input (docs/figures/brian2/neurons.png).

One RHM sample of (v, m, n_c, s, L) = (8, 4, 8, 2, 2) in the default regular 200 Hz code, T = 60 steps, the
default operating point (rest 0.5, threshold 1, reset by subtraction, drive 6), the same random weights
(width 16, seed 0) for every model at its default options; drawn: the layer-1 neuron whose LIF count is the
median of the active ones, its somatic potential v (spikes marked) and the model's own variable (AdEx
adaptation wad, conductances ge / gi, dendritic potential v_dend).

    python experiments/brian2/neuron_dynamics.py [--out docs/figures/brian2/neurons.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def traces(T: int = 60, width: int = 16, seed: int = 0) -> tuple[dict, int, object]:
    """``({model: (v [T], spikes [T], {own variable: [T]})}, neuron index, parameters)`` of one layer-1 neuron."""
    from spiking_rhm.backends.brian2.equations import NEURON_MODELS, neuron_model
    from spiking_rhm.backends.brian2.network import Brian2Network
    from spiking_rhm.backends.norse.build import build_network
    from spiking_rhm.backends.norse.network import float64_parameters, init_weights
    from spiking_rhm.config import RunConfig
    from spiking_rhm.rhm import RHM, onehot

    cfg = RunConfig.from_dict(dict(rule="dfa", backend="brian2", P=1, rhm=dict(v=8, m=4, n_c=8, s=2, L=2),
                                   net={"width": width}, spiking={"T": T}))
    encoder, spec, params = build_network(cfg, cfg.rhm.v)
    params = float64_parameters(params)
    weights = init_weights(spec, torch.Generator().manual_seed(seed), dtype=torch.float64)
    sample = RHM(8, 4, 8, 2, 2, seed=0).split(1, 0, seed=seed)[0]
    spikes = encoder(onehot(sample.inputs, 8, dtype=torch.float64), torch.Generator().manual_seed(seed))
    out, pick = {}, None
    for name in NEURON_MODELS:
        model = neuron_model(name, reset=params.reset)
        variables = model.recorded  # v first, then the model's own variables
        net = Brian2Network(spec, params, 1, T, model, record=True, record_vars=variables)
        res = net.run(weights.hidden, spikes, plastic=False)
        z = res.spikes[0][:, 0].reshape(T, -1)
        if pick is None:  # the LIF (first model) chooses the neuron
            counts = z.sum(0)
            active = np.flatnonzero(counts > 0)
            pick = int(active[np.argsort(counts[active])[len(active) // 2]]) if len(active) else 0
        mon = net.monitor(1)
        extra = {v: np.asarray(getattr(mon, v))[pick] for v in variables[1:]}
        out[name] = (np.asarray(mon.v)[pick], z[:, pick], extra)
    return out, pick, params


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/figures/brian2/neurons.png")
    ap.add_argument("--T", type=int, default=60)
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, pick, params = traces(args.T)
    t = np.arange(args.T) * float(params.dt) * 1e3
    fig, axes = plt.subplots(len(data), 1, figsize=(8, 1.9 * len(data)), sharex=True)
    for ax, (name, (v, z, extra)) in zip(axes, data.items()):
        ax.plot(t, v, color="k", lw=1.2, label="v (soma)")
        ax.plot(t[z > 0], np.full(int(z.sum()), float(params.lif.v_th) + 0.25), "|", color="C3", ms=10,
                label=f"spikes ({int(z.sum())})")
        ax.axhline(float(params.lif.v_th), color="grey", ls=":", lw=0.8)
        for i, (var, values) in enumerate(extra.items()):
            ax.plot(t, values, color=f"C{i}", lw=1, label=var)
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=7, ncol=4, frameon=False)
    axes[-1].set_xlabel("time (ms)")
    axes[0].set_title(f"layer-1 neuron {pick}, one RHM sample (regular 200 Hz code), default options of each model",
                      fontsize=9)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    for name, (v, z, extra) in data.items():
        print(f"{name:<16} spikes {int(z.sum()):3d}  v in [{v.min():.2f}, {v.max():.2f}]  "
              + "  ".join(f"{k} in [{x.min():.3f}, {x.max():.3f}]" for k, x in extra.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
