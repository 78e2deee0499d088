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
# # To neuromorphic hardware
#
# A network trained with spiking-rhm leaves the package as a [NIR](https://neuroir.org) graph, the
# exchange format of neuromorphic simulators and chips, and runs on Intel's Lava framework in two precisions:
# Lava's floating-point processes, and Loihi 2's bit-accurate fixed point (integer weights, decays and
# thresholds), each compared spike for spike with the Norse simulation of the same network on the same input
# spikes.
#
# The path, all on the command line:
#
# 1. `spiking-rhm train ... --save-net NET.npz`: train and save the network (weights, readout, config);
# 2. `spiking-rhm export NET.npz --out NET.nir`: the network as a NIR graph, at an operating point NIR can
#    express;
# 3. `spiking-rhm deploy NET.nir`: run it on Norse, Lava float and Loihi fixed point and compare.
#
# About a minute on 2 cores. Lava is optional (`bash scripts/install_lava.sh`); without it this tutorial runs
# the fixed point on the package's numpy model of Loihi's integer arithmetic (`--engine reference`, bit-identical
# to Lava's `fixed_pt` processes in the tests) and skips Lava float.

# %%
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

out = Path("runs/tutorials/to_hardware")
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)


def cli(*args, check=True):
    """Run `spiking-rhm ARGS`, print what it printed; its exit code."""
    done = subprocess.run(["spiking-rhm", *map(str, args)], capture_output=True, text=True)
    print(done.stdout + done.stderr, end="")
    if check and done.returncode:
        raise RuntimeError(f"spiking-rhm {args[0]} exited with {done.returncode}")
    return done.returncode


has_lava = importlib.util.find_spec("lava") is not None
print("Lava installed:", has_lava)

# %% [markdown]
# ## 1. Train and save a network
#
# Backprop on the rate network of (v, m, n_c, s, L) = (8, 4, 8, 2, 3), a three-layer hierarchical CNN of width
# 128, trained on 1536 points (3 n_c m^L). `--save-net` writes the trained weights, the readout the run was
# scored with and the run's config, from which every later step rebuilds the network and the run's own
# held-out points.

# %%
net_file = out / "bp.npz"
cli("train", "--rule", "bp", "--backend", "rate", "--v", 8, "--m", 4, "--nc", 8, "--s", 2, "--L", 3,
    "--P", 1536, "--P-test", 1000, "--width", 128, "--quiet", "--save-net", net_file)

from spiking_rhm.checkpoint import Checkpoint

checkpoint = Checkpoint.load(net_file)
print("hidden weights:", [tuple(w.shape) for w in checkpoint.hidden],
      "readout:", tuple(checkpoint.readout_weight.shape))
print("spiking settings stored with it:", {k: getattr(checkpoint.config.spiking, k)
                                           for k in ("code", "T", "max_rate", "v_rest", "reset", "v_init", "drive")})

# %% [markdown]
# ## 2. Export NIR
#
# A rate network becomes a spiking one by the map of `docs/spiking.md` (Spiking back end): each unit is a LIF
# neuron whose firing rate follows the rate unit's ReLU. NIR's `CubaLIF` neuron resets its membrane to a fixed
# value after a spike and starts at rest; the back end's default operating point resets by *subtraction*
# (`spiking.reset = subtract`, which keeps the overshoot), so `export` refuses it in one line:

# %%
code = cli("export", net_file, "--out", out / "refused.nir", check=False)
print("exit code:", code)

# %% [markdown]
# The options below give an operating point NIR expresses exactly: reset to zero, start at rest, rest at
# threshold (`v_rest = 1`: the LIF rate is a smoothed ReLU of the input current), a Bernoulli rate code at up to
# 1000 Hz over `T = 30` steps of 1 ms and input gain `drive = 4`. They change the simulation, not the weights.
# `--refit-readout` then fits the linear readout on the network's own spike counts of its training points (the
# LIF rate saturates where the ReLU does not; the hidden weights are untouched).

# %%
nir_file = out / "bp.nir"
nir_point = {"spiking.T": 30, "spiking.max_rate": 1000.0, "spiking.code": "rate", "spiking.v_rest": 1.0,
             "spiking.drive": 4.0, "spiking.reset": "zero", "spiking.v_init": "rest"}
cli("export", net_file, "--out", nir_file, *[a for k, v in nir_point.items() for a in ("--option", f"{k}={v}")],
    "--refit-readout");

# %% [markdown]
# The file is plain NIR; any NIR reader sees the nodes below (`hardware.nir_graph.read_nir` is `nir.read` with
# a one-line error for a bad file). The package's own metadata (RHM setting, spike code, split) rides along so
# that `deploy` can draw the run's held-out points.

# %%
from hardware.nir_graph import chain, read_nir

graph = read_nir(nir_file)
for name in chain(graph):
    node = graph.nodes[name]
    fields = {k: getattr(node, k) for k in ("tau_mem", "tau_syn", "v_threshold", "v_reset")
              if hasattr(node, k)}
    extra = {k: float(v.flat[0]) for k, v in fields.items()}
    shape = getattr(node, "weight", None)
    print(f"{name:>10}: {type(node).__name__:<8}"
          + (f" weight {tuple(shape.shape)}" if shape is not None else "")
          + (f" {extra} (first unit)" if extra else ""))

# %% [markdown]
# ## 3. Deploy: Norse, Lava float, Loihi fixed point
#
# `deploy` rebuilds the network from the NIR file for each target, draws the run's held-out points (disjoint
# from the 1536 it was trained on), encodes them **once** and runs the same input spikes through every target.
# It prints, per target, the test error, the agreement of its predictions with Norse, the fraction of equal
# (step, neuron) spike entries per layer and the correlation of spike counts, then how each layer was quantised
# for Loihi: a scale `S` from float to integer units, a weight exponent, the integer decays `du`, `dv` and
# threshold `vth`, and the rounding error of weights and threshold. `--batch 500` simulates all 500 points side by
# side in one run of each target (Lava's start-up is paid once).

# %%
targets = "norse,lava-float,loihi-fixed" if has_lava else "norse,loihi-fixed"
engine = "lava" if has_lava else "reference"
report_file, figure_dir = out / "report.json", out / "figures"
cli("deploy", nir_file, "--P-test", 500, "--batch", 500, "--target", targets, "--engine", engine, "--quiet",
    "--out", report_file, "--figures", figure_dir);

# %% [markdown]
# The figures of the first batch (here all 500 points): the rasters of sample 0 on every target (spikes that
# differ from Norse in red: extra spikes as dots, missing ones as open circles), and the spike count of every
# neuron and sample on each target against Norse.

# %%
from IPython.display import Image, display

display(Image(filename=str(figure_dir / "rasters.png")))
display(Image(filename=str(figure_dir / "counts.png")))

# %% [markdown]
# ## Reading the report
#
# `--out` writes the same numbers as JSON (`hardware.deploy.evaluate_deployment` returns it as a dict from
# Python): the run's config, the quantisation of every layer and a row per target.

# %%
report = json.loads(report_file.read_text())
print(f"{report['P_test']} held-out points, T = {report['steps']} steps, engine {report['engine']}")
for target, row in report["targets"].items():
    spikes = row.get("spike_agreement")
    print(f"{target:>12}: test error {row['test_error']:.4f}, predictions equal to Norse "
          f"{row['agreement_with_norse']:.1%}"
          + (f", equal spike entries per layer {', '.join(f'{a:.4f}' for a in spikes)}" if spikes else ""))
for layer in report["quantisation"]:
    print(f"layer {layer['layer']}: weights rounded by at most {layer['relative_weight_error']:.2%} of max |w|")

# %% [markdown]
# **For real results** use a larger held-out set (`--P-test 4000`; one point of 500 is 0.2 % of error), several
# seeds of the training run, and a network trained to convergence (`spiking-rhm train` without `--quiet` shows
# its learning curve). Other readers of the same file (`--target norse-nir,snntorch-nir`, with `export
# --profile` for their conventions), networks trained on Norse itself and on-chip learning with Lava's learning
# engine are in `docs/hardware.md` (Hardware; `bash experiments/deploy/run.sh` regenerates its tables).
#
# ## What you saw

# %%
rows = report["targets"]
fixed = rows["loihi-fixed"]
print(
    f"A bp network of width 128 on (8, 4, 8, 2, 3), trained on 1536 points, exported as NIR "
    f"({len(chain(graph))} nodes) at the reset-to-zero operating point and run on {report['P_test']} held-out "
    f"points ({report['steps']} steps, the same input spikes everywhere) had test error "
    + ", ".join(f"{t} {r['test_error']:.4f}" for t, r in rows.items())
    + (f". Lava float fired exactly the Norse spikes in {sum(a == 1.0 for a in rows['lava-float']['spike_agreement'])}"
       f" of {len(rows['lava-float']['spike_agreement'])} layers" if "lava-float" in rows else
       ". Lava float was skipped (Lava not installed)")
    + f"; Loihi fixed point ({report['engine']} engine) made the Norse prediction on "
    f"{fixed['agreement_with_norse']:.1%} of the points, with "
    + ", ".join(f"{a:.1%}" for a in fixed["spike_agreement"])
    + " of (step, neuron) spike entries equal to Norse in layers 1 to "
    + f"{len(fixed['spike_agreement'])}, its weights rounded by at most "
    + f"{max(q['relative_weight_error'] for q in report['quantisation']):.2%} of a layer's largest weight."
)
