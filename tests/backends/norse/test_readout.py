"""The membrane (leaky-integrator) readout against its closed form; the counts readout as its slow limit."""

import math

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm.backends.norse.network import (  # noqa: E402
    build_parameters,
    build_spec,
    float64_parameters,
    forward_features,
    init_weights,
    initial_state,
    run_window,
    top_rates,
)
from spiking_rhm.config import RunConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.norse

SPEC = build_spec("cnn", 8, 4, 2, 2, 16, 8)


def window(readout, tau=0.02, T=30):
    w = init_weights(SPEC, torch.Generator().manual_seed(0), torch.float64)
    spikes = (torch.rand(T, 5, 8, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < 0.3).double()
    p = float64_parameters(build_parameters(SPEC, 0.3, readout=readout, tau_readout=tau))
    top = []
    res, _ = run_window(spikes, w.hidden, SPEC, p, initial_state(SPEC, p, 5, torch.float64),
                        recorder=lambda t, l, v: top.append(v["z"]) if l == SPEC.depth - 1 else None)
    return res, torch.stack(top), spikes, w, p


def test_membrane_readout_is_the_normalised_leaky_integral_of_the_top_spikes():
    """u(T) = (1 - k) sum_t k^(T-1-t) z(t), read as T u / (1 - k^T)."""
    T, tau = 30, 0.02
    res, z, *_ = window("membrane", tau, T)
    k = math.exp(-1e-3 / tau)
    weights = torch.tensor([(1 - k) * k ** (T - 1 - t) for t in range(T)], dtype=torch.float64)
    expected = T * torch.einsum("t,tnph->nph", weights, z) / (1 - k ** T)
    assert float(z.sum()) > 50
    assert torch.allclose(res.readout_counts, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(res.readout_counts, res.counts[-1])  # it is not the count ...
    assert float(res.readout_counts.sum()) == pytest.approx(float(res.counts[-1].sum()), rel=0.3)  # ... but its scale


def test_slow_membrane_readout_is_the_count_readout():
    counts, *_ = window("counts")
    slow, *_ = window("membrane", tau=1e4)
    assert counts.readout_in is None
    assert torch.allclose(slow.readout_counts, counts.counts[-1], atol=1e-4)


def test_forward_features_use_the_readout_in_its_units():
    res, _, spikes, w, p = window("membrane")
    hbar, logits = forward_features(spikes, w, SPEC, p)
    assert torch.allclose(hbar, top_rates(res.readout_counts, 30, p))
    assert torch.allclose(logits, hbar @ w.readout / w.readout.shape[0])


@pytest.mark.parametrize("rule", ["dfa", "bp"])
def test_membrane_readout_trains_and_is_recorded(rule):
    from spiking_rhm.backends.norse.train import train_norse

    cfg = RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 64, "P_test": 32,
                               "rule": rule, "backend": "norse", "net": {"width": 16},
                               "optim": {"epochs": 1, "batch_size": 16},
                               "spiking": {"T": 8, "readout": "membrane", "tau_readout": 0.01}})
    m = train_norse(cfg)
    assert m["spiking"]["readout"] == "membrane" and m["spiking"]["tau_readout"] == pytest.approx(0.01)
    assert 0 <= m["test_error"] <= 1


@pytest.mark.parametrize("spiking, match", [({"readout": "voltage"}, "spiking.readout"),
                                            ({"tau_readout": 0.0}, "tau_readout")])
def test_bad_readout_settings(spiking, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict({"backend": "norse", "spiking": spiking})


def test_a_deployed_network_refuses_the_membrane_readout():
    from spiking_rhm.backends.norse.deployed import from_checkpoint
    from spiking_rhm.checkpoint import make_checkpoint

    cfg = RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 64, "P_test": 32,
                               "rule": "dfa", "backend": "norse", "net": {"width": 16},
                               "spiking": {"readout": "membrane"}})
    spec = build_spec("cnn", 8, 4, 2, 2, 16, 8)
    w = init_weights(spec, torch.Generator().manual_seed(0))
    ckpt = make_checkpoint(cfg, w.hidden, w.readout)
    with pytest.raises(ConfigError, match="spiking.readout=counts"):
        from_checkpoint(ckpt)
    assert from_checkpoint(ckpt, spiking={"readout": "counts"}).params.readout == "counts"
