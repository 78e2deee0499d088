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
# # Comparing learning rules
#
# Every rule of spiking-rhm is one product, *learning signal x eligibility trace*; the rules differ in where the
# learning signal comes from. This tutorial trains four of them on the same RHM data, on the rate back end:
#
# * `bp`: end-to-end backprop, the reference;
# * `dfa`: direct feedback alignment, the output error sent to every layer through fixed random matrices;
# * `sibling-cca`: a self-supervised rule, no label reaches the hidden layers (each input-tap branch of a
#   unit learns what it shares with its sibling taps); a linear readout on top reads the class;
# * `random-features`: the control, hidden layers frozen at their random initialisation, only the readout trains.
#
# It runs one training through the Python API, then a small learning-curve sweep, then the command-line
# tools on the sweep's results: the P* table (with both scorings) and the figures. About two minutes on 2 cores.
#
# The registered rules, from the command line:

# %% language="bash"
# set -e
# spiking-rhm rules

# %% [markdown]
# ## One run through the Python API
#
# A `RunConfig` describes one run: the RHM setting, the training-set size `P` (an integer, `"2x"` for
# `2 n_c m^L`, or `"max"`), the rule, the back end and the network and optimiser settings. `train` returns
# one *results record*, the same schema for every rule and back end.

# %%
import json

from spiking_rhm.api import train
from spiking_rhm.config import RunConfig

setting = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 3}   # n_c m^L = 512, P_max = 131 072
cfg = RunConfig.from_dict({
    "rhm": setting, "P": "1x", "P_test": 2000, "rule": "dfa", "seed": 0,
    "net": {"width": 128}, "optim": {"epochs": 30, "batch_size": 32},
})
record = train(cfg)
metrics = record["metrics"]
print("P, P_test:", cfg.sizes())
print({k: record[k] for k in ("rule", "backend", "P", "status", "test_error", "train_error")})
print("scored by:", metrics["evaluation"])
print("the rule's own readout:", metrics["online_readout"])
print("linear probe:", {k: metrics["probe"][k] for k in ("train_error", "test_error")})

# %% [markdown]
# A record holds two scorings of the trained network:
#
# * **online readout** (`metrics.online_readout`): the readout the rule trained itself, during training;
# * **linear probe** (`metrics.probe`): a linear classifier fitted to convergence on the top-layer features
#   of the training set after training, then scored on the test set.
#
# `test_error` is the one named by `metrics.evaluation`: the online readout for the supervised rules
# (`bp`, `dfa`), the probe for the rules whose hidden layers never see a label (`sibling-cca`, the control).
#
# ## A learning-curve sweep
#
# A sweep is the grid rules x back ends x P x seeds with shared settings, written as a TOML file for
# `spiking-rhm curve --config FILE` or, as here, as a dict. Each finished run appends its record to
# `OUT/results.jsonl`; rerunning a sweep resumes it, so the directory is cleared first.
# `bp` gets its own optimiser settings (larger batches, stop when the training loss is tiny), the protocol of
# the result pages.

# %%
import shutil
import warnings
from pathlib import Path

from experiments.store import read_results
from experiments.sweep import SweepConfig, run_sweep

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook bar, unused here
out = Path("runs/tutorials/comparing_rules")
shutil.rmtree(out, ignore_errors=True)
out.parent.mkdir(parents=True, exist_ok=True)   # a sweep creates its own directory, not missing parents
sweep = SweepConfig.from_dict({
    "rules": ["bp", "dfa", "sibling-cca", "random-features"],
    "backends": ["rate"],
    "P": ["1x", "2x", "4x"],
    "P_test": 2000,
    "seeds": [0, 1],
    "rhm": setting,
    "net": {"width": 128},
    "optim": {"epochs": 30, "batch_size": 32},
    "overrides": {
        "bp": {"optim": {"epochs": 100, "batch_size": 128, "stop_train_loss": 1e-3}},
    },
})
summary = run_sweep(sweep, out=out, progress=False)
print(summary)
records = read_results(out)
train_time = sum(r["wall_time"] for r in records)
print(f"{len(records)} records; training time summed over runs: {train_time:.0f} s")

# %% [markdown]
# ## Learning curves, both scorings
#
# `experiments.analysis.curves` groups the records into one curve per rule (P and seed vary), the grouping
# every table and figure uses. Below, the test error against P for each rule, scored by the rule's own readout
# (left) and by the linear probe (right); points are seed means, bands the seed range.

# %%
import matplotlib.pyplot as plt
import numpy as np

from experiments.analysis import curves
from experiments.report import rescore

scale = curves(records)[0].scale
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
scorings = {"online": "the rule's own readout", "probe": "linear probe"}
for ax, (scoring, title) in zip(axes, scorings.items()):
    for curve in curves(rescore(records, scoring)[0]):
        x, err = np.asarray(curve.P) / scale, curve.errors        # errors: [seeds, P]
        (line,) = ax.plot(x, np.nanmean(err, axis=0), "o-", label=curve.rule)
        ax.fill_between(x, np.nanmin(err, axis=0), np.nanmax(err, axis=0),
                        color=line.get_color(), alpha=0.2)
    ax.axhline(0.1, color="k", ls=":", lw=1, label="eps = 0.1")
    ax.axhline(1 - 1 / setting["n_c"], color="gray", ls="--", lw=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("P / (n_c m^L)")
    ax.set_title(f"scored by {title}")
axes[0].set_ylabel("test error")
axes[1].legend(fontsize=8)
fig.suptitle(f"RHM (v, m, n_c, s, L) = {tuple(setting.values())}, rate back end, "
             f"{len(sweep.seeds)} seeds")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The P* table
#
# The sample complexity P*(eps) is the training-set size at which the seed-mean test error crosses eps
# (interpolated between the measured P, with a bootstrap interval over seeds; `inf` when the error never gets
# there). `spiking-rhm pstar` prints it for the recorded scoring:

# %% language="bash"
# set -e
# spiking-rhm pstar runs/tutorials/comparing_rules

# %% [markdown]
# `spiking-rhm report DIR --scoring online|probe` tabulates either scoring (add `--out FILE.md --csv FILE.csv`
# to write the tables). The same tables from Python, both scorings side by side:

# %%
from IPython.display import Markdown, display

from experiments.report import build_report, markdown_pstar

reports = {scoring: build_report([str(out)], scoring=scoring) for scoring in scorings}
for scoring, report in reports.items():
    display(Markdown(f"**scoring: {scorings[scoring]}**\n\n" + markdown_pstar(report.pstar)))
pstar = {scoring: {row["rule"]: row for row in report.pstar}
         for scoring, report in reports.items()}

# %% [markdown]
# ## The figures of `spiking-rhm plot`
#
# `spiking-rhm plot DIR` writes every figure the records support (learning curves, P* against n_c m^L,
# synonymic sensitivity and alignment with BP per layer) as PNG and PDF in `DIR/figures`:

# %%
import subprocess

from IPython.display import Image

plot = subprocess.run(["spiking-rhm", "plot", str(out)],
                      check=True, capture_output=True, text=True)
print(plot.stdout)
display(Image(filename=str(out / "figures" / "sensitivity.png")))

# %% [markdown]
# The synonymic sensitivity `S` of a layer to `R_l` is how much the layer's activity changes when the input is
# resampled by `R_l` (same class, same hidden tree down to level `l`; see the RHM tutorial), relative to the
# change between two unrelated inputs. A layer that has grouped the bottom synonyms has `S` near 0 for
# `R_{L-1}`. From the records, the top hidden layer's sensitivity to `R_{L-1}` at the largest `P`:

# %%
largest = max(r["P"] for r in records)
top_sensitivity = {}
for curve in curves(records):
    runs = [r for r in curve.records if r["P"] == largest and r["status"] == "ok"]
    # metrics.sensitivity: {"levels": [L-1, ..., 0], "layers": [[S per level] per layer]}
    top_sensitivity[curve.rule] = np.mean([r["metrics"]["sensitivity"]["layers"][-1][0] for r in runs])
    print(f"{curve.rule:>16}: S(top hidden layer, R_{setting['L'] - 1}) = "
          f"{top_sensitivity[curve.rule]:.2f}  (P = {largest}, {len(runs)} seeds)")

# %% [markdown]
#
# **For real results** this setting is too small: two seeds and three sizes give wide P* intervals. Use at
# least three seeds and a P grid dense around P* (e.g. `experiments/configs/sibling_cca_s8.toml`, and the
# claim configs in `experiments/claims/`), a larger test set (`P_test = 4000` or more), and a second setting
# (e.g. (16, 4, 16, 2, 3)) to check the scaling with n_c m^L; run them with `spiking-rhm curve --config FILE`
# (`--dask ADDR` for a cluster) and tabulate them with `spiking-rhm report`.
#
# ## What you saw

# %%
def fmt(row):
    return f"{row['pstar']:.0f}" if np.isfinite(row["pstar"]) else "inf"

at_largest = {c.rule: np.nanmean(c.errors[:, -1]) for c in curves(records)}
ssl, ref = pstar["probe"]["sibling-cca"]["pstar"], pstar["probe"]["bp"]["pstar"]
print(
    f"On (v, m, n_c, s, L) = {tuple(setting.values())} (n_c m^L = {scale}), {len(records)} runs, "
    f"the seed-mean test error (recorded scoring) at P = {largest} was "
    + ", ".join(f"{rule} {err:.3f}" for rule, err in at_largest.items()) + ". "
    + "P*(0.1) by the rules' own readouts: "
    + ", ".join(f"{r} {fmt(row)}" for r, row in pstar["online"].items())
    + "; by the linear probe: "
    + ", ".join(f"{r} {fmt(row)}" for r, row in pstar["probe"].items()) + ". "
    + f"The top hidden layer's sensitivity to swapping bottom synonyms at P = {largest}: "
    + ", ".join(f"{r} {x:.2f}" for r, x in top_sensitivity.items()) + ". "
    + (f"Scored by the probe, sibling-cca needed {ssl / ref:.2f} times the training points of bp, "
       "without a label in its hidden layers." if np.isfinite(ssl) and np.isfinite(ref) else
       "bp and sibling-cca did not both reach 10 % probe error at these sizes.")
)
