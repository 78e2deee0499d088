"""Data-based weight normalisation of a converted rate network (Rueckauer et al. 2017), checked with the rate
network's own forward pass (``rate_models``) and numpy's percentile, not the code under test."""

import numpy as np
import pytest
import torch

pytest.importorskip("norse")

from rate_models.networks import NetParams, forward, make_spec  # noqa: E402
from spiking_rhm.backends.norse.deployed import from_checkpoint, normalise, run_points  # noqa: E402
from spiking_rhm.backends.norse.network import build_spec, init_weights  # noqa: E402
from spiking_rhm.checkpoint import make_checkpoint  # noqa: E402
from spiking_rhm.config import RunConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402
from spiking_rhm.rhm import onehot  # noqa: E402

pytestmark = pytest.mark.norse

RHM = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}


def tiny(arch="cnn", P=96, P_test=64, seed=3):
    cfg = RunConfig.from_dict({"rhm": RHM, "P": P, "P_test": P_test, "rule": "dfa", "backend": "rate", "seed": seed,
                               "net": {"width": 12, "arch": arch}})
    w = init_weights(build_spec(arch, 8, 4, 2, 2, 12, 8), torch.Generator().manual_seed(seed), torch.float64)
    # layers of very different scales, as training leaves them
    hidden = [w.hidden[0] * 0.3, w.hidden[1] * 5.0]
    return cfg, from_checkpoint(make_checkpoint(cfg, hidden, w.readout))


def rate_forward(net, x):
    """``rate_models`` forward with the network's weights (its readout is ``beta / H``, bias c)."""
    spec = make_spec(net.spec.arch, 8, 4, 2, 2, 12, 8)
    H = net.readout_weight.shape[0]
    params = NetParams(spec, tuple(net.hidden), (None, None), net.readout_weight * H)
    logits, act = forward(params, x)
    return logits + net.readout_bias, [h.numpy() for h in act.post]


@pytest.mark.parametrize("arch", ["cnn", "lcn"])
@pytest.mark.parametrize("percentile, target", [(99.9, 1.0), (90.0, 0.4)])
def test_the_percentile_of_every_normalised_layer_fires_at_the_target_rate(arch, percentile, target):
    cfg, net = tiny(arch)
    norm, info = normalise(net, percentile=percentile, target=target)
    train, _ = run_points(cfg)
    x = onehot(train.inputs, 8, dtype=torch.float64)
    logits0, _ = rate_forward(net, x)
    logits1, acts = rate_forward(norm, x)
    rho_h = net.params.rho_hidden
    for h in acts:  # in units of one spike per step (h rho_h) the percentile unit sits at the target
        assert np.percentile(h[h > 0], percentile) * rho_h / target == pytest.approx(1.0, rel=1e-9)
    # the ReLU is homogeneous: the logits are the rate network's
    assert torch.allclose(logits1, logits0, rtol=1e-10, atol=1e-12)
    assert len(info["factors"]) == 2 and info["target_rate"] == pytest.approx(target / rho_h)


def test_normalisation_uses_the_training_points_not_the_held_out_ones():
    cfg, net = tiny()
    train, test = run_points(cfg)
    assert not set(map(tuple, train.inputs)) & set(map(tuple, test.inputs))
    x = onehot(train.inputs, 8, dtype=torch.float64)
    _, acts = rate_forward(net, x)
    _, info = normalise(net, percentile=95.0)
    assert info["lambda"] == pytest.approx([np.percentile(h[h > 0], 95.0) for h in acts], rel=1e-9)


@pytest.mark.parametrize("kw, match", [({"percentile": 0}, "percentile"), ({"percentile": 100.5}, "percentile"),
                                       ({"target": 0}, "target"), ({"target": 1.5}, "target"),
                                       ({"n_points": 0}, "n_points")])
def test_bad_normalisation_settings(kw, match):
    _, net = tiny()
    with pytest.raises(ConfigError, match=match):
        normalise(net, **kw)


def test_weight_bits_cannot_be_changed_at_export():
    """A checkpoint deploys the weights its run was scored with; weight_bits given as an export override is refused
    (not silently ignored)."""
    cfg = RunConfig.from_dict({"rhm": RHM, "P": 96, "P_test": 64, "rule": "dfa", "backend": "norse", "seed": 3,
                               "net": {"width": 12}})
    w = init_weights(build_spec("cnn", 8, 4, 2, 2, 12, 8), torch.Generator().manual_seed(3), torch.float64)
    checkpoint = make_checkpoint(cfg, w.hidden, w.readout)
    with pytest.raises(ConfigError, match="training setting"):
        from_checkpoint(checkpoint, {"weight_bits": 8})
