"""``spiking.layer_gain`` (threshold balancing): layer l's drive is ``g c_l``, its steady potential ``v_rest + g c_l a``."""

import math

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm.backends.norse.network import (  # noqa: E402
    build_parameters,
    build_spec,
    initial_state,
    run_window,
)
from spiking_rhm.backends.norse.train import NorseSetup  # noqa: E402
from spiking_rhm.config import RunConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.norse


def test_layer_gain_multiplies_each_layers_gain_and_keeps_the_rate_units():
    spec = build_spec("cnn", 8, 8, 2, 3, 16, 8)
    base = build_parameters(spec, 0.2)
    scaled = build_parameters(spec, 0.2, layer_gain=[1.0, 2.5, 3.0])
    for g0, g1, c in zip(base.gains, scaled.gains, (1.0, 2.5, 3.0)):
        assert math.isclose(g1, c * g0, rel_tol=1e-12)
    assert scaled.rho_in == base.rho_in and scaled.rho_hidden == base.rho_hidden


@pytest.mark.parametrize("c", [1.0, 2.0, 3.5])
def test_steady_subthreshold_potential_is_rest_plus_scaled_drive(c):
    """Constant input (one spike per step, rho_in = 1) into a 1-layer network: the LIF's fixed point is
    ``v = v_rest + i`` with ``i`` the steady synaptic current ``g c a`` (``a = W x / sqrt(K)``)."""
    spec = build_spec("fcn", 4, 1, 1, 1, 3, 2)  # 4 inputs, 3 units
    params = build_parameters(spec, 1.0, drive=6.0, v_leak=0.5, layer_gain=[c])
    params = params._replace(lif=params.lif._replace(**{k: getattr(params.lif, k).double() for k in
                                                          ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")}))
    W = torch.tensor([[0.01, 0.02, -0.01, 0.0], [0.005, 0.0, 0.0, 0.0], [-0.02, 0.01, 0.0, 0.0]], dtype=torch.float64)
    a = W.sum(1) / math.sqrt(4)  # every input spikes at every step
    T = 600
    spikes = torch.ones(T, 1, 4, 1, dtype=torch.float64)
    last = {}
    res, _ = run_window(spikes, [W], spec, params, initial_state(spec, params, 1, torch.float64),
                        recorder=lambda t, l, v: last.update(v_pre=v["v_pre"]))
    assert float(res.counts[0].sum()) == 0.0  # sub-threshold: 0.5 + 6 c a < 1
    torch.testing.assert_close(last["v_pre"][0, 0], 0.5 + 6.0 * c * a, rtol=0, atol=1e-9)


def _cfg(layer_gain, L=2):
    return RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": L}, "P": 64, "P_test": 16,
                                "rule": "sibling-cca", "backend": "norse", "net": {"width": 16},
                                "spiking": {"layer_gain": layer_gain}})


@pytest.mark.parametrize("bad", ["2", [], [0.0, 1.0], [1.0, -2.0], [True, 1.0], [1.0, float("inf")]])
def test_bad_layer_gain_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="layer_gain"):
        _cfg(bad)


def test_layer_gain_needs_one_factor_per_hidden_layer():
    with pytest.raises(ConfigError, match="one positive number per hidden layer"):
        NorseSetup(_cfg([1.0, 2.0, 3.0], L=2))
    assert NorseSetup(_cfg([1.0, 2.0], L=2)).params.gains[1] == pytest.approx(2 * NorseSetup(_cfg(None)).params.gains[1])
