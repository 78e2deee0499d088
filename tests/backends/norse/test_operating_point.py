"""The default operating point: a rate code, not a volley -- and a default network that learns.

Fast checks (always run): at initialisation, on RHM inputs, every hidden layer fires (not silent) and no step
carries a synchronous volley (at most MAX_VOLLEY of a layer's units fire in the same step); the old operating
point (rest at threshold, reset to 0) fails the same check, so the check can fail.  The default response curve
starts at a positive rheobase, grows with the drive and does not saturate.
"""

import pytest
import torch

pytest.importorskip("norse")

from norse_helpers import OLD_SPIKING  # noqa: E402
from spiking_rhm.backends.norse.network import activity  # noqa: E402
from spiking_rhm.backends.norse.response import response_curve, summary  # noqa: E402
from spiking_rhm.backends.norse.train import NorseSetup  # noqa: E402
from spiking_rhm.config import RunConfig, SpikingConfig  # noqa: E402

pytestmark = pytest.mark.norse

MAX_VOLLEY = 0.35  # fraction of a layer's units that may fire in one 1 ms step
OLD = {**OLD_SPIKING, "T": 20, "max_rate": 200.0}  # the back end's defaults before this operating point


def init_activity(spiking: dict, seed: int = 0) -> dict:
    cfg = RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 256, "P_test": 0,
                               "rule": "dfa", "backend": "norse", "net": {"width": 64}, "seed": seed,
                               "spiking": spiking})
    setup = NorseSetup(cfg)
    train, _ = setup.rhm.split(256, 0, seed=seed)
    return activity(setup.encode(train.inputs, torch.Generator().manual_seed(seed)), setup.weights, setup.spec,
                    setup.params)


@pytest.mark.parametrize("seed", [0, 1])
def test_default_network_is_neither_silent_nor_synchronous(seed):
    a = init_activity({}, seed)
    for layer, active, volley, rate in zip(a["layers"][1:], a["active"][1:], a["max_step_fraction"][1:],
                                           a["rate_hz"][1:]):
        assert active > 0.2, f"{layer}: only {active:.0%} of the units fire"
        assert volley <= MAX_VOLLEY, f"{layer}: {volley:.0%} of the units fire in one step"
        assert 5.0 < rate < 200.0, f"{layer}: mean rate {rate:.0f} Hz"
    assert a["synops"][0] == a["spikes"][0] * 64  # an input spike reaches the 64 units of its patch


def test_old_operating_point_fires_a_volley():
    """Rest at threshold and reset to 0: most of layer 2 fires in one step (the check above can fail)."""
    a = init_activity(OLD)
    assert max(a["max_step_fraction"][1:]) > MAX_VOLLEY


def test_default_response_curve_is_graded_and_not_saturated():
    sp = SpikingConfig()
    curve = response_curve(sp)
    s = summary(curve)
    assert 0 < s["rheobase"] < 0.3  # silent at and below a = 0, fires from a small positive pre-activation
    assert not s["saturated"] and s["max_count"] >= 5
    counts = curve.counts
    assert bool((counts[1:] >= counts[:-1]).all())  # monotone in the drive
    # rest at v_th / 2 with reset by subtraction: above the rheobase the count is a staircase along the line the
    # rules read it as, T rho_h a (measured: -1.07 to +0.74 spikes for a > 0.1)
    above = curve.a > 0.1
    assert ((counts - curve.ideal)[above].abs() <= 1.1).all()
    # the old operating point: one spike already at a = 0.02 (firing from rest at threshold), a compressed curve
    old = summary(response_curve(SpikingConfig(**OLD)))
    assert old["counts_at"]["0.02"] >= 1 and old["rheobase"] < 0.01


def default_config(rule: str, seed: int = 0) -> RunConfig:
    """The back end's defaults on (8,4,8,2,2), P = 384, width 64 (docs/results_spiking.md, "Choosing the defaults")."""
    return RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 384, "P_test": 128,
                                "rule": rule, "backend": "norse", "net": {"width": 64}, "seed": seed,
                                "optim": {"epochs": 30, "batch_size": 32, "min_steps": 400}})


@pytest.fixture(scope="module")
def default_control():
    """Spiking random-features with the defaults: measured test error 0.67 (seed 1: 0.76); chance 0.875."""
    from spiking_rhm.backends.norse.train import train_norse

    return train_norse(default_config("random-features"))


@pytest.mark.slow
@pytest.mark.parametrize("rule, below, margin", [("dfa", 0.45, 0.25), ("clapp", 0.6, 0.1)])
def test_default_spiking_rules_learn_beyond_the_control(default_control, rule, below, margin):
    """Measured (seed 0; 20-40 s per run on the shared 2-core machine): dfa 0.24, clapp 0.48 vs control 0.67
    (seed 1: 0.14, 0.44 vs 0.76).  The same network at the old defaults: dfa 0.66, clapp 0.78, control 0.84."""
    from spiking_rhm.backends.norse.train import train_norse

    m = train_norse(default_config(rule))
    assert not m["diverged"]
    assert m["test_error"] < below and m["test_error"] < default_control["test_error"] - margin
    assert m["energy"]["spikes_total"] > 0 and len(m["energy"]["synops"]) == 3


def test_response_cli_draws_the_curves_and_refuses_bad_settings(tmp_path):
    from click.testing import CliRunner

    from spiking_rhm.cli import cli

    out = tmp_path / "response.png"
    res = CliRunner().invoke(cli, ["response", "--out", str(out), "--compare", "v_rest=1.0,reset=zero,drive=4.0"])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1000 and res.output.count("rheobase") == 2 and "(this config)" in res.output
    for args in (["--option", "spiking.v_rest=2.0"], ["--compare", "colour=3"], ["--option", "optim.lr=3"]):
        bad = CliRunner().invoke(cli, ["response", "--out", str(out), *args])
        assert bad.exit_code == 2 and "Traceback" not in bad.output
