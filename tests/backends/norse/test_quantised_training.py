"""Fixed-point-aware training (``spiking.weight_bits``): the learners run the quantised network and their update
goes to the float master weights (straight-through); the trained network, its scores and its checkpoint are the
quantised one."""

import time

import numpy as np
import pytest
import torch

pytest.importorskip("norse")

from norse_helpers import NC, OLD_POINT, S, V, small_batch  # noqa: E402
from spiking_rhm.backends.norse.inputs import SpikeEncoder  # noqa: E402
from spiking_rhm.backends.norse.learners import PresentedBatch, make_learner  # noqa: E402
from spiking_rhm.backends.norse.network import Weights, build_parameters, build_spec, init_weights  # noqa: E402
from spiking_rhm.quantisation import quantise_weight, weight_levels  # noqa: E402

pytestmark = pytest.mark.norse
L, WIDTH, T = 2, 12, 12


def _setup(n=8, seed=0):
    _, _, x, target = small_batch(n, seed=seed)
    enc = SpikeEncoder("regular", T, 1e-3, 400.0, V)
    spec = build_spec("cnn", enc.channels, S**L, S, L, WIDTH, NC)
    params = build_parameters(spec, enc.nominal_rate, **OLD_POINT)
    weights = init_weights(spec, torch.Generator().manual_seed(seed))
    return spec, params, weights, PresentedBatch(enc(x, torch.Generator().manual_seed(3)), target)


def _learner(rule, spec, params, **kw):
    return make_learner(rule, {}, spec, params, torch.Generator().manual_seed(1), **kw)


def _copy(weights):
    return weights._replace(hidden=[w.clone() for w in weights.hidden], readout=weights.readout.clone())


def _quantised(weights, bits=8):
    return Weights([quantise_weight(w, bits) for w in weights.hidden], weights.readout.clone())


@pytest.mark.parametrize("rule", ["dfa", "eprop", "bp"])
def test_update_is_the_quantised_networks_update(rule):
    """With weight_bits = 8 a step on the master weights W gives exactly the update a float learner computes on
    Q(W) (spikes, eligibilities, signals, BPTT gradient all of Q(W)), and leaves W as it was."""
    spec, params, weights, batch = _setup()
    master = _copy(weights)
    got = _learner(rule, spec, params, weight_bits=8).step(master, batch, 0.5)
    want = _learner(rule, spec, params).step(_quantised(weights), batch, 0.5)
    assert torch.equal(got.logits, want.logits)
    for g, w in zip([*got.grads, got.grad_readout], [*want.grads, want.grad_readout]):
        assert torch.equal(g, w)
    for a, b in zip(master.parameters(), weights.parameters()):
        assert torch.equal(a, b)
    # and the quantised network is a different one: the float learner on W gives other spikes/updates
    plain = _learner(rule, spec, params).step(_copy(weights), batch, 0.5)
    assert any(not torch.equal(g, w) for g, w in zip(plain.grads, want.grads))


@pytest.mark.parametrize("every", [T, 4])
def test_online_updates_land_on_the_master_weights(every):
    """Online plasticity applies each in-window update to the float master weights (not to the quantised copy the
    network runs with): W_after = W - lr sum_s g(s) (no momentum), off the 8-bit grid; with one update per
    window (k = T, d = 0) the update is the window form's on Q(W)."""
    spec, params, weights, batch = _setup()
    lr = 0.3
    master = _copy(weights)
    online = _learner("dfa", spec, params, weight_bits=8, plasticity="online", update_every=every,
                      eligibility="synapse").step(master, batch, lr)
    assert online.applied
    for w0, w1, g in zip(weights.hidden, master.hidden, online.grads):
        torch.testing.assert_close(w1, w0 - lr * g, rtol=1e-5, atol=1e-7)
        assert not torch.equal(quantise_weight(w1, 8), w1)  # float master weights, not snapped to the grid
    if every == T:
        window = _learner("dfa", spec, params, eligibility="synapse").step(_quantised(weights), batch, lr)
        for g_o, g_w in zip(online.grads, window.grads):
            torch.testing.assert_close(g_o, g_w, rtol=1e-5, atol=1e-8)


def test_trained_network_is_scored_and_saved_quantised(tmp_path):
    """A run with weight_bits = 8 keeps float master weights; its test error is the quantised network's (an
    independent forward pass on Q(master)), and its checkpoint holds Q(master): 8-bit levels, max level 127."""
    from spiking_rhm import training
    from spiking_rhm.backends.norse.network import forward_features
    from spiking_rhm.backends.norse.train import NorseBackend
    from spiking_rhm.checkpoint import Checkpoint
    from spiking_rhm.config import RunConfig

    cfg = RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 48, "P_test": 32,
                               "rule": "dfa", "backend": "norse", "seed": 2, "net": {"width": 8},
                               "optim": {"epochs": 2, "batch_size": 16},
                               "spiking": {"T": 8, "weight_bits": 8, "reset": "zero"}})
    backend = NorseBackend(cfg)
    record = training.train(backend, cfg, False, tmp_path / "net.npz", time.perf_counter())
    setup = backend.setup
    master = setup.weights
    assert any(not torch.equal(quantise_weight(w, 8), w) for w in master.hidden)
    quantised = _quantised(master)
    saved = Checkpoint.load(tmp_path / "net.npz")
    for w_saved, w_q, w in zip(saved.hidden, quantised.hidden, master.hidden):
        np.testing.assert_array_equal(np.asarray(w_saved, dtype=np.float32), w_q.numpy())
        assert torch.equal(weight_levels(torch.as_tensor(np.asarray(w_saved)), 8), weight_levels(w, 8))
        assert int(weight_levels(w, 8).abs().max()) == 127
    spikes = setup.encode(backend.test.inputs, torch.Generator().manual_seed(cfg.seed + 1))
    _, logits = forward_features(spikes, quantised, setup.spec, setup.params)
    error = float((logits.argmax(1).numpy() != backend.test.labels).mean())
    assert record["test_error"] == pytest.approx(error)
    # the scoring's loss (continuous, unlike the error) is the quantised network's, not the master weights'
    from spiking_rhm.backends.norse.train import evaluate

    loss = float(torch.nn.functional.cross_entropy(logits, torch.as_tensor(backend.test.labels)))
    _, loss_scored, _ = evaluate(setup, backend.test, torch.Generator().manual_seed(cfg.seed + 1))
    _, logits_master = forward_features(spikes, master, setup.spec, setup.params)
    loss_master = float(torch.nn.functional.cross_entropy(logits_master, torch.as_tensor(backend.test.labels)))
    assert loss_scored == pytest.approx(loss, rel=1e-6) and loss_master != pytest.approx(loss, rel=1e-6)
    assert record["spiking"]["weight_bits"] == 8
