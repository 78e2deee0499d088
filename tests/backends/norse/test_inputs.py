"""Spike codes as the Norse back end builds them from ``cfg.spiking``; validation of the code and operating point."""

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm.backends.norse.inputs import SpikeEncoder  # noqa: E402
from spiking_rhm.config import RunConfig, SpikingConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402
from spiking_rhm.rhm import RHM, onehot  # noqa: E402

pytestmark = pytest.mark.norse


def onehot_batch(n=16):
    rhm = RHM(8, 4, 8, 2, 2, seed=0)
    return onehot(rhm.split(n, 0, seed=0)[0].inputs, 8)


def test_population_code_from_config_has_k_neurons_per_symbol_and_position():
    x = onehot_batch()
    enc = SpikeEncoder.from_config(SpikingConfig(code="population", population_size=3, max_rate=150.0, T=200), 8)
    assert enc.channels == 24 and enc.nominal_rate == pytest.approx(0.15)
    z = enc(x, torch.Generator().manual_seed(0))  # [T, N, v * k, d]
    assert z.shape == (200, 16, 24, 4)
    per_group = z.sum(0).view(16, 8, 3, 4)  # channel a * k + i: group a, neuron i
    active = x.bool().unsqueeze(2).expand(16, 8, 3, 4)
    assert float(per_group[~active].sum()) == 0.0
    assert bool((per_group[active] > 0).all())  # every neuron of the symbol's group fires
    rate = float(per_group[active].mean()) / (200 * 1e-3)
    assert abs(rate - 150.0) < 10.0


def test_regular_and_latency_codes_from_config():
    x = onehot_batch()
    reg = SpikeEncoder.from_config(SpikingConfig(code="regular", max_rate=100.0, T=30), 8)
    counts = reg(x, torch.Generator().manual_seed(1)).sum(0)
    assert set(counts[x.bool()].unique().tolist()) <= {3.0} and float(counts[~x.bool()].sum()) == 0
    lat = SpikeEncoder.from_config(SpikingConfig(code="latency", latency_window=5e-3, T=30), 8)
    z = lat(x)
    assert z.sum(0)[x.bool()].eq(1).all() and lat.nominal_rate == pytest.approx(1 / 30)


@pytest.mark.parametrize("spiking, match", [
    ({"code": "poisson"}, "spiking.code"),
    ({"max_rate": 0.0}, "max_rate"),
    ({"max_rate": 2000.0}, "max_rate"),
    ({"population_size": 0}, "population_size"),
    ({"code": "latency", "latency_window": 0.05, "T": 20}, "latency_window"),
    ({"v_rest": 1.5}, "v_rest"),
    ({"reset": "soft"}, "spiking.reset"),
    ({"v_init": "zero"}, "spiking.v_init"),
    ({"v_th": 0.0}, "v_th"),
])
def test_bad_spiking_settings_give_clear_errors(spiking, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict({"backend": "norse", "spiking": spiking})


def test_spiking_settings_are_stored_in_the_record():
    cfg = RunConfig.from_dict({"backend": "norse", "spiking": {"code": "population", "population_size": 2,
                                                                "v_rest": 0.5, "reset": "subtract"}})
    back = RunConfig.from_dict(cfg.to_dict())
    assert back.spiking == cfg.spiking and cfg.to_dict()["spiking"]["population_size"] == 2
