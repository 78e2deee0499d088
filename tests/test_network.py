"""The one network description (spiking_rhm.network): shapes written out by hand, validation, and the rate and
Norse back ends reading the same spec and starting from the same weights in the same layout."""

import math

import pytest
import torch

from spiking_rhm.config import NetConfig, RHMConfig, RunConfig, SpikingConfig
from spiking_rhm.errors import ConfigError
from spiking_rhm.network import NetworkSpec, init_weights, make_spec, patches, spec_from_config, taps_of

SHAPES = {  # (v, d, s, depth, H) = (3, 8, 2, 3, 5); fcn with depth 2
    "cnn": dict(positions=(8, 4, 2, 1), fan_in=(6, 10, 10), weights=[(5, 6), (5, 10), (5, 10)], taps=2),
    "lcn": dict(positions=(8, 4, 2, 1), fan_in=(6, 10, 10), weights=[(4, 5, 6), (2, 5, 10), (1, 5, 10)], taps=2),
    "fcn": dict(positions=(8, 1, 1), fan_in=(24, 5), weights=[(5, 24), (5, 5)], taps=1),
}


@pytest.mark.parametrize("arch", list(SHAPES))
def test_shapes(arch):
    want = SHAPES[arch]
    spec = make_spec(arch, 3, 8, 2, 3 if arch != "fcn" else 2, 5, 4)
    assert spec.positions == want["positions"] and spec.fan_in == want["fan_in"]
    assert spec.weight_shapes() == want["weights"] and spec.taps() == want["taps"]
    assert spec.layer_shapes() == [(5, P) for P in want["positions"][1:]]
    assert spec.widths == (5,) * spec.depth and spec.v == spec.in_channels == 3
    assert spec.connectivity.shared == (arch != "lcn")


def test_invalid_specs_raise():
    with pytest.raises(ConfigError, match="divisible by s\\*\\*depth"):
        make_spec("cnn", 3, 6, 2, 2, 5, 4)
    with pytest.raises(ConfigError, match="positive"):
        make_spec("cnn", 3, 4, 2, 2, 0, 4)
    with pytest.raises(ConfigError, match="architecture"):
        make_spec("resnet", 3, 4, 2, 2, 5, 4)


def test_patches_and_taps_share_one_layout():
    """Patch p of a layer, flattened tap-major, is taps (s p .. s p + s - 1) of the same input."""
    x = torch.randn(2, 3, 8)  # [B, C, P_in]
    pat = patches(x.transpose(1, 2), 2)  # [B, 4, 2*3]
    taps = taps_of(x, 2)  # [B, C, s, P]
    for p in range(4):
        for k in range(2):
            assert torch.equal(pat[:, p, k * 3:(k + 1) * 3], x[:, :, 2 * p + k])
            assert torch.equal(taps[:, :, k, p], x[:, :, 2 * p + k])


def _config(arch: str) -> RunConfig:
    return RunConfig(rhm=RHMConfig(v=6, m=2, n_c=3, s=2, L=2), P=8, P_test=8, rule="dfa", backend="norse",
                     net=NetConfig(arch=arch, width=7), spiking=SpikingConfig(code="rate"))


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
def test_rate_and_norse_read_one_spec_and_start_from_the_same_weights(arch):
    """Both back ends build the same :class:`NetworkSpec` from a config and draw their weights with
    :func:`init_weights`; the spiking layer's current is the rate pre-activation times the documented
    scale ``g / (ss rho_in)`` (``gain_l sqrt(K_l)``), so the weight *layouts* agree, not only the draws."""
    rate = pytest.importorskip("rate_models.networks")
    pytest.importorskip("norse")
    from spiking_rhm.backends.norse.build import build_network
    from spiking_rhm.backends.norse.network import init_weights as norse_init_weights
    from spiking_rhm.backends.norse.neurons import steady_state_factor

    cfg = _config(arch)
    _, spec, params = build_network(cfg, cfg.rhm.v)
    assert type(spec) is NetworkSpec and spec == rate.spec_from_config(cfg) == spec_from_config(cfg)

    ref = init_weights(spec, torch.Generator().manual_seed(5), torch.float64)
    ours = rate.init_params(spec, torch.Generator().manual_seed(5), torch.float64)
    spiking = norse_init_weights(spec, torch.Generator().manual_seed(5), torch.float64)
    for a, b, c in zip(ref.hidden, ours.weights, spiking.hidden, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert torch.equal(ref.readout, ours.readout) and torch.equal(ref.readout, spiking.readout)

    x = torch.rand(4, spec.in_channels, spec.d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, act = rate.forward(ours, x)
    layer_in = [x.transpose(1, 2)] + [h.transpose(1, 2) for h in act.post[:-1]]  # channel-last [N, P, C]
    ss = steady_state_factor(params.lif, params.dt)
    for l, (h, W) in enumerate(zip(layer_in, spiking.hidden)):
        current = params.gains[l] * spec.connectivity.apply(patches(h, spec.patch), W)  # [N, P, H]
        scale = params.drive / (ss * params.rho_in[l])
        assert math.isclose(params.gains[l] * math.sqrt(spec.fan_in[l]), scale, rel_tol=1e-12)
        torch.testing.assert_close(current, scale * act.pre[l].transpose(1, 2), rtol=1e-12, atol=1e-12)


def test_bias_draws_follow_each_layers_weights():
    """With bias, layer l's bias [P_l, H] is drawn right after W^l (the reference CNN's order)."""
    spec = make_spec("lcn", 3, 4, 2, 2, 5, 2, bias=True)
    w = init_weights(spec, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    expected = []
    for shape, (H, P) in zip(spec.weight_shapes(), spec.layer_shapes()):
        expected += [torch.randn(shape, generator=g), torch.randn(P, H, generator=g)]
    got = [t for pair in zip(w.hidden, w.biases) for t in pair]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    assert torch.equal(w.readout, torch.randn(5, 2, generator=g))
