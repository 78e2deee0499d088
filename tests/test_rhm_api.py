"""Unit tests of the RHM generator API (``spiking_rhm.rhm``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spiking_rhm.errors import RHMParameterError, SpikingRHMError
from spiking_rhm.rhm import RHM, RHMParams, onehot

SMALL = (8, 4, 8, 2, 2)
HUGE = (32, 8, 32, 2, 4)  # P_max = 2**50
HUGER = (32, 8, 32, 2, 5)  # P_max = 32 * 8**31 = 2**98 > 2**63


@pytest.fixture(scope="module")
def rhm():
    return RHM(*SMALL, seed=1)


def _keys(sample, v):
    return sample.inputs @ (v ** np.arange(sample.inputs.shape[1] - 1, -1, -1, dtype=np.int64))


def test_params_derived_quantities():
    p = RHMParams(16, 4, 16, 2, 3)
    assert (p.d, p.n_nodes, p.P_max, p.scale, p.astuple()) == (8, 7, 16 * 4**7, 16 * 4**3, (16, 4, 16, 2, 3))
    q = RHMParams(12, 3, 12, 3, 2)
    assert (q.d, q.n_nodes, q.P_max) == (9, 4, 12 * 3**4)
    assert RHMParams(*HUGER).P_max == 2**98 and isinstance(RHMParams(*HUGER).P_max, int)


def test_decode_index_round_trip(rhm):
    idx = np.arange(rhm.P_max)
    sample = rhm.decode(idx)
    assert np.array_equal(rhm.index(sample), idx)
    assert sample.inputs.dtype == sample.labels.dtype == sample.choices.dtype == np.int64
    assert sample.inputs.shape == (rhm.P_max, rhm.d) and sample.choices.shape == (rhm.P_max, rhm.n_nodes)
    # label = i // (P_max / n_c); choices are the base-m digits of the remainder, most significant first
    per_class = rhm.P_max // rhm.n_c
    assert np.array_equal(sample.labels, idx // per_class)
    digits = (idx % per_class)[:, None] // rhm.m ** np.arange(rhm.n_nodes - 1, -1, -1) % rhm.m
    assert np.array_equal(sample.choices, digits)
    # the input is the last level of the tree and all inputs are distinct
    tree = rhm.tree(sample)
    assert [lv.shape[1] for lv in tree] == [rhm.s**l for l in range(rhm.L + 1)]
    assert np.array_equal(tree[-1], sample.inputs) and np.array_equal(tree[0][:, 0], sample.labels)
    assert np.unique(_keys(sample, rhm.v)).size == rhm.P_max
    assert np.array_equal(rhm.full().inputs, sample.inputs)


def test_tree_follows_rules(rhm):
    """Every node's children are the tuple its rule table gives for the node's choice."""
    sample = rhm.decode(np.arange(0, rhm.P_max, 7))
    tree = rhm.tree(sample)
    col = 0
    for depth in range(rhm.L):
        for node in range(rhm.s**depth):
            parent, choice = tree[depth][:, node], sample.choices[:, col]
            children = tree[depth + 1][:, node * rhm.s:(node + 1) * rhm.s]
            assert np.array_equal(children, rhm.rules[depth][parent, choice])
            col += 1


def test_decode_rejects_out_of_range(rhm):
    for bad in ([-1], [rhm.P_max]):
        with pytest.raises(RHMParameterError):
            rhm.decode(bad)


def test_onehot_layout(rhm):
    sample = rhm.decode([0, 5, 100])
    x = onehot(sample.inputs, rhm.v)
    assert x.shape == (3, rhm.v, rhm.d) and x.dtype == torch.float32
    assert torch.equal(x.sum(1), torch.ones(3, rhm.d))
    assert torch.equal(x.argmax(1), torch.as_tensor(sample.inputs))


def test_split_disjoint_and_seeded(rhm):
    train, test = rhm.split(P=300, P_test=200, seed=3)
    assert (train.size, test.size) == (300, 200)
    k_train, k_test = _keys(train, rhm.v), _keys(test, rhm.v)
    assert np.unique(k_train).size == 300 and np.unique(k_test).size == 200
    assert not np.intersect1d(k_train, k_test).size
    again = rhm.split(P=300, P_test=200, seed=3)
    assert np.array_equal(again[0].inputs, train.inputs) and np.array_equal(again[1].inputs, test.inputs)
    other = rhm.split(P=300, P_test=200, seed=4)
    assert not np.array_equal(other[1].inputs, test.inputs)
    # P + P_test = P_max: a permutation of the whole dataset
    full_train, full_test = rhm.split(P=rhm.P_max - 12, P_test=12, seed=0)
    both = np.concatenate([rhm.index(full_train), rhm.index(full_test)])
    assert np.array_equal(np.sort(both), np.arange(rhm.P_max))


def test_split_nested_train_sets_fixed_test(rhm):
    small, test_a = rhm.split(P=50, P_test=100, seed=7)
    large, test_b = rhm.split(P=400, P_test=100, seed=7)
    assert np.array_equal(test_a.inputs, test_b.inputs)
    assert np.array_equal(large.inputs[:50], small.inputs)


def test_split_labels_roughly_balanced():
    rhm = RHM(16, 4, 16, 2, 3, seed=0)
    train, _ = rhm.split(P=32_000, P_test=0, seed=0)
    counts = np.bincount(train.labels, minlength=16)
    p = 1 / 16
    assert np.all(np.abs(counts - 2000) < 5 * math.sqrt(32_000 * p * (1 - p)))


def test_stream_equals_split(rhm):
    train, _ = rhm.split(P=333, P_test=100, seed=5)
    batches = list(rhm.stream(P=333, batch_size=64, seed=5, P_test=100))
    assert [b.size for b in batches] == [64] * 5 + [13]
    for field in ("labels", "choices", "inputs"):
        assert np.array_equal(np.concatenate([getattr(b, field) for b in batches]), getattr(train, field))


@pytest.mark.parametrize("params", [HUGE, HUGER])
def test_huge_pmax_split_and_stream(params):
    rhm = RHM(*params, seed=0)
    assert rhm.P_max == params[2] * params[1] ** rhm.n_nodes
    train, test = rhm.split(P=5000, P_test=1000, seed=1)
    assert train.inputs.shape == (5000, rhm.d) and test.inputs.shape == (1000, rhm.d)
    assert train.inputs.min() >= 0 and train.inputs.max() < rhm.v
    assert np.unique(np.concatenate([train.inputs, test.inputs]), axis=0).shape[0] == 6000
    stream = np.concatenate([b.inputs for b in rhm.stream(P=5000, batch_size=1024, seed=1, P_test=1000)])
    assert np.array_equal(stream, train.inputs)
    # the inputs are the ones the rules generate from the labels and choices
    assert np.array_equal(rhm.make(train.labels, train.choices).inputs, train.inputs)
    assert np.all(train.choices < rhm.m) and np.all(train.labels < rhm.n_c)


def test_huge_pmax_stream_of_more_than_int32_positions_is_lazy():
    rhm = RHM(*HUGE, seed=0)
    it = rhm.stream(P=10**12, batch_size=100, seed=0)
    first = next(it)
    assert first.size == 100


def test_resample_semantics(rhm):
    sample = rhm.decode(np.arange(rhm.P_max))
    rng = np.random.default_rng(0)
    for level in range(rhm.L + 1):
        new = rhm.resample(sample, level, rng)
        kept = rhm.depth_slice(level).start if level < rhm.L else rhm.n_nodes
        assert np.array_equal(new.labels, sample.labels)
        assert np.array_equal(new.choices[:, :kept], sample.choices[:, :kept])
        tree_old, tree_new = rhm.tree(sample), rhm.tree(new)
        for above in range(level + 1):  # levels 0..level are unchanged
            assert np.array_equal(tree_old[above], tree_new[above])
        if level == rhm.L:
            assert np.array_equal(new.inputs, sample.inputs)


@pytest.mark.parametrize("level", [0, 1])
def test_resample_unchanged_probability(level):
    """P(input unchanged) = m^-((s^L - s^l)/(s - 1)): all redrawn choices equal the old ones."""
    rhm = RHM(8, 2, 8, 2, 2, seed=2)
    sample = rhm.decode(np.arange(rhm.P_max).repeat(40))
    new = rhm.resample(sample, level, np.random.default_rng(level))
    p = rhm.m ** (-(rhm.s**rhm.L - rhm.s**level) / (rhm.s - 1))
    n = sample.size
    frac = (new.inputs == sample.inputs).all(1).mean()
    assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n), (frac, p)
    # each redrawn choice is uniform over m values
    redrawn = new.choices[:, rhm.depth_slice(level).start:]
    counts = np.bincount(redrawn.ravel(), minlength=rhm.m)
    assert np.all(np.abs(counts / redrawn.size - 1 / rhm.m) < 5 * math.sqrt(0.25 / redrawn.size))


def test_resample_rejects_bad_level(rhm):
    sample = rhm.decode([0])
    for bad in (-1, rhm.L + 1):
        with pytest.raises(RHMParameterError):
            rhm.resample(sample, bad, np.random.default_rng(0))


@pytest.mark.parametrize(
    "params, words",
    [
        ((4, 5, 2, 2, 2), ["v**s"]),  # m * v = 20 > 16
        ((8, 4, 9, 2, 2), ["n_c", "v"]),  # n_c > v
        ((8, 4, 8, 1, 2), ["s"]),  # s < 2
        ((8, 4, 8, 2, 0), ["L"]),  # L < 1
        ((8, 0, 8, 2, 2), ["m"]),  # m < 1
        ((8, 2.5, 8, 2, 2), ["m", "integer"]),
        ((8, 4, 8, 2, "2"), ["L", "integer"]),
        ((8, 4, 8, True, 2), ["s", "integer"]),
    ],
)
def test_invalid_parameters(params, words):
    with pytest.raises(RHMParameterError) as err:
        RHM(*params)
    assert isinstance(err.value, SpikingRHMError)
    message = str(err.value)
    for word in words:
        assert word in message, message


def test_root_tuple_budget_error_says_valid_range():
    assert RHMParams(4, 4, 4, 2, 2).P_max == 4 * 4**3  # m * v = v**s: valid (saturated)
    # L = 1: only the root needs n_c * m <= v**s tuples
    assert RHMParams(4, 4, 4, 2, 1).P_max == 16
    with pytest.raises(RHMParameterError, match="valid"):
        RHMParams(4, 5, 4, 2, 1)


@pytest.mark.parametrize("P, P_test", [(-1, 0), (0, -5), (513, 0), (500, 13), (2.5, 0), ("10", 0)])
def test_invalid_sizes(rhm, P, P_test):
    with pytest.raises(RHMParameterError):
        rhm.split(P=P, P_test=P_test, seed=0)
    with pytest.raises(RHMParameterError):
        next(rhm.stream(P=P, batch_size=10, seed=0, P_test=P_test))


def test_invalid_batch_size(rhm):
    with pytest.raises(RHMParameterError):
        next(rhm.stream(P=10, batch_size=0, seed=0))


def test_resolve_size_spellings(rhm):
    from spiking_rhm.config import resolve_size

    assert resolve_size("max", rhm) == rhm.P_max
    assert resolve_size("2x", rhm) == 2 * rhm.n_c * rhm.m**rhm.L
    assert resolve_size(100, rhm) == 100
    for bad in ("lots", rhm.P_max + 1, 0, "-1x"):
        with pytest.raises(RHMParameterError):
            resolve_size(bad, rhm)


def test_rules_seeded_and_unambiguous():
    a, b, c = RHM(*SMALL, seed=0), RHM(*SMALL, seed=0), RHM(*SMALL, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a.rules, b.rules))
    assert not all(np.array_equal(x, y) for x, y in zip(a.rules, c.rules))
    for table in a.rules:
        rows = table.reshape(-1, a.s)
        rows = rows[(rows >= 0).all(1)]
        assert np.unique(rows, axis=0).shape[0] == rows.shape[0]
