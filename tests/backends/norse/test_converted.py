"""The ``norse-converted`` back end: a rate-trained network converted to spikes is one record of the one schema.

Checked against independent computations: the rate back end's own record of the same config (trained
separately), the rate network's forward pass (``rate_models.networks.forward`` on the saved weights), and the
saved converted network re-simulated by :func:`deployed.held_out_error`.
"""

import numpy as np
import pytest
import torch

pytest.importorskip("norse")

import rate_models  # noqa: E402,F401  (registers the rate back end)
from rate_models.networks import NetParams, forward, make_spec  # noqa: E402
from spiking_rhm import api  # noqa: E402
from spiking_rhm.backends.norse.deployed import features, from_checkpoint, held_out_error, run_points  # noqa: E402
from spiking_rhm.checkpoint import Checkpoint  # noqa: E402
from spiking_rhm.config import RunConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402
from spiking_rhm.rhm import onehot  # noqa: E402

pytestmark = pytest.mark.norse

RHM = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}
WIDTH = 24


def config(backend="norse-converted", rule="bp", **changes):
    data = {"rhm": RHM, "P": 320, "P_test": 192, "rule": rule, "backend": backend, "seed": 1,
            "net": {"width": WIDTH}, "optim": {"epochs": 12, "batch_size": 32}}
    for section, values in changes.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return RunConfig.from_dict(data)


@pytest.fixture(scope="module")
def bp_runs(tmp_path_factory):
    """The rate run and its conversion (defaults: T = 30, p99.9, the rate readout), both with their networks."""
    tmp = tmp_path_factory.mktemp("converted")
    rate = api.train(config("rate"), checkpoint=tmp / "rate.npz")
    conv = api.train(config(), checkpoint=tmp / "conv.npz")
    return rate, conv, Checkpoint.load(tmp / "rate.npz"), Checkpoint.load(tmp / "conv.npz")


def rate_predictions(ckpt: Checkpoint, inputs) -> np.ndarray:
    """The rate network's class predictions by ``rate_models``' forward pass on the checkpoint's weights
    (readout ``hbar . R + c``: ``beta = R H``)."""
    spec = make_spec("cnn", 8, 4, 2, 2, WIDTH, 8)
    weight = torch.as_tensor(ckpt.readout_weight)
    params = NetParams(spec, tuple(torch.as_tensor(w) for w in ckpt.hidden), (None, None), weight * weight.shape[0])
    logits, _ = forward(params, onehot(inputs, 8, dtype=torch.float64))
    return (logits + torch.as_tensor(ckpt.readout_bias)).argmax(1).numpy()


def test_the_converted_record_holds_the_rate_run_the_conversion_and_the_cost(bp_runs):
    rate, conv, _, _ = bp_runs
    cfg = config()
    assert conv["backend"] == "norse-converted" and conv["status"] == "ok" and conv["seed"] == 1
    assert RunConfig.from_dict(conv["config"]) == cfg and conv["run_id"] == cfg.run_id() != rate["run_id"]
    m = conv["metrics"]
    # the rate run inside it is the rate back end's own run of the same config, trained separately
    assert m["rate"]["test_error"] == rate["test_error"] and m["rate"]["train_error"] == rate["train_error"]
    assert m["curve"] == rate["metrics"]["curve"] and m["lr"] == rate["metrics"]["lr"]
    c = m["conversion"]
    assert (c["normalise"], c["percentile"], c["target"], c["readout"], c["rate_readout"]) == \
        (True, 99.9, 1.0, "rate", "delta")
    assert len(c["lambda"]) == len(c["factors"]) == 2 and all(x > 0 for x in c["lambda"])
    assert m["spiking"]["T"] == 30 and m["spiking"]["code"] == "regular" and m["spiking"]["widths"] == [WIDTH] * 2
    assert m["evaluation"] == "rate network's online readout"
    assert m["online_readout"]["test_error"] == conv["test_error"] == m["transferred_readout"]["test_error"]
    assert 0 <= m["probe"]["test_error"] <= 1 and m["data"]["test_points"] == 192
    e = m["energy"]
    assert e["layers"] == ["input", "layer1", "layer2"] and len(e["spikes"]) == len(e["synops"]) == 3
    # a spike reaches the H units of the next layer's patch, a top-layer spike the 8 readout units
    assert e["synops"][:2] == pytest.approx([e["spikes"][0] * WIDTH, e["spikes"][1] * WIDTH])
    assert e["synops"][2] == pytest.approx(e["spikes"][2] * 8) and e["spikes_total"] > 0


def test_the_recorded_error_is_that_of_the_saved_converted_network(bp_runs):
    """The checkpoint holds the normalised network with the readout it was scored with."""
    _, conv, _, saved = bp_runs
    assert saved.backend == "norse-converted" and saved.readout_kind == "delta"
    net = from_checkpoint(saved)
    assert held_out_error(net, seed=conv["seed"] + 1) == conv["test_error"]


def test_normalisation_keeps_the_rate_networks_function(bp_runs):
    """Normalised weights and readout compute the rate network's logits (ReLU homogeneity), up to float."""
    _, _, rate_net, saved = bp_runs
    _, test = run_points(config())
    np.testing.assert_array_equal(rate_predictions(rate_net, test.inputs), rate_predictions(saved, test.inputs))


def test_converted_error_tends_to_the_rate_error_for_near_if_neurons_and_long_windows(bp_runs, tmp_path):
    """With near-IF neurons (tau_mem = 1 s) and T = 300 the converted network predicts what the rate network
    predicts (the rate forward pass) on nearly every held-out point; at T = 5 on far fewer."""
    _, _, rate_net, _ = bp_runs
    cfg = config()
    _, test = run_points(cfg)
    want = rate_predictions(rate_net, test.inputs)
    rate_error = float((want != test.labels).mean())
    agree, errors = {}, {}
    for T in (5, 300):
        changed = config(spiking={"T": T, "tau_mem": 1.0})
        record = api.train(changed, checkpoint=tmp_path / f"{T}.npz")
        _, logits = features(from_checkpoint(Checkpoint.load(tmp_path / f"{T}.npz")), test.inputs, cfg.seed + 1)
        agree[T] = float((logits.argmax(1).numpy() == want).mean())
        errors[T] = record["test_error"]
        assert record["metrics"]["rate"]["test_error"] == pytest.approx(rate_error, abs=2 / len(want))
    assert agree[300] >= 0.97 and abs(errors[300] - rate_error) <= 0.03
    assert agree[5] < agree[300] - 0.1


def test_refitted_readout_scores_the_probe_on_the_spiking_features(bp_runs):
    _, conv, _, _ = bp_runs
    record = api.train(config(convert={"readout": "refitted", "normalise": False}))
    m = record["metrics"]
    assert m["evaluation"] == "linear probe" and record["test_error"] == m["probe"]["test_error"]
    assert "lambda" not in m["conversion"] and m["conversion"]["normalise"] is False
    assert m["rate"]["test_error"] == conv["metrics"]["rate"]["test_error"]  # the same rate network


def test_an_unsupervised_rule_is_read_out_by_its_rate_probe():
    record = api.train(config(rule="sibling-cca", P=256, optim={"epochs": 3}))
    m = record["metrics"]
    assert m["conversion"]["rate_readout"] == "probe" and m["evaluation"] == "rate network's linear probe"
    assert m["online_readout"] is None and record["test_error"] == m["transferred_readout"]["test_error"]
    assert m["rate"]["evaluation"] == "linear probe"


@pytest.mark.parametrize("change, match", [
    ({"convert": {"readout": "spikes"}}, "unknown convert.readout 'spikes'"),
    ({"convert": {"percentile": 0.0}}, "convert.percentile must be"),
    ({"convert": {"target": 2.0}}, "convert.target must be"),
    ({"convert": {"n_points": 0}}, "convert.n_points must be"),
    ({"spiking": {"weight_bits": 8}}, "weight_bits"),
])
def test_bad_conversion_settings_are_config_errors(change, match):
    with pytest.raises(ConfigError, match=match):
        config(**change)


@pytest.mark.parametrize("change, match", [
    ({"rule_options": {"readout": "all"}}, "readout = top"),
    ({"spiking": {"readout": "membrane"}}, "spike counts"),
    ({"optim": {"validation": 0.2}}, "optim.validation"),
    ({"net": {"width": WIDTH, "bias": True}}, "bias"),
])
def test_what_cannot_be_converted_is_refused_before_training(change, match, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setitem(api.BACKEND_TRAINERS, "rate", never)
    with pytest.raises(ConfigError, match=match):
        api.train(config(**change))
