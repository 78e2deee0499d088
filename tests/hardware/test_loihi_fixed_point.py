"""Loihi fixed-point quantisation and the integer reference model (no Lava needed).

The integer model is checked against the float LIF it stands for (closed forms and a float
simulation of the same equations); Lava's bit-accurate processes are compared with it in
test_loihi_network.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from hardware.loihi.fixed_point import (
    ACT_MAX,
    MAX_UV,
    VTH_MAX,
    FloatLIF,
    quantise,
    rest_potential,
    simulate_fixed,
    threshold_error,
)
from spiking_rhm.errors import ConfigError


def _layer(n_out=6, n_in=10, seed=0, v_leak=1.0, vth=1.0, scale=0.05):
    rng = np.random.default_rng(seed)
    dv = 0.1
    return FloatLIF(weight=rng.normal(size=(n_out, n_in)) * scale, du=0.2, dv=dv, bias=np.full(n_out, dv * v_leak),
                    vth=vth, v_init=np.full(n_out, v_leak))


def _simulate_float(layer: FloatLIF, spikes: np.ndarray) -> np.ndarray:
    """The float equations the integers approximate, with the same one-step synaptic delay."""
    steps, N = spikes.shape[:2]
    n = layer.weight.shape[0]
    u, v, a = np.zeros((N, n)), np.tile(layer.v_init, (N, 1)), np.zeros((N, n))
    out = np.zeros((steps, N, n), dtype=np.int8)
    for t in range(steps):
        u = (1 - layer.du) * u + a
        a = spikes[t] @ layer.weight.T
        v = (1 - layer.dv) * v + u + layer.bias
        z = v > layer.vth
        v[z] = 0
        out[t] = z
    return out


def test_quantised_layer_fits_the_widths_and_rounds_to_half_a_step():
    layer = _layer()
    q = quantise(layer)
    assert q.vth <= VTH_MAX and q.vth == round(layer.vth * q.scale / 64)
    assert threshold_error(layer, q) <= 0.5 / q.vth
    assert np.all(q.weight % 2 == 0) and q.weight.min() >= -256 and q.weight.max() <= 254
    assert np.abs(q.weight).max() == 254  # the largest weight fills the 8-bit range
    step = 2 * 2.0**q.weight_exp * 64 / q.scale
    assert np.abs(q.dequantised_weight() - layer.weight).max() <= step / 2 + 1e-15
    assert (np.abs(q.weight).sum(1) * 2.0**q.weight_exp).max() <= ACT_MAX
    assert q.du == round(0.2 * 4096) - 1 and q.dv == round(0.1 * 4096)  # Loihi adds 1 to du


def test_rest_potential_never_exceeds_threshold_when_the_float_one_does_not():
    """v_leak = v_th: the float neuron rests exactly at threshold and never fires without input."""
    for seed in range(5):
        q = quantise(_layer(seed=seed))
        assert np.all(q.v_init <= q.vth << 6)
        bias = int(q.bias_mant[0]) << int(q.bias_exp[0])
        assert rest_potential(bias, q.dv, int(q.v_init[0])) == q.v_init[0]  # a fixed point of the map
        assert abs(q.v_init[0] - q.scale) / q.scale < 2e-3  # within 0.2 % of the float rest (1.0)
        assert q.v_init[0] <= q.vth << 6 and (q.vth << 6) - q.v_init[0] < 2e-3 * q.scale
        silent = simulate_fixed([q], np.zeros((50, 2, 10), dtype=np.int8))
        assert silent[0].sum() == 0


def test_integer_model_matches_the_float_equations():
    """On the dequantised weights and decays the integers are the float equations (up to the
    truncating decays); on the original weights the 8-bit rounding shifts spike times, not rates."""
    layer = _layer(n_out=40, n_in=20, scale=0.08)
    rng = np.random.default_rng(3)
    spikes = (rng.random((200, 4, 20)) < 0.3).astype(np.int8)
    q = quantise(layer)
    fixed = simulate_fixed([q], spikes)[0]
    same_numbers = layer._replace(weight=q.dequantised_weight(), du=(q.du + 1) / 4096, dv=q.dv / 4096)
    assert (fixed == _simulate_float(same_numbers, spikes)).mean() > 0.995
    ref = _simulate_float(layer, spikes)
    assert ref.sum() > 500  # the layer is active
    assert (fixed == ref).mean() > 0.9
    assert np.corrcoef(fixed.sum(0).ravel(), ref.sum(0).ravel())[0, 1] > 0.99
    assert np.abs(fixed.sum(0) - ref.sum(0)).mean() < 1.0  # of ~35 spikes per neuron


def test_a_constant_drive_fires_at_the_closed_form_rate():
    """One input spiking every step through weight w: u -> w/du, v -> (u + b)/dv; ISI from the closed form."""
    w, du, dv = 0.05, 0.2, 0.1
    layer = FloatLIF(np.array([[w]]), du, dv, np.array([0.0]), 1.0, np.array([0.0]))
    q = quantise(layer)
    z = simulate_fixed([q], np.ones((400, 1, 1), dtype=np.int8))[0][:, 0, 0]
    u_inf = w / du
    isi = np.log(1 - dv * 1.0 / u_inf) / np.log(1 - dv)  # steps from v = 0 to v = vth at steady u
    spike_times = np.flatnonzero(z[100:])
    assert len(spike_times) > 10
    assert abs(np.diff(spike_times).mean() - isi) < 1.0


def test_quantise_errors():
    with pytest.raises(ConfigError, match="decays"):
        quantise(_layer()._replace(du=1.5))
    with pytest.raises(ConfigError, match="positive"):
        quantise(_layer()._replace(vth=-1.0))
    huge = _layer(scale=1e6)
    with pytest.raises(ConfigError, match="too large"):
        quantise(huge)


def test_potentials_stay_inside_24_bits():
    q = quantise(_layer(n_out=8, n_in=64, scale=0.2))
    assert q.scale * 1.0 * 4 < MAX_UV


@pytest.mark.parametrize("n_in, scale, vth", [(10, 0.05, 1.0), (64, 0.2, 1.0), (40, 0.01, 30.0), (10, 3.0, 1.0)])
def test_export_rounds_weights_as_fixed_point_aware_training_does(n_in, scale, vth):
    """quantise's 8-bit mantissas are 2 x the training quantiser's levels (spiking.weight_bits = 8), whatever the
    exponent and scale the layer gets; weights already quantised in training (times a per-layer gain, as the
    NIR -> Lava map multiplies them) come out as the same integers and lose nothing."""
    import torch

    from spiking_rhm.quantisation import quantise_weight, weight_levels

    layer = _layer(n_out=8, n_in=n_in, seed=n_in, vth=vth, v_leak=vth, scale=scale)
    W = torch.from_numpy(layer.weight)
    q = quantise(layer)
    np.testing.assert_array_equal(q.weight, 2 * weight_levels(W, 8).numpy().astype(np.int32))
    trained = quantise_weight(W.float(), 8).double().numpy()  # float32 master weights, as the Norse back end
    for gain in (1.0, 0.37, 12.5):
        fixed = quantise(layer._replace(weight=gain * trained))
        np.testing.assert_array_equal(fixed.weight, q.weight)
        np.testing.assert_allclose(fixed.dequantised_weight(), gain * trained, rtol=1e-6, atol=0)
