"""Dithered start potential (``spiking.v_init = uniform``): draws, reproducibility, and the mean count over
starts against the closed form (integrate-and-fire limit) and a scalar hand loop (the leaky default)."""

import math

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm.backends.norse.network import (  # noqa: E402
    build_parameters,
    build_spec,
    float64_parameters,
    initial_state,
)
from spiking_rhm.backends.norse.neurons import (  # noqa: E402
    dithered_counts,
    mean_response_counts,
    response_counts,
    subtractive_counts,
)
from spiking_rhm.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.norse

SPEC = build_spec("cnn", 8, 4, 2, 2, 6, 3)
DRAWS = 4000


def uniform_params(**kw):
    return float64_parameters(build_parameters(build_spec("fcn", 1, 1, 2, 1, 6, 2), 1.0, v_init="uniform", **kw))


def test_start_potentials_are_uniform_draws_in_reset_to_threshold_and_reproducible():
    params = build_parameters(SPEC, 0.2, v_init="uniform")
    assert (params.v_init, params.v_spread) == (0.0, 1.0)  # [v_reset, v_th)
    a = initial_state(SPEC, params, 500, torch.float64, generator=torch.Generator().manual_seed(3))
    b = initial_state(SPEC, params, 500, torch.float64, generator=torch.Generator().manual_seed(3))
    c = initial_state(SPEC, params, 500, torch.float64, generator=torch.Generator().manual_seed(4))
    for sa, sb, sc in zip(a.lif, b.lif, c.lif):
        assert torch.equal(sa.v, sb.v) and not torch.equal(sa.v, sc.v)
        assert float(sa.v.min()) >= 0.0 and float(sa.v.max()) < 1.0 and torch.all(sa.i == 0)
        n = sa.v.numel()
        assert abs(float(sa.v.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / n)  # U[0, 1): mean 1/2, variance 1/12
        assert abs(float(sa.v.var()) - 1 / 12) < 0.01
    assert not torch.equal(a.lif[0].v[:, :1, :3], a.lif[1].v[:, :1, :3])  # one draw per neuron, not per layer
    with pytest.raises(ConfigError, match="generator"):
        initial_state(SPEC, params, 2)
    fixed = build_parameters(SPEC, 0.2, v_init="half")  # a fixed start needs no generator and draws nothing
    gen = torch.Generator().manual_seed(3)
    assert fixed.v_spread == 0.0 and torch.all(initial_state(SPEC, fixed, 2, generator=gen).lif[0].v == 0.5)
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(3).get_state())


DRIVES = torch.linspace(0.013, 6.0, 37, dtype=torch.float64)  # irregular: no drive on a step edge


def test_mean_count_from_dithered_starts_is_the_nominal_line_in_the_if_limit():
    """No leak (tau_mem = 1000 s): count = floor((v_0 + T alpha D) / v_th); with v_0 ~ U[0, 1) its mean is
    T alpha D exactly (stochastic rounding), where a fixed start gives the staircase."""
    alpha, T = 1e-6, 40
    params = uniform_params(tau_mem=1e3, v_leak=0.0)
    drives = DRIVES / (alpha * 8)  # up to 0.75 v_th per step
    closed = torch.tensor([dithered_counts(float(D), T, 0.0, 1.0, 0.0, 1e3, 1e-3) for D in drives],
                          dtype=torch.float64)
    assert torch.allclose(closed, T * alpha * drives)  # the nominal line T alpha v_inf / (v_th - v_reset)
    many = drives.repeat(DRAWS, 1)
    counts = response_counts(many, T, params.lif, 1e-3, "subtract", params.v_init, params.v_spread,
                             torch.Generator().manual_seed(0))
    mean, sd = counts.mean(0), counts.std(0)
    assert float((counts.amax(0) - counts.amin(0)).max()) == 1.0  # one of two neighbouring counts
    assert float(((mean - closed).abs() / (sd / math.sqrt(DRAWS) + 1e-12)).max()) < 4.5
    # each draw is the staircase of its own start (the existing closed form), not the mean
    starts = initial_state(build_spec("fcn", 1, 1, 2, 1, 6, 2), params, 1, torch.float64,
                           generator=torch.Generator().manual_seed(0)).lif[0].v.flatten()[:3]
    for v0 in starts.tolist():
        one = response_counts(drives, T, params.lif, 1e-3, "subtract", v0)
        ref = torch.tensor([subtractive_counts(float(D), T, 0.0, 1.0, 0.0, 1e3, 1e-3, v0) for D in drives],
                           dtype=torch.float64)
        arg = v0 + T * alpha * drives
        clear = (arg - arg.round()).abs() > 1e-3
        assert torch.equal(one[clear], ref[clear])
    # the quadrature over starts: within 1/points of the closed form per step of the staircase
    quad = mean_response_counts(drives, T, params.lif, 1e-3, "subtract", params.v_init, params.v_spread, 256)
    assert float((quad - closed).abs().max()) <= 1 / 256 + 1e-6
    rest = response_counts(drives, T, params.lif, 1e-3, "subtract", 0.5)  # start at v_th / 2: rounds
    assert float((rest - closed).abs().max()) > 0.4


def _hand_mean(D: float, T: int, points: int, v_leak: float = 0.5, alpha: float = 0.1) -> float:
    """Mean count over ``points`` evenly spaced starts in [0, 1) of ``v <- v + alpha (v_leak - v + D)``, spike if
    above 1, ``v <- v - 1`` (plain floats)."""
    total = 0
    for j in range(points):
        v = (j + 0.5) / points
        for _ in range(T):
            v = v + alpha * (v_leak - v + D)
            if v > 1.0:
                total += 1
                v -= 1.0
    return total / points


def test_mean_count_at_the_leaky_default_matches_a_hand_loop_and_the_draws():
    """The default operating point (rest v_th / 2, subtract, tau_mem = 10 ms, T = 30): the draws of the
    simulation average to the hand loop's mean over starts; below the rheobase (v_inf <= v_th) no start fires."""
    T = 30
    params = uniform_params()  # defaults: v_leak 0.5, g 6, reset subtract
    a = torch.tensor([0.05, 0.083, 0.09, 0.11, 0.15, 0.23, 0.37, 0.61], dtype=torch.float64)
    D = params.drive * a
    hand = torch.tensor([_hand_mean(float(d), T, 400) for d in D], dtype=torch.float64)
    counts = response_counts(D.repeat(DRAWS, 1), T, params.lif, 1e-3, "subtract", params.v_init, params.v_spread,
                             torch.Generator().manual_seed(1))
    se = counts.std(0) / math.sqrt(DRAWS)
    assert float(((counts.mean(0) - hand).abs() - 1 / 400).clamp(min=0).div(se + 1e-12).max()) < 4.5
    assert torch.all(hand[D <= 0.5] == 0) and torch.all(counts[:, D <= 0.5] == 0)  # rheobase: v_inf <= v_th
    quad = mean_response_counts(D, T, params.lif, 1e-3, "subtract", params.v_init, params.v_spread, 400)
    assert torch.allclose(quad, hand, atol=1e-9)


def test_dithered_response_is_closer_to_the_nominal_line_than_the_staircase_but_mode_locks():
    """At the default operating point the mean count over starts follows ``T rho_h a`` more closely than the count
    from rest and rises in steps well below one spike; the leak still locks the firing onto cycles (here one spike
    every third step for 0.535 < a < 0.575): on such a plateau every start gives the same count and dithering cannot
    resolve ``a``."""
    T = 30
    params = uniform_params()
    rest = float64_parameters(build_parameters(build_spec("fcn", 1, 1, 2, 1, 6, 2), 1.0))
    a = torch.linspace(0.1, 0.6, 126, dtype=torch.float64)
    dither = mean_response_counts(params.drive * a, T, params.lif, 1e-3, "subtract", params.v_init, params.v_spread)
    fixed = response_counts(rest.drive * a, T, rest.lif, 1e-3, "subtract", rest.v_init)
    nominal = T * rest.rho_hidden * a
    assert float(fixed.diff().max()) == 1.0 and int((fixed.diff() > 0).sum()) >= 5
    assert float(dither.diff().min()) >= -1e-9 and float(dither.diff().max()) < 0.5
    assert float((dither - nominal).abs().mean()) < 0.7 * float((fixed - nominal).abs().mean())
    locked = (a > 0.535) & (a < 0.575)  # one spike every third step from any start
    assert torch.all(dither[locked] == 10.0) and locked.sum() >= 9


def test_training_with_a_dithered_start_is_reproducible_and_differs_from_rest():
    from spiking_rhm.backends.norse.train import NorseSetup, evaluate
    from spiking_rhm.config import RunConfig

    def run(v_init, seed=0):
        cfg = RunConfig.from_dict({"backend": "norse", "rule": "sibling-cca", "seed": seed, "P": 16, "P_test": 16,
                                   "rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "net": {"width": 16},
                                   "spiking": {"T": 12, "v_init": v_init}})
        setup = NorseSetup(cfg, dtype=torch.float64)
        train, test = setup.rhm.split(16, 16, seed=seed)
        res = setup.learner.step(setup.weights, setup.present(train), 0.1)
        err, _, feats = evaluate(setup, test, torch.Generator().manual_seed(5))
        return [g.clone() for g in res.grads], res.logits, feats

    g1, y1, f1 = run("uniform")
    g2, y2, f2 = run("uniform")
    assert all(torch.equal(a, b) for a, b in zip(g1, g2)) and torch.equal(y1, y2) and torch.equal(f1, f2)
    g3, y3, f3 = run("rest")
    assert not torch.equal(y1, y3) and not torch.equal(f1, f3)
    assert any(not torch.allclose(a, b) for a, b in zip(g1, g3))
    _, y4, _ = run("uniform", seed=1)
    assert not torch.equal(y1, y4)


def test_dithered_start_in_the_record_and_refused_where_it_cannot_be_simulated():
    from spiking_rhm.backends.norse.network import describe
    from spiking_rhm.config import RunConfig

    params = build_parameters(SPEC, 0.2, v_init="uniform")
    d = describe(SPEC, params)
    assert (d["v_init"], d["v_init_spread"]) == (0.0, 1.0)
    assert "v_init_spread" not in describe(SPEC, build_parameters(SPEC, 0.2))  # fixed starts: the record as before
    assert RunConfig.from_dict({"backend": "norse", "spiking": {"v_init": "uniform"}}).spiking.v_init == "uniform"
    with pytest.raises(ConfigError, match="norse back end"):
        RunConfig.from_dict({"backend": "brian2", "spiking": {"v_init": "uniform"}})
    for bad in ("dither", "Uniform", 0.5):
        with pytest.raises(ConfigError, match="spiking.v_init"):
            RunConfig.from_dict({"backend": "norse", "spiking": {"v_init": bad}})
    with pytest.raises(ConfigError, match="v_init"):
        build_parameters(SPEC, 0.2, v_init="gaussian")


def test_response_cli_draws_the_mean_count_over_dithered_starts(tmp_path):
    from click.testing import CliRunner

    from spiking_rhm.backends.norse.response import response_curve, summary
    from spiking_rhm.cli import cli
    from spiking_rhm.config import SpikingConfig

    out = tmp_path / "dither.png"
    res = CliRunner().invoke(cli, ["response", "--out", str(out), "--option", "spiking.v_init=uniform",
                                   "--compare", "v_init=rest", "--a-max", "0.4"])
    assert res.exit_code == 0, res.output
    first, second = res.output.splitlines()[:2]
    assert "v_init uniform" in first and "0.5:" not in first  # a = 0.5 lies beyond --a-max: not reported
    assert "0.1: 1.10938" in first and "0.1: 1," in second  # the mean over starts vs the count from rest
    grid = torch.tensor([0.1, 0.2], dtype=torch.float64)
    curve = summary(response_curve(SpikingConfig(v_init="uniform"), grid))
    assert curve["counts_at"]["0.1"] == pytest.approx(_hand_mean(0.6, 30, 256), abs=1e-9)
    bad = CliRunner().invoke(cli, ["response", "--out", str(out), "--a-max", "-1"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_the_brian2_network_refuses_a_dithered_start():
    pytest.importorskip("brian2")
    from spiking_rhm.backends.brian2.network import Brian2Network

    with pytest.raises(ConfigError, match="norse back end"):
        Brian2Network(SPEC, build_parameters(SPEC, 0.2, v_init="uniform"), 2, 5)
