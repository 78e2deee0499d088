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
# # Plasticity dynamics
#
# On the Norse back end a rule updates the weight `W^l_jk` from neuron `k` of layer `l-1` to neuron `j` of
# layer `l` with three factors, formed online while the input is presented:
#
# * the **pre-synaptic trace** `xbar_k(t)`: the spikes of neuron `k`, low-pass filtered (`tau_pre` = 10 ms);
# * the **post-synaptic factor** `psi_j(t)`: a surrogate derivative of neuron `j`'s membrane potential, largest
#   near threshold (`psi_beta` sets its sharpness);
# * their product, low-pass filtered (`tau_elig` = 20 ms), is the **eligibility trace** `e_jk(t)`: a
#   synapse-local memory of how much `k` could have made `j` fire;
#
# and a **modulator** `L^l_j`, the rule's learning signal, broadcast to neuron `j` at the end of the
# presentation (for `dfa`: the output error through a fixed random matrix). The update is
# `Delta W^l_jk = -eta c^l sum L^l_j e_jk / sqrt(K_l)`, summed over the batch and the positions
# (`spiking_rhm.plasticity`; `c^l` rescales the trace to the rate eligibility's size).
#
# This tutorial records these quantities for a few synapses during a short `dfa` run, draws them with the
# functions behind `spiking-rhm dynamics`, then follows the **synonymic sensitivity** of every layer as training
# goes, on the spiking and on the rate network. About a minute on 2 cores.

# %%
import numpy as np

from spiking_rhm.config import RunConfig

setting = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}     # n_c m^L = 128, P_max = 512
cfg = RunConfig.from_dict({
    "rhm": setting, "P": 384, "P_test": 128, "rule": "dfa", "backend": "norse", "seed": 0,
    "net": {"width": 64}, "optim": {"batch_size": 32},
})
sp = cfg.spiking
print(f"operating point: {sp.code} code at {sp.max_rate:g} Hz, T = {sp.T} steps of {sp.dt * 1e3:g} ms, "
      f"v_rest = {sp.v_rest}, v_th = {sp.v_th}, reset = {sp.reset}, drive g = {sp.drive}")
print(f"traces: tau_pre = {sp.tau_pre * 1e3:g} ms, tau_elig = {sp.tau_elig * 1e3:g} ms, psi_beta = {sp.psi_beta}, "
      f"eligibility = {sp.eligibility}, scale = {sp.eligibility_scale}")

# %% [markdown]
# ## Recording a run
#
# `record_dynamics` (what `spiking-rhm dynamics --rule dfa --out DIR` runs) trains the network for a number of
# batches and keeps, for sample 0 of each batch: the spikes and membrane potentials of every layer during the
# presentation, and, for `n_synapses` synapses per layer (random post neurons, pre neurons that fired), the
# factors `psi_j` and `xbar_k`, the eligibility `e_jk` recomputed from them with the learner's own trace step,
# the modulator `L_j` after every batch and the weight `W_jk` before and after every batch.

# %%
import shutil
from pathlib import Path

from spiking_rhm.backends.norse.dynamics import plot_dynamics, record_dynamics

out = Path("runs/tutorials/plasticity_dynamics")
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
record = record_dynamics(cfg, steps=30, n_synapses=4)
print(f"{len(record.loss)} batches of {cfg.optim.batch_size}; readout cross-entropy "
      f"{record.loss[0]:.3f} -> {record.loss[-1]:.3f} (chance: ln {setting['n_c']} = {np.log(setting['n_c']):.3f})")
for l, syn in enumerate(record.synapses, 1):
    print(f"layer {l}: followed synapses (post j, pre k) = {syn}")
figures = {path.stem: path for path in plot_dynamics(record, out / "figures")}

# %% [markdown]
# ## One presentation: spikes, factors and eligibility
#
# The spike raster of sample 0 of the last batch: the input (each active symbol channel on its clock), then the
# hidden layers, one row per (position, neuron).

# %%
from IPython.display import Image, display

display(Image(filename=str(figures["rasters"])))

# %% [markdown]
# Left, the eligibility traces `e_jk(t)` of the followed synapses over the same presentation; right, the two
# factors of the first one: `psi_j` rises whenever neuron `j` nears threshold, `xbar_k` jumps at each spike of
# `k` and decays. The eligibility integrates their product, so it grows only while both are active.

# %%
display(Image(filename=str(figures["eligibility"])))
print("membrane potentials (pre-reset) of the followed post neurons:")
display(Image(filename=str(figures["membrane"])))

# %% [markdown]
# ## Modulator and weights over training
#
# After each presentation the rule computes the modulator `L^l_j` (top: per layer, for the followed post
# neurons; bottom: the readout's cross-entropy), and the weights move by `-eta L x e`, summed over the samples of
# the batch and the positions: a synapse moves when its modulator and its eligibility are large together.

# %%
display(Image(filename=str(figures["modulator"])))
display(Image(filename=str(figures["weights"])))

# %% [markdown]
# The numbers behind the last update, for layer 1: the modulator of sample 0, the eligibility summed over the
# presentation and the weight change of that batch (which sums `L x e` over all 32 samples and the positions,
# and adds momentum, so it is not the product of the two columns):

# %%
for i, (j, k) in enumerate(record.synapses[0]):
    dW = record.weights[0][-1, i] - record.weights[0][-2, i]
    print(f"W[{j:2d},{k:2d}]: L_j = {record.modulator[0][-1, i]:+.2e}, sum_t e_jk = "
          f"{record.eligibility[0][:, i].sum():.3f}, Delta W = {dW:+.2e}")
energy = record.energy
print("per inference after these batches: " + ", ".join(
    f"{name} {spk:.0f} spikes" for name, spk in zip(energy["layers"], energy["spikes"])))

# %% [markdown]
# ## Synonymic sensitivity as training goes
#
# A layer has learned the hierarchy's bottom level when its activity no longer changes under `R_{L-1}`, the
# exchange of synonymous bottom tuples (same class, same hidden symbols above them). The synonymic sensitivity
# `S` of a layer to `R_l` (`spiking_rhm.metrics.synonymic_sensitivity`) is the mean squared change of its
# activity under `R_l`, over that between unrelated inputs: 1 for a layer blind to the structure, 0 for an
# invariant one.
#
# To follow it through training, the same run is trained for 0, 1, 2, 4, 8 and 16 epochs at a constant learning
# rate (`optim.schedule = "constant"`, no early stop): the batches of each epoch are drawn from a generator seeded
# by the run's seed, so a run of `k` epochs is the first `k` epochs of the longest one (checked below on the
# per-epoch training loss). The rate back end records `S` of every layer in `metrics.sensitivity`; for the
# spiking network the run saves its trained network (`checkpoint=`, like `spiking-rhm train --save-net`) and
# `S` is computed on its spike counts, on the same test points and the same resamplings.

# %%
import dataclasses

from spiking_rhm.api import train
from spiking_rhm.backends.norse.deployed import encode, from_checkpoint, simulate
from spiking_rhm.checkpoint import Checkpoint
from spiking_rhm.metrics import synonymic_sensitivity

epochs = [0, 1, 2, 4, 8, 16]
rhm = cfg.rhm.build()
_, test = rhm.split(*cfg.sizes(), seed=cfg.seed)


def spiking_sensitivity(path):
    """S of every layer's spike counts [N, positions x H] (the same input spikes for x and R_l x)."""
    net = from_checkpoint(Checkpoint.load(path))

    def layer_fn(inputs):
        counts, _, _ = simulate(net, encode(net, inputs, seed=cfg.seed + 1))
        return [c.reshape(len(inputs), -1) for c in counts]

    return synonymic_sensitivity(layer_fn, rhm, test, np.random.default_rng([cfg.seed, 3]))


runs = {}
for backend in ("rate", "norse"):
    for k in epochs:
        run = cfg.replace(backend=backend, optim=dataclasses.replace(
            cfg.optim, epochs=k, schedule="constant", stop_train_loss=0.0))
        path = out / f"{backend}_{k}.npz"
        record_k = train(run, checkpoint=path)
        sens = (record_k["metrics"]["sensitivity"] if backend == "rate" else spiking_sensitivity(path))
        runs[backend, k] = {"record": record_k, "S": np.array(sens["layers"]), "levels": sens["levels"]}
    print(f"{backend}: test error after {epochs} epochs = "
          + ", ".join(f"{runs[backend, k]['record']['test_error']:.3f}" for k in epochs))

for backend in ("rate", "norse"):
    longest = runs[backend, epochs[-1]]["record"]["metrics"]["curve"]["train_loss"]
    gap = max(abs(a - b) for k in epochs[1:] for a, b in
              zip(runs[backend, k]["record"]["metrics"]["curve"]["train_loss"], longest))
    print(f"{backend}: largest difference of a shorter run's per-epoch train loss from the longest run's: {gap:.1e}")

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

levels = runs["rate", 0]["levels"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
x = np.arange(len(epochs))
for ax, backend in zip(axes, ("rate", "norse")):
    S = np.stack([runs[backend, k]["S"] for k in epochs])          # [epochs, layers, levels]
    for layer in range(S.shape[1]):
        for i, level in enumerate(levels):
            ax.plot(x, S[:, layer, i], "o-" if i == 0 else "s--", color=f"C{layer}",
                    label=f"layer {layer + 1}, R_{level}")
    ax.set_xticks(x, epochs)
    ax.set_xlabel("epochs trained")
    ax.set_title(f"{backend} back end ({'spike counts' if backend == 'norse' else 'rates'})")
    ax.axhline(1, color="gray", ls=":", lw=1)
axes[0].set_ylabel("synonymic sensitivity S")
axes[1].legend(fontsize=8)
fig.suptitle(f"dfa on (v, m, n_c, s, L) = {tuple(setting.values())}, P = {cfg.sizes()[0]}, "
             f"{len(test.labels)} test points")
fig.tight_layout()
plt.show()

# %% [markdown]
# **For real results** use more test points (the estimate of `S` is a mean over them; `P_test = 1000` or more),
# several seeds, and a setting with a deeper hierarchy (e.g. (8, 4, 8, 2, 3)), where `S` to each `R_l` can be
# followed layer by layer; `spiking-rhm curve ... --out DIR` then `spiking-rhm plot DIR` draws `S` against `P`
# for the rate runs of a sweep. `spiking-rhm dynamics --steps 200 --synapses 8` records a longer stretch of
# training. With `--option eligibility=synapse` the Norse learner keeps one trace per synapse instead of the
# factored form (same quantity, more memory).
#
# ## What you saw

# %%
def fmt_S(backend, k):
    S = runs[backend, k]["S"]
    return "/".join(f"{S[layer, 0]:.2f}" for layer in range(S.shape[0]))

first, last = epochs[0], epochs[-1]
print(
    f"In one dfa presentation on Norse ({sp.T} ms), layer 1 fired "
    f"{int(record.spikes[0].sum())} spikes and layer 2 {int(record.spikes[1].sum())} (sample 0); "
    f"the eligibility of the followed layer-1 synapses summed to "
    + ", ".join(f"{e:.2f}" for e in record.eligibility[0].sum(0))
    + f" over the window, and {len(record.loss)} batches moved the readout loss from {record.loss[0]:.3f} "
    f"to {record.loss[-1]:.3f}. "
    f"Sensitivity to exchanging bottom synonyms (R_{levels[0]}), layer 1/layer 2, from {first} to {last} epochs: "
    f"rate {fmt_S('rate', first)} -> {fmt_S('rate', last)}, Norse {fmt_S('norse', first)} -> "
    f"{fmt_S('norse', last)}; test error {runs['rate', first]['record']['test_error']:.3f} -> "
    f"{runs['rate', last]['record']['test_error']:.3f} (rate) and "
    f"{runs['norse', first]['record']['test_error']:.3f} -> {runs['norse', last]['record']['test_error']:.3f} "
    f"(Norse) on {len(test.labels)} test points."
)
