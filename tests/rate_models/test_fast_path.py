"""The bp fast path (one backward through the uncut graph) against the generic three-factor path."""

import pytest
import torch

from rate_models.train import RateBackend
from spiking_rhm import training
from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig


def _cfg(arch="cnn", bias=False, rule="bp", epochs=4, seed=0):
    return RunConfig(rhm=RHMConfig(8, 4, 8, 2, 2), P=256, P_test=256, rule=rule, seed=seed,
                     net=NetConfig(arch=arch, width=32, bias=bias), optim=OptimConfig(epochs=epochs, batch_size=64))


@pytest.mark.parametrize("arch,bias", [("cnn", False), ("cnn", True), ("lcn", False), ("fcn", True)])
def test_fast_path_updates_equal_generic_path(arch, bias):
    backend = RateBackend(_cfg(arch, bias))
    assert backend.fast_path
    idx = torch.randperm(256, generator=torch.Generator().manual_seed(1))[:64]
    fast = backend.step(idx, 1.0, align=False)
    backend.fast_path = False
    generic = backend.step(idx, 1.0, align=False)
    assert len(fast.grads) == len(generic.grads) == len(backend.trainable()[0]) + 1
    for f, g in zip(fast.grads, generic.grads):
        assert f.shape == g.shape
        torch.testing.assert_close(f, g, rtol=1e-5, atol=1e-6)
    assert float(fast.loss) == pytest.approx(float(generic.loss), rel=1e-6)
    assert int(fast.wrong) == int(generic.wrong) and fast.size == generic.size


def test_fast_path_trains_like_generic_path():
    cfg = _cfg(epochs=5)
    fast = RateBackend(cfg)
    slow = RateBackend(cfg)
    slow.fast_path = False
    a, b = training.train(fast, cfg), training.train(slow, cfg)
    assert a["curve"]["epoch"] == b["curve"]["epoch"]
    torch.testing.assert_close(torch.tensor(a["curve"]["train_loss"]), torch.tensor(b["curve"]["train_loss"]),
                               rtol=1e-4, atol=1e-6)
    assert a["test_error"] == pytest.approx(b["test_error"], abs=2 / 256)
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-3)


def test_only_gradient_rules_take_the_fast_path():
    assert not RateBackend(_cfg(rule="dfa")).fast_path
    assert not RateBackend(_cfg(rule="bp-unmasked")).fast_path
