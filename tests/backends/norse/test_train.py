"""train_norse: registration in the API, reproducibility, clear errors, and learning on a small RHM."""

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm.config import RunConfig  # noqa: E402
from spiking_rhm.errors import SpikingRHMError  # noqa: E402

pytestmark = pytest.mark.norse


def tiny(**changes):
    base = {"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 64, "P_test": 32, "rule": "dfa",
            "backend": "norse", "net": {"width": 16}, "optim": {"epochs": 2, "batch_size": 16}, "spiking": {"T": 6}}
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return RunConfig.from_dict(base)


def test_api_dispatches_to_norse_and_records_the_rate_schema():
    from spiking_rhm.api import train

    record = train(tiny())
    assert record["backend"] == "norse" and record["status"] == "ok"
    m = record["metrics"]
    for key in ("curve", "alignment", "data", "diverged", "lr", "spiking", "samples_per_s"):
        assert key in m
    assert 0 <= record["test_error"] <= 1 and len(m["curve"]["epoch"]) == 2
    assert all(len(a["cosine"]) == 2 for a in m["alignment"])


@pytest.mark.parametrize("rule, options", [("dfa", {}), ("clapp", {"pairs": "resample"}), ("bp", {}),
                                           ("sibling-cca", {})])
def test_runs_are_reproducible(rule, options):
    from spiking_rhm.backends.norse.train import train_norse

    cfg = tiny(rule=rule, rule_options=options, optim={"epochs": 1})
    a, b = train_norse(cfg), train_norse(cfg)
    assert a["curve"]["train_loss"] == b["curve"]["train_loss"] and a["test_error"] == b["test_error"]


def test_eligibility_modes_give_the_same_run():
    from spiking_rhm.backends.norse.train import train_norse

    a = train_norse(tiny(spiking={"eligibility": "synapse"}, optim={"epochs": 1}))
    b = train_norse(tiny(spiking={"eligibility": "factored"}, optim={"epochs": 1}))
    assert a["curve"]["train_loss"] == pytest.approx(b["curve"]["train_loss"], rel=1e-4)


@pytest.mark.parametrize("changes, match", [
    ({"spiking": {"eligibility": "magic"}}, "eligibility"),
    ({"rule": "bp-unmasked"}, "surrogate-gradient BPTT"),
    ({"rule": "fa"}, "feedback_vjp"),
    ({"rule": "dfa-masked"}, "feedback_vjp"),
    ({"device": "cuda"} if not torch.cuda.is_available() else {"rule_options": {"readout": "all"}}, "CUDA|top"),
    ({"rule_options": {"readout": "all"}}, "top layer"),
    ({"net": {"bias": True}}, "bias"),
    ({"rule": "sibling-cca", "net": {"arch": "fcn"}}, "cnn or lcn"),
])
def test_bad_input_gives_clear_errors(changes, match):
    from spiking_rhm.backends.norse.train import train_norse

    with pytest.raises(SpikingRHMError, match=match):
        train_norse(tiny(**changes))


def test_bp_on_norse_is_bptt_with_surrogate_gradients():
    from spiking_rhm.backends.norse.train import NorseSetup

    setup = NorseSetup(tiny(rule="bp"))
    assert type(setup.learner).__name__ == "BPTTLearner"
    train, _ = setup.rhm.split(16, 0, seed=0)
    res = setup.learner.step(setup.weights, setup.present(train), 0.1)
    assert all(float(g.norm()) > 0 for g in res.grads)  # hidden gradients are not silently zero


def test_dynamics_cli_writes_figures(tmp_path):
    from click.testing import CliRunner

    from spiking_rhm.cli import cli

    result = CliRunner().invoke(cli, ["dynamics", "--rule", "dfa", "--v", "8", "--m", "4", "--n-c", "8", "--L", "2",
                                      "--P", "32", "--width", "8", "--T", "8", "--steps", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("rasters", "membrane", "eligibility", "modulator", "weights"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    bad = CliRunner().invoke(cli, ["dynamics", "--rule", "nope", "--out", str(tmp_path)])
    assert bad.exit_code == 2


def learning_config(rule, T=10):
    """The setting of experiments/spiking/curve_small.toml (T = 10) or curve_t30.toml (T = 30) at P = 384,
    seed 0, every rule at its default lr; the operating point and code of those sweeps pinned (OLD_SPIKING)."""
    from norse_helpers import OLD_SPIKING

    return RunConfig.from_dict({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}, "P": 384, "P_test": 128,
                                "rule": rule, "backend": "norse", "net": {"width": 64},
                                "optim": {"epochs": 30, "batch_size": 32, "min_steps": 400},
                                "spiking": {**OLD_SPIKING, "T": T, "max_rate": 1000.0}})


@pytest.fixture(scope="module")
def spiking_control():
    """Spiking random-features (frozen LIF hierarchy, trained readout): measured test error 0.83 (seed 1: 0.80)."""
    from spiking_rhm.backends.norse.train import train_norse

    return train_norse(learning_config("random-features"))


def test_spiking_dfa_learns_beyond_the_random_feature_control(spiking_control):
    """Chance 7/8.  Measured (seed 0): dfa test error 0.53 (seed 1: 0.42), control 0.83; rate dfa 0.27 / 0.10."""
    from spiking_rhm.backends.norse.train import train_norse

    m = train_norse(learning_config("dfa"))
    assert m["curve"]["train_loss"][-1] < m["curve"]["train_loss"][0] - 0.2
    assert m["test_error"] < 0.7
    assert m["test_error"] < spiking_control["test_error"] - 0.15


@pytest.fixture(scope="module")
def spiking_control_t30():
    """The control at T = 30: measured test error 0.75 (seed 1: 0.73)."""
    from spiking_rhm.backends.norse.train import train_norse

    return train_norse(learning_config("random-features", T=30))


def test_spiking_clapp_learns_beyond_the_random_feature_control(spiking_control_t30):
    """Chance 7/8.  Measured (seed 0, T = 30, default lr 4): spiking clapp 0.47 (seed 1: 0.57), control 0.75.

    At T = 10 it does not (0.72 vs 0.74: the spiking update's cosine with the rate update is 0.29 there),
    see docs/results_spiking.md."""
    from spiking_rhm.backends.norse.train import train_norse

    m = train_norse(learning_config("clapp", T=30))
    assert m["test_error"] < 0.65 and m["test_error"] < spiking_control_t30["test_error"] - 0.1


def test_spiking_sibling_cca_learns_beyond_the_random_feature_control(spiking_control_t30):
    """Branch-local rule (issue 6) on Norse.  Measured (seed 0, T = 30, default lr 100): 0.28 (seed 1: 0.20),
    control 0.75; rate sibling-cca 0.02 / 0.07 (docs/results_spiking.md)."""
    from spiking_rhm.backends.norse.train import train_norse

    m = train_norse(learning_config("sibling-cca", T=30))
    assert not m["diverged"]
    assert m["test_error"] < 0.45 and m["test_error"] < spiking_control_t30["test_error"] - 0.3
