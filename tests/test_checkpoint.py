"""Checkpoints of trained networks (spiking_rhm/checkpoint.py) and the probe's affine map.

The stored readout must reproduce the run's own score: applied to the network's features it
gives the record's test error (delta readout for supervised rules, the linear probe for
unsupervised ones) -- an independent recomputation of what the trainer reported.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiking_rhm.api import train
from spiking_rhm.checkpoint import Checkpoint, delta_readout
from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig, SpikingConfig
from spiking_rhm.errors import ConfigError
from spiking_rhm.metrics import fit_linear_probe, linear_probe

SMALL = RHMConfig(v=4, m=2, n_c=3, s=2, L=2)


def _rate_features(ckpt: Checkpoint, inputs: np.ndarray) -> torch.Tensor:
    from rate_models.networks import NetParams, forward, spec_from_config
    from spiking_rhm.rhm import onehot

    cfg = ckpt.config
    spec = spec_from_config(cfg)
    params = NetParams(spec, tuple(torch.as_tensor(w, dtype=torch.float64) for w in ckpt.hidden),
                       (None,) * spec.depth, torch.zeros(spec.width, spec.n_out, dtype=torch.float64))
    _, act = forward(params, onehot(inputs, cfg.rhm.v, dtype=torch.float64))
    return act.post[-1].mean(-1)


@pytest.mark.parametrize("rule", ["dfa", "random-features"])
def test_rate_checkpoint_readout_reproduces_the_recorded_test_error(tmp_path, rule):
    cfg = RunConfig(rhm=SMALL, P=16, P_test=8, rule=rule, net=NetConfig(width=8), optim=OptimConfig(epochs=3))
    record = train(cfg, checkpoint=tmp_path / "net.npz")
    ckpt = Checkpoint.load(tmp_path / "net.npz")
    assert ckpt.readout_kind == ("delta" if rule == "dfa" else "probe") and ckpt.backend == "rate"
    assert ckpt.config == cfg and ckpt.test_error == pytest.approx(record["test_error"])
    _, test = cfg.rhm.build().split(16, 8, seed=cfg.seed)
    logits = _rate_features(ckpt, test.inputs).numpy() @ ckpt.readout_weight + ckpt.readout_bias
    assert np.mean(logits.argmax(1) != test.labels) == pytest.approx(record["test_error"])


def test_norse_checkpoint_holds_the_trained_weights(tmp_path):
    cfg = RunConfig(rhm=SMALL, P=16, P_test=8, rule="dfa", backend="norse", net=NetConfig(width=6),
                    optim=OptimConfig(epochs=1, batch_size=8), spiking=SpikingConfig(T=8))
    train(cfg, checkpoint=tmp_path / "n.npz")
    ckpt = Checkpoint.load(tmp_path / "n.npz")
    init = torch.randn(6, 8, generator=torch.Generator().manual_seed(cfg.seed), dtype=torch.float32)
    assert ckpt.hidden[0].shape == (6, 8) and not np.allclose(ckpt.hidden[0], init.numpy())  # it learned
    assert ckpt.readout_kind == "delta"


def test_delta_readout_is_the_mean_field_readout():
    beta = np.random.default_rng(0).normal(size=(5, 3))
    R, c = delta_readout(beta)
    h = np.random.default_rng(1).random((4, 5))
    np.testing.assert_allclose(h @ R + c, h @ beta / 5)


def test_probe_map_on_raw_features_gives_the_probe_predictions():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6)) * 3 + 10  # a large common mean: the standardisation matters
    y = rng.integers(0, 3, size=200)
    X = centers[y] + rng.normal(size=(200, 6))
    fit = fit_linear_probe(X[:150], y[:150], X[150:], y[150:], 3)
    assert fit.metrics == linear_probe(X[:150], y[:150], X[150:], y[150:], 3)
    err = np.mean((X[150:] @ fit.weight + fit.bias).argmax(1) != y[150:])
    assert err == pytest.approx(fit.metrics["test_error"]) and err < 0.1


def test_probe_with_no_test_points():
    X = np.random.default_rng(0).normal(size=(10, 3))
    res = linear_probe(X, np.arange(10) % 2, np.zeros((0, 3)), np.zeros(0, dtype=int), 2)
    assert np.isnan(res["test_error"])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Checkpoint.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(ConfigError, match="not a spiking-rhm checkpoint"):
        Checkpoint.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ConfigError, match="not a spiking-rhm checkpoint"):
        Checkpoint.load(tmp_path / "other.npz")
    cfg = RunConfig(rhm=SMALL, P=16, P_test=8, rule="dfa")
    with pytest.raises(ConfigError, match="do not fit"):
        Checkpoint(cfg, (np.zeros((2, 2)),), np.zeros((2, 3)), np.zeros(2), "delta", "rate")
    with pytest.raises(ConfigError, match="directory"):
        train(cfg, checkpoint=tmp_path / "no" / "net.npz")
    with pytest.raises(ConfigError, match="readout = top"):
        train(cfg.replace(rule="clapp", rule_options={"readout": "all"}), checkpoint=tmp_path / "x.npz")
