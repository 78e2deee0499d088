"""Metrics: synonymic sensitivity against the reference generator statistics, P*, clustering error."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from spiking_rhm.errors import SpikingRHMError
from spiking_rhm.metrics import bottom_tuples, clustering_error, pstar, pstar_point, synonymic_sensitivity
from spiking_rhm.rhm import RHM

REFERENCE = Path("/work/shared/reference/rhm/generator_invariants.json")


def identity_onehot(v):
    eye = np.eye(v)
    return lambda x: [eye[x]]  # raw flattened one-hot input, [N, d, v]


def parent_map(rhm):
    """Level L-1 symbols recovered from the input by inverting the bottom productions
    (independent of rhm.tree): one-hot [N, s**(L-1), v]."""
    tuples, parents = bottom_tuples(rhm)
    code = {tuple(t): p for t, p in zip(tuples.tolist(), parents.tolist())}
    eye = np.eye(rhm.v)

    def f(x):
        patches = x.reshape(x.shape[0], -1, rhm.s)
        symbols = np.array([[code[tuple(p)] for p in row] for row in patches.tolist()])
        return [eye[symbols]]

    return f


# -- synonymic sensitivity ----------------------------------------------------------
@pytest.mark.skipif(not REFERENCE.exists(), reason="reference statistics not available")
def test_raw_input_sensitivity_matches_reference():
    """Identity map on one-hot inputs, all points, over 10 rule seeds, vs the reference code's
    numbers for (8,4,8,2,2): agreement within 3 sqrt(std_ref^2/10 + std^2/10)."""
    ref = json.loads(REFERENCE.read_text())["v8_m4_nc8_s2_L2"]["seed_statistics"]["synonym_resampling_raw_input"]
    values = []
    for seed in range(10):
        rhm = RHM(8, 4, 8, 2, 2, seed=seed)
        result = synonymic_sensitivity(identity_onehot(8), rhm, rhm.full(), np.random.default_rng(100 + seed))
        assert result["levels"] == [1, 0] and result["n"] == 512
        values.append(result["layers"][0])
    values = np.array(values)
    for i, entry in enumerate(ref):
        assert entry["seed_reset_layer"] == [1, 0][i]
        stats = entry["raw_sensitivity"]
        tol = 3 * math.sqrt(stats["std"] ** 2 / stats["n_seeds"] + values[:, i].std(ddof=1) ** 2 / len(values))
        assert abs(values[:, i].mean() - stats["mean"]) < tol, (i, values[:, i].mean(), stats["mean"], tol)


def test_invariant_map_has_zero_sensitivity_below_its_level():
    """The true level-(L-1) symbols do not move under R_{L-1}; they do under R_0 and R_1 of L=3."""
    for params in [(8, 4, 8, 2, 2), (8, 2, 8, 2, 3)]:
        rhm = RHM(*params, seed=3)
        sample = rhm.split(400, 0, seed=1)[0]
        f = parent_map(rhm)
        tree = rhm.tree(sample)
        assert np.array_equal(f(sample.inputs)[0].argmax(-1), tree[-2])  # the map is the hidden level
        result = synonymic_sensitivity(f, rhm, sample, np.random.default_rng(0))
        S = result["layers"][0]
        assert result["levels"] == list(range(rhm.L - 1, -1, -1))
        assert S[0] == 0.0
        assert all(s > 0.3 for s in S[1:])


def test_denominator_and_batching_against_brute_force():
    rhm = RHM(8, 4, 8, 2, 2, seed=0)
    sample = rhm.split(300, 0, seed=2)[0]
    W = np.random.default_rng(0).normal(size=(8 * 4, 5))

    def layers(x):
        onehot = np.eye(8)[x].reshape(len(x), -1)
        h = np.maximum(onehot @ W, 0)
        return [onehot, h]

    a = synonymic_sensitivity(layers, rhm, sample, np.random.default_rng(7), batch_size=64)
    b = synonymic_sensitivity(layers, rhm, sample, np.random.default_rng(7), batch_size=10_000)
    np.testing.assert_allclose(a["layers"], b["layers"], rtol=1e-12)
    # brute force with the same resampled points
    gen = np.random.default_rng(7)
    moved = [rhm.resample(sample, level, gen).inputs for level in (1, 0)]
    for k in range(2):
        f = layers(sample.inputs)[k]
        denom = np.mean(((f[:, None, :] - f[None, :, :]) ** 2).sum(-1))
        for i in range(2):
            num = np.mean(((f - layers(moved[i])[k]) ** 2).sum(-1))
            assert a["layers"][k][i] == pytest.approx(num / denom, rel=1e-10)


def test_constant_layer_is_undefined_and_tiny_sample_rejected():
    rhm = RHM(8, 4, 8, 2, 2, seed=0)
    sample = rhm.split(50, 0, seed=0)[0]
    result = synonymic_sensitivity(lambda x: [np.ones((len(x), 3))], rhm, sample, np.random.default_rng(0))
    assert all(math.isnan(s) for s in result["layers"][0])
    with pytest.raises(SpikingRHMError):
        synonymic_sensitivity(identity_onehot(8), rhm, sample.take(slice(0, 1)), np.random.default_rng(0))


# -- P* -------------------------------------------------------------------------------
def test_pstar_interpolates_linearly_in_log_p():
    P = [100, 200, 400, 800]
    value, status = pstar_point(P, [0.5, 0.3, 0.05, 0.01], eps=0.1)
    # between 200 (0.3) and 400 (0.05): fraction (0.3 - 0.1) / 0.25 = 0.8 of the way in log P
    assert status == "reached" and value == pytest.approx(200 * 2**0.8, rel=1e-12)
    # a curve linear in log P is recovered exactly: e = 1.2 - 0.2 ln P  ->  P* = exp((1.2 - eps) / 0.2)
    P = np.geomspace(10, 1e4, 7)
    for eps in (0.1, 0.25, 0.4):
        value, _ = pstar_point(P, 1.2 - 0.2 * np.log(P), eps)
        assert value == pytest.approx(math.exp((1.2 - eps) / 0.2), rel=1e-10)
    # the first crossing counts, even if the curve goes up again
    assert pstar_point([1, 2, 4, 8], [0.5, 0.1, 0.3, 0.0], eps=0.1) == (2.0, "reached")
    # an exact hit at a grid point
    assert pstar_point([10, 20, 40], [0.5, 0.2, 0.1], eps=0.1)[0] == pytest.approx(40)


def test_pstar_flags_out_of_range():
    assert pstar_point([10, 20], [0.05, 0.01], 0.1) == (10.0, "below_range")
    value, status = pstar_point([10, 20], [0.5, 0.4], 0.1)
    assert math.isinf(value) and status == "not_reached"
    result = pstar([10, 20], [[0.5, 0.4], [0.6, 0.5]], eps=0.1)
    assert not result.reached and math.isinf(result.value) and math.isinf(result.high)
    assert pstar([10, 20], [[0.05, 0.0]], eps=0.1).status == "below_range"


def test_pstar_uses_seed_mean_and_skips_missing():
    P = [100, 200, 400]
    errors = [[0.4, 0.2, 0.0], [0.4, 0.0, 0.0], [np.nan, np.nan, np.nan]]
    result = pstar(P, errors, eps=0.1, n_boot=200)
    assert result.n_seeds == 2  # the all-missing seed is dropped
    assert result.value == pytest.approx(pstar_point(P, [0.4, 0.1, 0.0], 0.1)[0])
    # a missing point is skipped: interpolation across it
    value, _ = pstar_point([100, 200, 400], [0.5, np.nan, 0.0], eps=0.25)
    assert value == pytest.approx(200)


def test_bootstrap_interval_sanity():
    P = np.geomspace(100, 10_000, 9)
    same = np.tile(1.0 - 0.2 * np.log(P / 50), (5, 1)).clip(0, 1)
    result = pstar(P, same, eps=0.1, n_boot=300)
    assert result.low == result.value == result.high  # identical seeds: no spread
    rng = np.random.default_rng(0)

    def seeds(spread, n=6):
        shifts = rng.normal(0, spread, size=(n, 1))  # each seed's curve shifted in log P
        return (1.0 - 0.2 * (np.log(P / 50) - shifts)).clip(0, 1)

    narrow = pstar(P, seeds(0.1), eps=0.1, n_boot=500)
    wide = pstar(P, seeds(1.0), eps=0.1, n_boot=500)
    for r in (narrow, wide):
        assert r.low <= r.value <= r.high
    assert np.log(wide.high / wide.low) > 3 * np.log(narrow.high / narrow.low)
    # coverage: the 90% interval holds the population P* (shift mean 0) in most repetitions
    truth = 50 * math.exp((1.0 - 0.1) / 0.2)
    covered = 0
    for k in range(100):
        r = pstar(P, seeds(0.5, n=8), eps=0.1, n_boot=200, seed=k)
        covered += r.low <= truth <= r.high
    assert 0.7 <= covered / 100 <= 0.99


def test_pstar_rejects_bad_input():
    with pytest.raises(SpikingRHMError):
        pstar([10, 5], [[0.1, 0.2]])
    with pytest.raises(SpikingRHMError):
        pstar([10, 20], [[0.1, 0.2, 0.3]])


# -- clustering error -----------------------------------------------------------------
def test_clustering_error_perfect_and_random_first_layers():
    rhm = RHM(8, 4, 8, 2, 2, seed=0)
    tuples, parents = bottom_tuples(rhm)
    assert len(tuples) == rhm.m * len(np.unique(parents))
    code = {tuple(t): p for t, p in zip(tuples.tolist(), parents.tolist())}
    eye = np.eye(rhm.v)

    def perfect(x):  # first layer = one-hot of the parent at position 0: [N, v, positions]
        return eye[[code.get(tuple(row[:2]), 0) for row in x.tolist()]][:, :, None]

    assert clustering_error(perfect, rhm) == 0.0
    emb = np.random.default_rng(1).normal(size=(rhm.v, rhm.v, 16))

    def random_layer(x):  # a fixed random embedding of the first patch: no synonym structure
        return emb[x[:, 0], x[:, 1]]

    assert clustering_error(random_layer, rhm) > 0.3


def test_linear_probe_fits_separable_features_and_generalises():
    from spiking_rhm.metrics import linear_probe

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 10)) * 3
    y = rng.integers(0, 4, 400)
    X = centres[y] + rng.normal(size=(400, 10)) * 0.5 + 50.0  # large common offset: badly conditioned raw
    res = linear_probe(X[:300], y[:300], X[300:], y[300:], n_classes=4)
    assert res["train_error"] == 0.0 and res["test_error"] <= 0.02
    noise = linear_probe(rng.normal(size=(300, 10)), y[:300], rng.normal(size=(100, 10)), y[300:], n_classes=4)
    assert noise["test_error"] > 0.5  # no signal, no generalisation


def test_linear_probe_records_the_fitted_train_loss():
    """The recorded train loss is the cross-entropy of the returned map on the training features (not the loss
    at the start of L-BFGS, ln n_classes)."""
    from spiking_rhm.metrics import fit_linear_probe

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 6)) * 2
    y = rng.integers(0, 3, 200)
    X = centres[y] + rng.normal(size=(200, 6))
    fit = fit_linear_probe(X, y, X[:10], y[:10], n_classes=3)
    logits = X @ fit.weight + fit.bias
    logits = logits - logits.max(1, keepdims=True)
    ce = float(np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(200), y]))
    assert fit.metrics["train_loss"] == pytest.approx(ce, rel=1e-6) and ce < 0.5 * np.log(3)


def test_delta_readout_one_step_is_the_delta_rule_on_centred_features():
    """One full-batch step from W = 0: W = -lr x^T (softmax(0) - y*) / N with x = (f - mu) / (g sqrt(D))."""
    from spiking_rhm.metrics import fit_delta_readout

    rng = np.random.default_rng(0)
    f = rng.random((12, 5)) * 3
    y = rng.integers(0, 3, 12)
    fit = fit_delta_readout(f, y, f[:4], y[:4], 3, epochs=1, min_steps=1, lr=0.7, batch_size=12)
    mu = f.mean(0)
    gain = np.sqrt(((f - mu) ** 2).mean()) * np.sqrt(5)
    x = (f - mu) / gain
    W = -0.7 * x.T @ (np.full((12, 3), 1 / 3) - np.eye(3)[y]) / 12
    b = -0.7 * (np.full((12, 3), 1 / 3) - np.eye(3)[y]).mean(0)
    np.testing.assert_allclose(fit.weight, W / gain, rtol=1e-10)
    np.testing.assert_allclose(fit.bias, b - (mu / gain) @ W, rtol=1e-10, atol=1e-12)


def test_delta_readout_learns_a_separable_task_and_its_map_gives_its_scores():
    from spiking_rhm.metrics import fit_delta_readout, probe_scores

    rng = np.random.default_rng(1)
    f = np.maximum(rng.normal(size=(600, 20)) + 0.5, 0)
    y = f[:, :4].argmax(1)
    fit = fit_delta_readout(f[:400], y[:400], f[400:], y[400:], 4, min_steps=500)
    assert fit.metrics["train_error"] < 0.1 and fit.metrics["test_error"] < 0.15
    again = probe_scores(fit, f[400:], y[400:])
    assert again["error"] == pytest.approx(fit.metrics["test_error"])
    assert again["loss"] == pytest.approx(fit.metrics["test_loss"])


def test_pstar_ratio_of_a_curve_shifted_in_P_is_exact_in_every_resample():
    """Curve a = curve b at twice the P, pair by pair: the paired ratio is 2 in every resample."""
    from spiking_rhm.metrics import pstar_ratio

    P = np.array([100.0, 200.0, 400.0, 800.0])
    err = np.array([[0.6, 0.3, 0.05, 0.0], [0.7, 0.5, 0.2, 0.01], [0.5, 0.15, 0.02, 0.0]])
    result = pstar_ratio(2 * P, err, P, err, eps=0.1, n_boot=100)
    assert result.n_pairs == 3 and result.a_status == result.b_status == "reached"
    assert result.value == pytest.approx(2.0) and result.low == pytest.approx(2.0) and result.high == pytest.approx(2.0)
    unpaired = pstar(P, err, eps=0.1, n_boot=100)
    assert unpaired.low < unpaired.high  # the rows differ, so an unpaired ratio would spread


def test_pstar_ratio_with_a_curve_that_never_reaches_eps_is_inf_or_zero_never_nan():
    from spiking_rhm.metrics import pstar_ratio

    P = [100, 200, 400]
    learns, never = np.array([[0.5, 0.2, 0.05], [0.4, 0.1, 0.0]]), np.full((2, 3), 0.8)
    a_never = pstar_ratio(P, never, P, learns, n_boot=50)
    b_never = pstar_ratio(P, learns, P, never, n_boot=50)
    both = pstar_ratio(P, never, P, never, n_boot=50)
    assert (a_never.value, a_never.low, a_never.high) == (math.inf, math.inf, math.inf)
    assert (b_never.value, b_never.low, b_never.high) == (0.0, 0.0, 0.0)
    assert (both.value, both.low, both.high) == (math.inf, math.inf, math.inf)
    missing = np.array([[0.5, 0.2, 0.05], [np.nan, np.nan, np.nan]])  # the second pair has no run of a: dropped
    assert pstar_ratio(P, missing, P, learns, n_boot=10).n_pairs == 1
    with pytest.raises(SpikingRHMError, match="same rows"):
        pstar_ratio(P, learns, P, learns[:1])
