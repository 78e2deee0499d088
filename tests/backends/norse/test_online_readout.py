"""The rule's own readout on the Norse back end: ``online_readout`` = frozen (the default of unsupervised rules, as
the rate back end) or joint, each checked against its definition on the trained network's own features."""

import time

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm import training  # noqa: E402
from spiking_rhm.config import RunConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402
from spiking_rhm.metrics import fit_delta_readout  # noqa: E402

pytestmark = pytest.mark.norse


def tiny(rule="random-features", **options):
    return RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 96, "P_test": 64, "rule": rule,
                                "backend": "norse", "net": {"width": 16}, "optim": {"epochs": 2, "batch_size": 16},
                                "spiking": {"T": 8}, "rule_options": options, "seed": 1})


def run(cfg):
    from spiking_rhm.backends.norse.train import NorseBackend, evaluate

    backend = NorseBackend(cfg)
    metrics = training.train(backend, cfg, False, None, time.perf_counter())
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # final_scores: test points first, then training points
    test = evaluate(backend.setup, backend.test, gen)
    train = evaluate(backend.setup, backend.train, gen)
    return metrics, backend, test, train


@pytest.mark.parametrize("rule", ["random-features", "sibling-cca"])
def test_unsupervised_rules_are_scored_by_the_frozen_delta_readout_by_default(rule):
    metrics, backend, test, train = run(tiny(rule))
    local = fit_delta_readout(train[2], backend.train.labels, test[2], backend.test.labels, backend.setup.spec.n_out,
                              seed=1)
    assert metrics["online_readout"]["test_error"] == pytest.approx(local.metrics["test_error"], abs=1e-12)
    assert metrics["online_readout"]["train_error"] == pytest.approx(local.metrics["train_error"], abs=1e-12)
    assert metrics["local_readout"]["steps"] == local.metrics["steps"]
    # the readout trained alongside is still trained (and differs): the frozen fit replaced its scores
    assert test[0] != metrics["online_readout"]["test_error"] or train[0] != metrics["online_readout"]["train_error"]


def test_joint_keeps_the_readout_trained_with_the_layers():
    metrics, backend, test, train = run(tiny("random-features", online_readout="joint"))
    assert metrics["online_readout"]["test_error"] == test[0] and metrics["online_readout"]["train_error"] == train[0]
    assert "local_readout" not in metrics


def test_supervised_rules_keep_their_joint_readout():
    metrics, backend, test, _ = run(tiny("dfa"))
    assert metrics["online_readout"]["test_error"] == test[0] and "local_readout" not in metrics


@pytest.mark.parametrize("rule, value, match", [("dfa", "frozen", "unsupervised"), ("clapp", "later", "joint, frozen")])
def test_bad_online_readout_is_a_clear_error(rule, value, match):
    from spiking_rhm.backends.norse.train import NorseBackend

    with pytest.raises(ConfigError, match=match):
        NorseBackend(tiny(rule, online_readout=value))


def test_brian2_takes_the_option_too():
    pytest.importorskip("brian2")
    from spiking_rhm.backends.brian2.train import Brian2Backend

    with pytest.raises(ConfigError, match="unsupervised"):
        Brian2Backend(tiny("dfa", online_readout="frozen").replace(backend="brian2"))
