"""Statistics of an RHM draw, computed from its full dataset (vectorised numpy).

Definitions follow ``shared/reference/rhm/README.md`` field by field; they are computed from
data (inputs, labels, hidden tree) and use the rule tables only where the definition
needs the true synonyms.  Validity of an edited input is decided by looking it up among
all valid inputs of the full dataset, never by re-deriving it from the rules.
"""

from __future__ import annotations

import itertools
import random

import numpy as np

from spiking_rhm.rhm import RHM, onehot


def reference_rules(v: int, m: int, n_c: int, s: int, L: int, seed: int) -> list[np.ndarray]:
    """Rule tables drawn with the reference code's RNG usage (for checking our statistics code).

    As described in ``reference_exact_seed0_v8m4nc8s2L2.json``: ``random.seed(seed)``, then per
    depth ``random.shuffle`` of the ``itertools.product`` list of all s-tuples, the first
    ``m * n_parents`` tuples going to the used parent symbols in increasing order.  Same
    table layout as :attr:`spiking_rhm.rhm.RHM.rules` (``-1`` rows for unused symbols).
    """
    random.seed(seed)
    used, rules = list(range(n_c)), []
    for depth in range(L):
        tuples = list(itertools.product(*[range(v) for _ in range(s)]))
        random.shuffle(tuples)
        chosen = np.array(tuples[: m * len(used)], dtype=np.int64).reshape(len(used), m, s)
        table = np.full((n_c if depth == 0 else v, m, s), -1, dtype=np.int64)
        table[used] = chosen
        rules.append(table)
        used = sorted(set(chosen.reshape(-1).tolist()))
    return rules


class FullData:
    """The full dataset of an RHM draw with base-v integer keys for fast lookups."""

    def __init__(self, rhm: RHM):
        self.rhm = rhm
        v, d = rhm.v, rhm.d
        if v**d >= 2**63:
            raise ValueError(f"v**d = {v}**{d} does not fit in int64 keys")
        self.sample = rhm.full()
        self.inputs, self.labels = self.sample.inputs, self.sample.labels
        self.tree = rhm.tree(self.sample)
        self.powers = v ** np.arange(d - 1, -1, -1, dtype=np.int64)
        self.keys = self.inputs @ self.powers
        order = np.argsort(self.keys, kind="stable")
        self.sorted_keys = self.keys[order]
        self.sorted_labels = self.labels[order]

    def lookup(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(valid [N] bool, label [N], -1 if invalid) of arbitrary input strings [N, d]."""
        keys = inputs @ self.powers
        pos = np.searchsorted(self.sorted_keys, keys)
        pos_c = np.minimum(pos, len(self.sorted_keys) - 1)
        valid = self.sorted_keys[pos_c] == keys
        return valid, np.where(valid, self.sorted_labels[pos_c], -1)

    def patch(self, j: int) -> slice:
        s = self.rhm.s
        return slice(j * s, (j + 1) * s)

    def patch_tuple_ids(self, j: int) -> np.ndarray:
        """Base-v id of the tuple at bottom patch j of every input."""
        s, v = self.rhm.s, self.rhm.v
        return self.inputs[:, self.patch(j)] @ (v ** np.arange(s - 1, -1, -1, dtype=np.int64))

    def patch_context_ids(self, j: int) -> np.ndarray:
        """Id of the context (all other positions, label) of bottom patch j of every input."""
        rest = np.delete(self.inputs, np.arange(self.patch(j).start, self.patch(j).stop), axis=1)
        v = self.rhm.v
        return (rest @ (v ** np.arange(rest.shape[1] - 1, -1, -1, dtype=np.int64))) * self.rhm.n_c + self.labels

    def context_groups(self, j: int) -> list[frozenset]:
        """Distinct tuples at patch j grouped by the *set* of contexts they occur with."""
        t, c = self.patch_tuple_ids(j), self.patch_context_ids(j)
        n_ctx = self.rhm.v ** (self.rhm.d - self.rhm.s) * self.rhm.n_c
        pairs = np.unique(pair_ids(t, c, n_ctx))  # sorted by tuple, then context
        pair_t, pair_c = np.divmod(pairs, n_ctx)
        tuples, starts = np.unique(pair_t, return_index=True)
        bounds = list(starts) + [len(pairs)]
        groups: dict[bytes, set] = {}
        for k, tup in enumerate(tuples):
            groups.setdefault(pair_c[bounds[k]:bounds[k + 1]].tobytes(), set()).add(int(tup))
        return [frozenset(g) for g in groups.values()]

    def synonym_classes(self, j: int) -> list[frozenset]:
        """Distinct tuples at patch j grouped by their true parent (level L-1 symbol at node j)."""
        t = self.patch_tuple_ids(j)
        parent = self.tree[self.rhm.L - 1][:, j]
        classes: dict[int, set] = {}
        n_t = self.rhm.v ** self.rhm.s
        for par, tup in zip(*np.divmod(np.unique(pair_ids(parent, t, n_t)), n_t)):
            classes.setdefault(int(par), set()).add(int(tup))
        return [frozenset(g) for g in classes.values()]


def row_ids(a: np.ndarray, base: int) -> np.ndarray:
    """Base-``base`` integer id of every row of ``a`` (entries in [0, base))."""
    if base ** a.shape[1] >= 2**63:
        raise ValueError(f"{base}**{a.shape[1]} does not fit in int64 ids")
    return a @ (base ** np.arange(a.shape[1] - 1, -1, -1, dtype=np.int64))


def pair_ids(a: np.ndarray, b: np.ndarray, b_base: int) -> np.ndarray:
    """Injective int64 id of pairs (a, b) with 0 <= b < b_base."""
    if int(a.max(initial=0)) * b_base + b_base >= 2**63:
        raise ValueError("pair ids overflow int64")
    return a * b_base + b


def n_distinct_rows(a: np.ndarray, base: int) -> int:
    return int(np.unique(row_ids(a, base)).size)


def subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """All of range(n) when n <= limit, else ``limit`` random indices without replacement."""
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))


# -- exact invariants -----------------------------------------------------------------------
def exact_invariants(data: FullData, rng: np.random.Generator) -> dict:
    """The ``exact_invariants`` fields of ``generator_invariants.json`` for one rule draw."""
    rhm = data.rhm
    v, m, n_c, s, L = rhm.params.astuple()
    d, P = rhm.d, rhm.P_max
    out: dict = {"Pmax": rhm.P_max, "input_positions_d": d}
    x1 = onehot(data.inputs[:2], v)
    out["onehot_shape_per_input_[channels=v, positions=d]"] = list(x1.shape[1:])
    out["flattened_input_dim_v_times_d"] = int(x1.reshape(x1.shape[0], -1).shape[1])
    out["n_distinct_inputs_full_dataset"] = int(np.unique(data.keys).size)
    out["label_is_function_of_input"] = bool(
        np.unique(pair_ids(data.keys, data.labels, n_c)).size == np.unique(data.keys).size
    )
    counts = np.bincount(data.labels, minlength=n_c)
    out["class_count_each"] = int(counts[0]) if (counts == counts[0]).all() else counts.tolist()
    out["n_distinct_level_sequences_by_level"] = [n_distinct_rows(level, v) for level in data.tree]

    synonyms, unambiguous = [], True
    for depth in range(L):
        parents = data.tree[depth].reshape(-1)
        children = data.tree[depth + 1].reshape(-1, s)
        pair_parent, pair_child = np.divmod(np.unique(pair_ids(parents, row_ids(children, v), v**s)), v**s)
        per_parent = np.unique(pair_parent, return_counts=True)[1]
        synonyms.append([int(per_parent.min()), int(per_parent.max())])
        # unambiguous: a tuple determines its parent (data), and the rule table has distinct rows
        unambiguous &= np.unique(pair_child).size == pair_child.size
        table = rhm.rules[depth].reshape(-1, s)
        table = table[(table >= 0).all(1)]
        unambiguous &= n_distinct_rows(table, v) == table.shape[0]
    out["synonyms_per_parent_symbol_each_production_level"] = synonyms
    out["all_tuples_distinct_within_a_level (unambiguous rules)"] = bool(unambiguous)
    out["n_tuples_at_root_production"] = n_distinct_rows(data.tree[1], v)

    n_patches = d // s
    groups_equal, sizes = True, set()
    for j in range(n_patches):
        groups = data.context_groups(j)
        groups_equal &= set(groups) == set(data.synonym_classes(j))
        sizes |= {len(g) for g in groups}
    out["bottom_patch_context_groups_equal_true_synonym_classes"] = bool(groups_equal)
    out["bottom_patch_context_group_size"] = sorted(sizes)

    # replace one bottom tuple by each *different* synonym (true rules), on <= 20 000 inputs
    idx = subsample(P, 20_000, rng)
    valid_all, same_all = [], []
    for j in range(n_patches):
        parent = data.tree[L - 1][idx, j]
        own = data.inputs[idx][:, data.patch(j)]
        for k in range(m):
            new = rhm.rules[L - 1][parent, k]  # [N, s]
            change = (new != own).any(1)
            edited = data.inputs[idx].copy()
            edited[:, data.patch(j)] = new
            valid, label = data.lookup(edited[change])
            valid_all.append(valid)
            same_all.append(label == data.labels[idx][change])
    out["patch_substitution_by_synonym_valid_fraction"] = float(np.concatenate(valid_all).mean())
    out["patch_substitution_by_synonym_same_label_fraction"] = float(np.concatenate(same_all).mean())

    sample = data.sample.take(idx)
    valid_frac, label_frac = [], []
    for level in range(L - 1, -1, -1):
        new = rhm.resample(sample, level, rng)
        valid, label = data.lookup(new.inputs)
        valid_frac.append(float(valid.mean()))
        label_frac.append(float(((label == sample.labels) & (new.labels == sample.labels)).mean()))
    out["synonym_resampling_valid_fraction_all_levels"] = valid_frac
    out["synonym_resampling_label_preserved_fraction_all_levels"] = label_frac

    same_pairs = int((counts * (counts - 1)).sum())
    out["pair_same_label_fraction_distinct_pairs"] = round(same_pairs / (P * (P - 1)), 6)
    if m * n_c == m * v == v**s:  # saturated case
        out["marginal_max_abs_dev_from_uniform"] = marginal_stats(data)["marginal_max_abs_dev_from_uniform"]
    return out


# -- statistics that depend on the rule draw -------------------------------------------------
def marginal_stats(data: FullData) -> dict:
    v, d = data.rhm.v, data.rhm.d
    counts = np.zeros((d, v), dtype=np.int64)
    for j in range(d):
        counts[j] = np.bincount(data.inputs[:, j], minlength=v)
    dev = np.abs(counts / data.rhm.P_max - 1 / v)
    return {
        "marginal_max_abs_dev_from_uniform": float(dev.max()),
        "marginal_mean_tv_from_uniform": float((0.5 * dev.sum(1)).mean()),
        "marginal_n_absent_symbol_position_pairs": int((counts == 0).sum()),
    }


def seed_statistics(data: FullData, rng: np.random.Generator) -> dict:
    """The ``seed_statistics`` fields for one rule draw.

    Per-patch fields are lists (one value per bottom patch); ``synonym_resampling_raw_input``
    is a list over k with ``seed_reset_layer = L - 1 - k``.
    """
    rhm = data.rhm
    v, m, n_c, s, L = rhm.params.astuple()
    d, P = rhm.d, rhm.P_max
    n_patches = d // s
    out: dict = {"n_distinct_symbols_used_by_level": [int(np.unique(lv).size) for lv in data.tree]}
    out.update(marginal_stats(data))

    out["bottom_patch_n_distinct_tuples"] = [int(np.unique(data.patch_tuple_ids(j)).size) for j in range(n_patches)]
    out["bottom_patch_n_synonym_classes_present"] = [len(data.context_groups(j)) for j in range(n_patches)]

    # f_j(alpha | t): unweighted mean over distinct tuples present, all n_c classes
    sq = []
    for j in range(n_patches):
        tuples, t = np.unique(data.patch_tuple_ids(j), return_inverse=True)
        joint = np.bincount(t * n_c + data.labels, minlength=tuples.size * n_c).reshape(tuples.size, n_c)
        f = joint / joint.sum(1, keepdims=True)
        sq.append(((f - 1 / n_c) ** 2).mean())
    out["tuple_class_corr_rms"] = float(np.sqrt(np.mean(sq)))

    # freq(symbol beta at j | class alpha): std over beta (ddof = 1), mean over (alpha, j)
    joint = np.stack([np.bincount(data.labels * v + data.inputs[:, j], minlength=n_c * v).reshape(n_c, v)
                      for j in range(d)], axis=1)  # [n_c, d, v]
    freq = joint / np.bincount(data.labels, minlength=n_c)[:, None, None]
    out["symbol_class_freq_std_res1"] = float(freq.std(axis=2, ddof=1).mean())

    # single-symbol edits on all inputs or a random 50 000
    idx = subsample(P, 50_000, rng)
    x, y = data.inputs[idx], data.labels[idx]
    valid_n = same_n = total = 0
    for j in range(d):
        for shift in range(1, v):
            edited = x.copy()
            edited[:, j] = (edited[:, j] + shift) % v
            valid, label = data.lookup(edited)
            valid_n += int(valid.sum())
            same_n += int((valid & (label == y)).sum())
            total += valid.size
    out["hamming1_sub_valid_fraction"] = valid_n / total
    out["hamming1_sub_same_label_given_valid"] = same_n / valid_n if valid_n else None

    # replace one bottom tuple by a random tuple seen at that patch with a different parent
    valid_n = same_n = total = 0
    for j in range(n_patches):
        tuple_ids = data.patch_tuple_ids(j)
        parent = data.tree[L - 1][:, j]
        pairs = np.stack(np.divmod(np.unique(pair_ids(tuple_ids, parent, v)), v), 1)  # distinct (tuple, parent)
        own_parent = parent[idx]
        # candidates of each input: the tuples whose parent differs; draw one uniformly
        cand_ok = pairs[None, :, 1] != own_parent[:, None]  # [N, n_tuples]
        n_ok = cand_ok.sum(1)
        has = n_ok > 0
        pick_rank = (rng.random(idx.size) * np.maximum(n_ok, 1)).astype(np.int64)
        pick = np.argmax(np.cumsum(cand_ok, axis=1) > pick_rank[:, None], axis=1)
        chosen = pairs[pick, 0]
        new = (chosen[:, None] // (v ** np.arange(s - 1, -1, -1, dtype=np.int64))) % v
        edited = x.copy()
        edited[:, data.patch(j)] = new
        valid, label = data.lookup(edited[has])
        valid_n += int(valid.sum())
        same_n += int((valid & (label == y[has])).sum())
        total += int(has.sum())
    out["patch_sub_nonsyn_valid_fraction"] = valid_n / total if total else None
    out["patch_sub_nonsyn_same_label_given_valid"] = same_n / valid_n if valid_n else None

    # synonym resampling on raw one-hot inputs
    N = min(P, 20_000)
    sample = data.sample.take(np.sort(rng.choice(P, size=N, replace=False)))
    sample = sample.take(rng.permutation(N))
    ref = sample.inputs[: min(N, 2000)]
    p_hat = np.stack([np.bincount(ref[:, j], minlength=v) for j in range(d)]) / ref.shape[0]
    D = 2 * d - 2 * float((p_hat**2).sum())  # mean over all pairs (i = j included) of ||x_i - x_j||^2
    raw = []
    for k in range(L):
        level = L - 1 - k
        new = rhm.resample(sample, level, rng)
        changed = (new.inputs != sample.inputs).sum(1)
        raw.append({
            "seed_reset_layer": level,
            "raw_sensitivity": float((2 * changed).mean() / D),
            "mean_positions_changed": float(changed.mean()),
            "fraction_inputs_unchanged": float((changed == 0).mean()),
        })
    out["synonym_resampling_raw_input"] = raw
    return out
