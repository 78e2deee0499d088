# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Rate vs spiking
#
# Every rule of spiking-rhm trains two kinds of network with the same code: the PyTorch **rate** network
# (`rate_models`) and the **Norse** spiking network (`spiking_rhm.backends.norse`), whose neurons are leaky
# integrate-and-fire (LIF) units driven by spike trains. On Norse a rule's update is the same product
# *learning signal x eligibility trace*; only the eligibility changes, from the rate network's `rho'(a) x` to
# a trace built online from spikes (the surrogate derivative of the membrane potential times a filtered
# pre-synaptic spike train).
#
# This tutorial trains `dfa` (direct feedback alignment) and the `random-features` control (hidden layers frozen,
# only the readout trains) on both back ends at the Norse back end's default operating point, draws the learning
# curves side by side and reads the energy proxy of the spiking runs: spikes and synaptic operations per
# inference. About a minute on 2 cores.
#
# ## The spike code
#
# A spiking run first turns each one-hot input `[v, d]` into spike trains `[T, channels, d]`. The default code
# (`spiking.code = "regular"`) fires every active symbol channel on a regular clock at `spiking.max_rate`
# (200 Hz) with a random phase, for `T = 30` steps of `dt = 1 ms`; inactive channels stay silent.

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch

from spiking_rhm import RHM
from spiking_rhm.backends.norse.inputs import SpikeEncoder
from spiking_rhm.config import RunConfig
from spiking_rhm.rhm import onehot

setting = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}        # n_c m^L = 128, P_max = 512
spiking = RunConfig().spiking                                 # the back end's defaults
print({k: v for k, v in dataclasses.asdict(spiking).items()
       if k in ("code", "T", "dt", "max_rate", "v_rest", "reset", "drive")})

rhm = RHM(**setting, seed=0)
sample, _ = rhm.split(P=1, P_test=0, seed=0)
encoder = SpikeEncoder.from_config(spiking, rhm.v)
spikes = encoder(onehot(sample.inputs, rhm.v), torch.Generator().manual_seed(0))   # [T, N, C, d]
T, _, C, d = spikes.shape
t, c, j = np.nonzero(spikes[:, 0].numpy())
fig, ax = plt.subplots(figsize=(8, 3))
ax.scatter((t + 0.5) * spiking.dt * 1e3, j * C + c, c=j, cmap="tab10", vmin=0, vmax=9, marker="|", s=60)
for pos in range(1, d):
    ax.axhline(pos * C - 0.5, color="0.85", lw=0.5)
ax.set_ylim(-0.5, C * d - 0.5)
ax.set_xlabel("time (ms)")
ax.set_ylabel("position x symbol channel")
ax.set_title(f"input {sample.inputs[0].tolist()} as spikes: {int(spikes.sum())} spikes in {T} ms")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## One sweep, both back ends
#
# The back end is one more axis of a sweep (`backends = ["rate", "norse"]`, or `spiking-rhm curve --backend
# rate,norse`): the two networks get the same data, initial weights, batches and learning rates; the `spiking`
# section of the config (empty here: the defaults above) applies to Norse only. The training set grows from
# `n_c m^L` to `3 n_c m^L`, and 128 held-out points score each run.

# %%
import shutil
import warnings
from pathlib import Path

from experiments.store import read_results
from experiments.sweep import SweepConfig, run_sweep

warnings.filterwarnings("ignore", message="IProgress not found")
out = Path("runs/tutorials/rate_vs_spiking")
shutil.rmtree(out, ignore_errors=True)
out.parent.mkdir(parents=True, exist_ok=True)
sweep = SweepConfig.from_dict({
    "rules": ["dfa", "random-features"],
    "backends": ["rate", "norse"],
    "P": ["1x", "2x", "3x"],
    "P_test": 128,
    "seeds": [0],
    "rhm": setting,
    "net": {"width": 64},
    "optim": {"epochs": 20, "batch_size": 32, "min_steps": 120},
})
summary = run_sweep(sweep, out=out, progress=False)
print(summary)
records = read_results(out)
for backend in sweep.backends:
    spent = sum(r["wall_time"] for r in records if r["backend"] == backend)
    print(f"{backend}: {sum(r['backend'] == backend for r in records)} runs, {spent:.1f} s of training")

# %% [markdown]
# ## Learning curves side by side
#
# `experiments.analysis.curves` groups the records into one curve per rule and back end. Left the rate
# network, right the spiking one, with the same axes; the dotted line is chance, `1 - 1/n_c`.

# %%
from experiments.analysis import curves

by_key = {(c.rule, c.backend): c for c in curves(records)}
scale = next(iter(by_key.values())).scale
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, backend in zip(axes, sweep.backends):
    for rule, color in zip(sweep.rules, ["C0", "C3"]):
        curve = by_key[(rule, backend)]
        ax.plot(np.asarray(curve.P) / scale, np.nanmean(curve.errors, axis=0), "o-", color=color, label=rule)
    ax.axhline(1 - 1 / setting["n_c"], color="gray", ls=":", lw=1, label="chance")
    ax.set_xlabel("P / (n_c m^L)")
    ax.set_title(f"{backend} back end")
axes[0].set_ylabel("test error")
axes[1].legend()
fig.suptitle(f"RHM (v, m, n_c, s, L) = {tuple(setting.values())}, width 64, seed 0")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The energy proxy
#
# Every Norse record carries `metrics.energy`: after training, on up to 256 test points, the spikes and
# synaptic operations (synops) per inference and layer (input first). A spike of a layer-`l` neuron reaches
# the `H` units of the patch above it, so `synops_l = spikes_{l-1} x H_{l}` (the last entry: top-layer spikes
# into the readout). Synops are what event-driven hardware pays for; a rate network computes every
# multiply-accumulate (MAC) whatever the activity. The MACs of the same network, for comparison, from the
# shapes recorded in `metrics.spiking` (widths, positions, fan-in):

# %%
from IPython.display import Markdown, display

largest = max(r["P"] for r in records)
norse = {r["rule"]: r for r in records if r["backend"] == "norse" and r["P"] == largest}
shape = next(iter(norse.values()))["metrics"]["spiking"]
# into layer l: H_l units at each of its positions (positions[0] is the input's), fan-in K_l; then the readout
macs_into = [h * p * k for h, p, k in zip(shape["widths"], shape["positions"][1:], shape["fan_in"])] \
    + [shape["widths"][-1] * setting["n_c"]]
macs = sum(macs_into)
rows = ["| rule | layer | spikes | synops out | rate (Hz) | active units |", "|---|---|---|---|---|---|"]
for rule, record in norse.items():
    energy = record["metrics"]["energy"]
    for layer, spk, syn, rate, active in zip(energy["layers"], energy["spikes"], energy["synops"],
                                              energy["rate_hz"], energy["active"]):
        rows.append(f"| {rule} | {layer} | {spk:.1f} | {syn:.0f} | {rate:.1f} | {active:.0%} |")
display(Markdown("\n".join(rows)))
print(f"MACs of one inference of the rate network: {macs} ({' + '.join(map(str, macs_into))} into the layers "
      "and the readout)")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
width = 0.8 / len(norse)
for i, (rule, record) in enumerate(norse.items()):
    energy = record["metrics"]["energy"]
    x = np.arange(len(energy["layers"])) + i * width
    axes[0].bar(x, energy["spikes"], width, label=rule)
    axes[1].bar(x, energy["synops"], width, label=rule)
centre = np.arange(len(energy["layers"])) + width * (len(norse) - 1) / 2
axes[1].bar(centre, macs_into, width * len(norse), fill=False, edgecolor="k", label="MACs of the rate network")
targets = [*energy["layers"][1:], "readout"]
axes[0].set_xticks(centre, energy["layers"])
axes[1].set_xticks(centre, [f"{a}->{b}" for a, b in zip(energy["layers"], targets)])
axes[0].set_title("spikes per inference")
axes[1].set_title("synaptic operations per inference")
axes[1].legend(fontsize=8)
fig.suptitle(f"Norse runs at P = {largest}, after training")
fig.tight_layout()
plt.show()

# %% [markdown]
# The same figures and tables come from the command line: `spiking-rhm curve --rule dfa,random-features
# --backend rate,norse ... --out DIR`, then `spiking-rhm plot DIR` and `spiking-rhm report DIR`;
# `spiking-rhm dynamics` prints the energy proxy of a single run (see the plasticity-dynamics tutorial).
#
# **For real results** one seed and 128 test points are far too few: the test error of a single run moves by
# several points from seed to seed here. Use at least two seeds (three for a claim), a denser P grid and more
# steps per run: `experiments/spiking/defaults.toml` (12 runs, about 5 minutes on 2 cores; at least 400 steps per
# run) and the sweeps of `experiments/spiking/` behind `docs/results_spiking.md` (Results, "Rate vs spiking").
# The operating point (code, `T`, resting potential, reset, drive) changes the spiking curves a lot; that page
# also shows how the defaults were chosen. `spiking-rhm response` draws the LIF rate-to-spike curve of any
# operating point.
#
# ## What you saw

# %%
def err(rule, backend, P):
    curve = by_key[(rule, backend)]
    return float(np.nanmean(curve.errors[:, curve.P.index(P)]))

Ps = by_key[("dfa", "rate")].P
print(
    f"On (v, m, n_c, s, L) = {tuple(setting.values())}, width 64, seed 0, the test error on 128 held-out "
    f"points at P = {', '.join(map(str, Ps))} was: "
    + "; ".join(f"{rule} [{backend}] " + ", ".join(f"{err(rule, backend, P):.3f}" for P in Ps)
                for rule in sweep.rules for backend in sweep.backends)
    + f". At P = {largest}, spiking dfa was {err('dfa', 'norse', largest) - err('dfa', 'rate', largest):+.3f} "
    f"from rate dfa and {err('dfa', 'norse', largest) - err('random-features', 'norse', largest):+.3f} from "
    f"the spiking control (chance {1 - 1 / setting['n_c']:.3f}). "
    + "Per inference after training, the spiking networks fired "
    + ", ".join(f"{rule} {r['metrics']['energy']['spikes_total']:.0f} hidden spikes and "
                f"{r['metrics']['energy']['synops_total']:.0f} synaptic operations" for rule, r in norse.items())
    + f", against {macs} MACs for one pass of the rate network. "
    + f"Training took {sum(r['wall_time'] for r in records if r['backend'] == 'norse'):.0f} s on Norse and "
    f"{sum(r['wall_time'] for r in records if r['backend'] == 'rate'):.0f} s on the rate back end."
)
