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
# # The Random Hierarchy Model
#
# The Random Hierarchy Model (RHM; Cagnetta, Petrini, Tomasini, Favero & Wyart, PRX 14, 031001, 2024) is the
# data set every experiment of spiking-rhm runs on. A class symbol (level 0) is rewritten `L` times; at every
# level each symbol becomes one of `m` **synonymous** `s`-tuples of symbols from a vocabulary of size `v`.
# The input is the string of `d = s**L` symbols at level `L`, and its label is the class at the root.
#
# This tutorial generates data with `spiking_rhm.rhm`, checks a few of its invariants live, and shows what
# synonyms are, the size `P_max` of the data set and the sample-complexity scale `n_c m^L`.
# It runs in a few seconds.

# %%
import numpy as np
import matplotlib.pyplot as plt

from spiking_rhm import RHM

rhm = RHM(v=8, m=4, n_c=8, s=2, L=3, seed=0)   # seed: the draw of the grammar
print(rhm)
print(f"d = s^L = {rhm.d} input positions, {rhm.n_nodes} production choices per datapoint")

# %% [markdown]
# ## The grammar
#
# `rhm.rules[depth]` is the table of productions applied at production depth `depth`
# (level `depth` -> level `depth + 1`): row `a`, column `j` is the `j`-th of the `m` synonymous
# `s`-tuples that symbol `a` can become. At depth 0 only the `n_c` classes have rules.

# %%
for depth, table in enumerate(rhm.rules):
    print(f"depth {depth}: table {table.shape} (parents, m, s)")
print("class 0 can be written as any of:", [tuple(map(int, t)) for t in rhm.rules[0][0]])

# %% [markdown]
# ## Generating data
#
# A datapoint is a class plus one choice in `0..m-1` at every internal node of the tree.
# `split` draws disjoint training and test sets from a seeded permutation of the whole data set,
# so for a fixed seed the test set is fixed and the training sets are nested in `P`.

# %%
train, test = rhm.split(P=1000, P_test=500, seed=0)
print("train:", train.inputs.shape, "labels", train.labels.shape, "choices", train.choices.shape)
print("first input:", train.inputs[0], "label:", train.labels[0])

# every hidden level of the tree of that datapoint, from the class down to the input
for level, symbols in enumerate(rhm.tree(train.take([0]))):
    print(f"level {level}: {symbols[0]}")

# %% [markdown]
# Networks read an input as one-hot symbols, `[N, v, d]`: one channel per symbol, one column per position.
# Below, the first three training inputs of class 0 drawn that way (dark = 1).

# %%
from spiking_rhm.rhm import onehot

class0 = train.take(np.flatnonzero(train.labels == 0)[:3])
images = onehot(class0.inputs, rhm.v).numpy()                        # [3, v, d]
fig, axes = plt.subplots(1, 3, figsize=(9, 2.6), sharey=True)
for ax, image, x in zip(axes, images, class0.inputs):
    ax.imshow(image, cmap="Greys", aspect="auto")
    ax.set_title(" ".join(map(str, x)), fontsize=9)
    ax.set_xlabel("position")
axes[0].set_ylabel("symbol")
fig.suptitle("three inputs of class 0 as one-hot images [v, d]")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Invariants, checked live
#
# * **Size.** Every (class, choices) pair is a datapoint: `P_max = n_c m^((s^L - 1)/(s - 1))`.
# * **Unambiguous grammar.** All tuples of one depth are distinct, so an input string determines its whole
#   tree and its class: the `P_max` datapoints are `P_max` distinct strings, and the classes are balanced.
# * **Splits.** Training and test sets are disjoint, and the same seed gives the same points.

# %%
full = rhm.full()              # every datapoint, in index order (P_max is small here)
formula = rhm.n_c * rhm.m ** ((rhm.s**rhm.L - 1) // (rhm.s - 1))
n_distinct = len(np.unique(full.inputs, axis=0))
per_class = np.bincount(full.labels, minlength=rhm.n_c)
print(f"P_max = {rhm.P_max}, formula = {formula}, distinct input strings = {n_distinct}")
print("points per class:", per_class)
assert rhm.P_max == formula == n_distinct == full.inputs.shape[0]
assert (per_class == rhm.P_max // rhm.n_c).all()

for depth, table in enumerate(rhm.rules):
    used = table[table[:, 0, 0] >= 0].reshape(-1, rhm.s)   # productions of the symbols in use
    assert len(np.unique(used, axis=0)) == len(used), "two symbols share a tuple"
print("all productions of each depth are distinct tuples")

train_idx, test_idx = rhm.index(train), rhm.index(test)
again, _ = rhm.split(P=1000, P_test=500, seed=0)
assert not np.intersect1d(train_idx, test_idx).size
assert (again.inputs == train.inputs).all()
print(f"train and test share {np.intersect1d(train_idx, test_idx).size} points; "
      "the same seed gives the same set")

# %% [markdown]
# ## Synonyms and the resampling R_l
#
# Two `s`-tuples are **synonyms** when they are productions of the same symbol: swapping one for the other
# changes the input but not the class, nor anything above that tuple in the tree. A network that has learnt
# the hierarchy must be insensitive to such swaps.
#
# The resampling `R_l` keeps the class and the choices of the top `l` production depths and redraws every
# choice below: the new input has the same class and the **same hidden tree at levels 0..l**, and differs
# below. `R_L` redraws nothing; `R_{L-1}` swaps only the bottom tuples for synonyms; `R_0` keeps only
# the class.

# %%
generator = np.random.default_rng(1)
x = train.take([0])
for l in range(rhm.L + 1):
    y = rhm.resample(x, level=l, generator=generator)
    tree_x, tree_y = rhm.tree(x), rhm.tree(y)
    same = [bool((a == b).all()) for a, b in zip(tree_x, tree_y)]
    assert y.labels[0] == x.labels[0] and all(same[: l + 1])
    print(f"R_{l}: {x.inputs[0]} -> {y.inputs[0]}   same symbols at levels 0..L: {same}")

# %% [markdown]
# Redrawn choices equal the old ones with probability `1/m`, so `R_l` need not change every level
# below `l`. Over many draws, the fraction of the `d` input positions that `R_l` changes:

# %%
batch = train.take(np.arange(500))
changed = []
for l in range(rhm.L + 1):
    y = rhm.resample(batch, level=l, generator=np.random.default_rng(2))
    same_levels = [(a == b).all(axis=1) for a, b in zip(rhm.tree(batch), rhm.tree(y))]
    assert (y.labels == batch.labels).all() and all(s.all() for s in same_levels[: l + 1])
    changed.append(float((y.inputs != batch.inputs).mean()))
    print(f"R_{l}: {changed[-1]:.3f} of the input positions changed")

# %% [markdown]
# ## How many inputs per class, and the scale n_c m^L
#
# A class has `m` choices for its level-1 tuple, each of the `s` level-1 symbols `m` choices again, and so on:
# the number of distinct level-`l` strings of one class is `m^((s^l - 1)/(s - 1))`, which explodes with
# depth. Counted on the full data set:

# %%
levels = range(rhm.L + 1)
def strings_per_class(level):
    """Distinct (class, level-l string) pairs, per class."""
    pairs = np.concatenate([full.labels[:, None], rhm.tree(full)[level]], axis=1)
    return len(np.unique(pairs, axis=0)) // rhm.n_c

counted = [strings_per_class(l) for l in levels]
expected = [rhm.m ** ((rhm.s**l - 1) // (rhm.s - 1)) for l in levels]
print("distinct level-l strings per class:", counted, " formula:", expected)
assert counted == expected

fig, ax = plt.subplots(figsize=(5, 3.3))
ax.semilogy(levels, counted, "o-", label="counted on the full data set")
ax.semilogy(levels, expected, "k--", lw=1, label=r"$m^{(s^l-1)/(s-1)}$")
ax.set_xlabel("level l")
ax.set_ylabel("distinct strings per class")
ax.set_xticks(list(levels))
ax.set_title(f"RHM (v, m, n_c, s, L) = {rhm.params.astuple()}")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Shallow networks and kernels need a number of points of the order of `P_max` (the curse of dimensionality).
# Deep CNNs need far fewer: Cagnetta et al. find that their sample complexity grows as **P\* ~ n_c m^L**, the
# size at which the correlations between the low-level `s`-tuples of the input and the class become
# detectable, and at which the representations become invariant to exchanges of synonyms. Sizes in spiking-rhm are often given in this unit
# (`P = "2x"` means `2 n_c m^L`, see `spiking-rhm info`). The gap to `P_max` grows fast with `L`:

# %%
from spiking_rhm import RHMParams

print(f"{'(v, m, n_c, s, L)':>20} {'n_c m^L':>9} {'P_max':>24} {'P_max / n_c m^L':>16}")
settings = [(8, 4, 8, 2, 2), (8, 4, 8, 2, 3), (16, 4, 16, 2, 3), (16, 4, 16, 2, 4), (32, 8, 32, 2, 4)]
for p in settings:
    params = RHMParams(*p)
    print(f"{str(p):>20} {params.scale:>9} {params.P_max:>24} {params.P_max / params.scale:>16.3g}")

# %% [markdown]
# **For real results** use settings where `P_max` is much larger than `n_c m^L`, e.g. (8, 4, 8, 2, 3) or
# (16, 4, 16, 2, 3) as in the result pages; draw data with `split`/`stream` (never `full`, which is only for
# small `P_max`) and average over several grammar seeds as well as data seeds.
#
# ## What you saw

# %%
print(
    f"The grammar {rhm} generates P_max = {rhm.P_max} datapoints, all {n_distinct} input "
    f"strings distinct and {per_class[0]} per class, as n_c m^((s^L-1)/(s-1)) predicts. "
    f"The number of distinct level-l strings per class grew as {counted} for l = 0..{rhm.L}. "
    f"Synonym resampling R_l kept the class and the tree at levels 0..l in all {batch.size} "
    f"draws and changed a fraction {', '.join(f'{c:.2f}' for c in changed)} of the input "
    f"positions for l = 0..{rhm.L}. The sample-complexity scale n_c m^L = {rhm.params.scale} "
    f"is {rhm.params.scale / rhm.P_max:.2%} of P_max."
)
