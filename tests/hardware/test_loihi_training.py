"""Online training on Lava's learning engine (hardware/loihi/training.py) vs the Norse learner.

Independent check: many presentations with the weights the chip leaves carried to the next one
give the weights, readout and learning curve of the Norse float learner on the same presentations.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("nir")

from hardware_helpers import make_config  # noqa: E402

from hardware.loihi.training import train_online  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402


@pytest.mark.lava
@pytest.mark.parametrize("arch,rule,scale", [("lcn", "dfa", "none"), ("fcn", "drtp", "expected")])
def test_online_training_on_lava_carries_the_norse_learners_weights(arch, rule, scale):
    cfg = make_config(arch, width=5, T=12).replace(P=8, P_test=8, rule=rule)
    lava = train_online(cfg, engine="lava", batch=4, epochs=2, scale=scale)
    norse = train_online(cfg, engine="norse", batch=4, epochs=2, scale=scale)
    start = train_online(cfg, engine="norse", epochs=0)["weights"]
    assert lava["curve"][-1]["presentations"] == 16
    for w_lava, w_norse, w0 in zip(lava["weights"], norse["weights"], start):
        assert np.abs(w_norse - w0).max() > 1e-3 * np.abs(w0).max()  # the weights did move
        assert np.abs(w_lava - w_norse).max() <= 1e-9 * np.abs(w_norse).max()
    np.testing.assert_allclose(lava["readout"], norse["readout"], rtol=1e-9, atol=1e-12)
    assert [c["test_error"] for c in lava["curve"]] == [c["test_error"] for c in norse["curve"]]


@pytest.mark.parametrize("arch,rule,scale", [("lcn", "dfa", "none"), ("fcn", "drtp", "expected")])
def test_online_training_in_loihi_integers_follows_the_float_learner(arch, rule, scale):
    cfg = make_config(arch, width=5, T=12).replace(P=8, P_test=8, rule=rule)
    kw = dict(batch=4, epochs=2, scale=scale, lr=30.0, readout_lr=30.0)
    fixed = train_online(cfg, engine="loihi-fixed", **kw)
    norse = train_online(cfg, engine="norse", **kw)
    start = train_online(cfg, engine="norse", epochs=0)["weights"]
    assert fixed["curve"][-1]["presentations"] == 16 and len(fixed["curve"]) == 3
    summary = fixed["fixed"]
    assert summary["mean"]["y2_clipped"] < 0.05 and max(summary["weights_at_bounds"]) < 0.05
    for w_fixed, w_norse, w0 in zip(fixed["weights"], norse["weights"], start):
        d_fixed, d_norse = (w_fixed - w0).ravel(), (w_norse - w0).ravel()
        cos = d_fixed @ d_norse / np.linalg.norm(d_fixed) / np.linalg.norm(d_norse)
        assert cos > 0.7, cos  # 4 presentations of 8-bit stochastic rounding (measured 0.84-0.98)
        assert 0.6 < np.linalg.norm(d_fixed) / np.linalg.norm(d_norse) < 1.6


@pytest.mark.lava
def test_online_training_on_lavas_bit_approximate_engine_equals_the_numpy_model():
    cfg = make_config("lcn", width=5, T=12).replace(P=8, P_test=8)
    kw = dict(batch=4, epochs=1, lr=30.0, readout_lr=30.0, restart=True)
    lava = train_online(cfg, engine="loihi-fixed", fixed_engine="lava", **kw)
    ours = train_online(cfg, engine="loihi-fixed", **kw)
    start = train_online(cfg, engine="loihi-fixed", epochs=0)["weights"]
    assert lava["curve"][-1]["presentations"] == 8
    for w_lava, w_ours, w0 in zip(lava["weights"], ours["weights"], start):
        assert np.abs(w_ours - w0).max() > 0
        np.testing.assert_array_equal(w_lava, w_ours)  # the same integers, dequantised the same way
    np.testing.assert_array_equal(lava["readout"], ours["readout"])
    assert lava["curve"] == ours["curve"]
    with pytest.raises(ConfigError, match="needs restart"):
        train_online(cfg, engine="loihi-fixed", fixed_engine="lava")


def test_what_the_chip_cannot_train_is_refused_before_lava_starts():
    with pytest.raises(ConfigError, match="no weight sharing"):
        train_online(make_config("cnn"), engine="lava")
    with pytest.raises(ConfigError, match="unknown engine"):
        train_online(make_config("lcn"), engine="loihi-9")
    with pytest.raises(ConfigError, match="batch must be"):
        train_online(make_config("lcn"), batch=0)
    with pytest.raises(ConfigError, match="weight_bits"):
        cfg = make_config("lcn")
        train_online(cfg.replace(spiking=dataclasses.replace(cfg.spiking, weight_bits=8)), engine="norse")
    with pytest.raises(ConfigError, match="positive views"):
        train_online(make_config("lcn").replace(rule="clapp", rule_options={"pairs": "resample"}), engine="lava",
                     epochs=1)
