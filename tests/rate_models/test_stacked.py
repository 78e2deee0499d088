"""Stacked runs (rate_models.stacked) against the same runs trained alone."""

import math

import pytest

from rate_models.stacked import NotStackable, group, stack_key, stackable, train_stack
from rate_models.train import train_rate
from spiking_rhm import api
from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig


def _cfg(rule="bp", seed=0, lr=None, epochs=4, stop=0.0, net=None, **kw):
    return RunConfig(rhm=RHMConfig(8, 4, 8, 2, 2), P=256, P_test=256, rule=rule, seed=seed,
                     net=net or NetConfig(width=32),
                     optim=OptimConfig(epochs=epochs, batch_size=64, lr=lr, stop_train_loss=stop), **kw)


def assert_same_run(stacked: dict, alone: dict) -> None:
    """Equal to float tolerance: scores, curve, early stop, divergence, alignment."""
    for key in ("diverged", "epochs_run", "stopped_early_at_epoch", "steps", "epochs_planned"):
        assert stacked[key] == alone[key], key
    assert stacked["curve"]["epoch"] == alone["curve"]["epoch"]
    assert stacked["curve"]["test_epoch"] == alone["curve"]["test_epoch"]
    for a, b in zip(stacked["curve"]["train_loss"], alone["curve"]["train_loss"]):
        assert a == pytest.approx(b, rel=1e-4, nan_ok=True)
    for key in ("test_error", "train_error"):
        assert stacked[key] == pytest.approx(alone[key], abs=1.5 / 256, nan_ok=True), key
    assert stacked["test_loss"] == pytest.approx(alone["test_loss"], rel=1e-4, nan_ok=True)
    assert stacked["curve"]["test_error"] == pytest.approx(alone["curve"]["test_error"], abs=1.5 / 256, nan_ok=True)
    assert [p["step"] for p in stacked["alignment"]] == [p["step"] for p in alone["alignment"]]
    assert stacked["lr"] == alone["lr"]
    assert stacked["data"] == alone["data"]


@pytest.mark.parametrize("rule,kw", [("bp", {}), ("bp", {"net": NetConfig(arch="lcn", width=32, bias=True)}),
                                     ("dfa", {}), ("dkp", {}), ("clapp", {}), ("sibling-cca", {}),
                                     ("random-features", {"rule_options": {"readout": "all"}})])
def test_stacked_runs_equal_the_runs_alone(rule, kw):
    cfgs = [_cfg(rule, seed=s, **kw) for s in (0, 1, 2)]
    stacked = train_stack(cfgs)
    for i, (cfg, m) in enumerate(zip(cfgs, stacked)):
        assert m["stack"]["size"] == 3 and m["stack"]["index"] == i
        assert_same_run(m, train_rate(cfg))
    assert len({m["test_loss"] for m in stacked}) == 3  # the runs differ (own seed, data, order)


def test_learning_rates_and_early_stop_per_run():
    alone_fast = train_rate(_cfg(lr=2.0, epochs=8))
    losses = alone_fast["curve"]["train_loss"]
    stop = (losses[2] + losses[3]) / 2  # the fast run stops at epoch 4; the slow one never gets there
    cfgs = [_cfg(lr=2.0, epochs=8, stop=stop), _cfg(seed=1, lr=0.01, epochs=8, stop=stop), _cfg(seed=2, epochs=8,
                                                                                                 stop=stop)]
    stacked = train_stack(cfgs)
    alone = [train_rate(cfg) for cfg in cfgs]
    assert alone[0]["stopped_early_at_epoch"] == 4 and alone[1]["stopped_early_at_epoch"] is None
    for m, a in zip(stacked, alone):
        assert_same_run(m, a)


def test_a_divergent_member_is_recorded_diverged_while_the_others_go_on():
    cfgs = [_cfg(seed=0), _cfg(seed=1, lr=1e30), _cfg(seed=2)]
    stacked = train_stack(cfgs)
    assert stacked[1]["diverged"] and math.isnan(stacked[1]["test_error"]) and stacked[1]["epochs_run"] < 4
    assert api.make_record(cfgs[1], stacked[1], wall_time=0.0)["status"] == "diverged"
    for i in (0, 2):
        assert not stacked[i]["diverged"] and stacked[i]["epochs_run"] == 4
        assert_same_run(stacked[i], train_rate(cfgs[i]))
    assert_same_run(stacked[1], train_rate(cfgs[1]))


def test_grouping_and_what_cannot_be_stacked():
    cfgs = [_cfg(seed=s) for s in range(5)] + [_cfg(seed=0, lr=0.5), _cfg("dfa"), _cfg("bp-unmasked"),
                                              _cfg("bp").replace(P_test=128)]
    assert stack_key(cfgs[0]) == stack_key(cfgs[5]) != stack_key(cfgs[6])
    assert "layer_vjp" in stackable(cfgs[7]) and stackable(cfgs[0]) is None
    groups = group(cfgs, 4)
    assert sorted(len(g) for g in groups) == [1, 1, 1, 3, 3]  # 6 bp runs in two near-equal groups
    assert [c for g in groups for c in g if c.rule == "bp-unmasked"] == [cfgs[7]]
    assert all(len(g) == 1 for g in group(cfgs, 1))
    with pytest.raises(NotStackable, match="differ"):
        train_stack([cfgs[0], cfgs[6]])
    with pytest.raises(NotStackable, match="layer_vjp"):
        train_stack([cfgs[7], cfgs[7].replace(seed=1)])


def test_norse_runs_are_never_stacked():
    """Only the rate back end stacks: Norse runs are refused by train_stack and grouped alone by a sweep."""
    norse = [_cfg(seed=s).replace(backend="norse") for s in range(3)]
    assert "only the rate back end" in stackable(norse[0])
    assert [len(g) for g in group(norse + [_cfg(seed=0), _cfg(seed=1)], 8)] == [1, 1, 1, 2]
    with pytest.raises(NotStackable, match="rate back end"):
        train_stack(norse)


@pytest.mark.parametrize("arch,bias", [("cnn", False), ("cnn", True), ("lcn", True), ("fcn", False)])
def test_stacked_gradients_equal_autograd_of_each_run(arch, bias):
    """The stack's written-out backprop (bp fast path) == autograd of each lone run's loss, every architecture."""
    import torch
    import torch.nn.functional as F

    from rate_models.networks import forward
    from rate_models.stacked import _Stack
    from rate_models.train import RateBackend

    backends = [RateBackend(_cfg(seed=s, net=NetConfig(arch=arch, width=32, bias=bias))) for s in (0, 1, 2)]
    stack = _Stack(backends)
    idx = torch.stack([torch.randperm(b.n_train, generator=torch.Generator().manual_seed(i))[:64]
                       for i, b in enumerate(backends)])
    rows = torch.arange(3)[:, None]
    grads, loss, wrong = stack.stacked_gradients(stack.trainables(), stack.X[rows, idx], stack.Y[rows, idx])
    for r, b in enumerate(backends):
        x, y = b.X[idx[r]], b.Y[idx[r]]
        out, _ = forward(b.params, x)
        lone_loss = F.cross_entropy(out, y)
        hidden, readout = b.trainable()
        want = torch.autograd.grad(lone_loss, [*hidden, *readout])
        assert len(want) == len(grads)
        for g, w in zip(grads, want):
            torch.testing.assert_close(g[r], w, rtol=1e-4, atol=1e-6)
        assert float(loss[r]) == pytest.approx(float(lone_loss.detach()), rel=1e-5)
        assert int(wrong[r]) == int((out.argmax(1) != y).sum())


def test_finite_rows_flags_exactly_the_runs_with_a_non_finite_entry():
    import torch

    from rate_models.stacked import _finite_rows

    w = torch.full((5, 3, 4), 3e38)  # huge but finite: a sum would overflow, max |w| does not
    b = torch.zeros(5, 2)
    w[1, 2, 3], w[2, 0, 0], b[3, 1] = float("nan"), float("inf"), -float("inf")
    assert _finite_rows([w, b]).tolist() == [True, False, False, False, True]
