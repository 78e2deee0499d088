"""experiments/spiking/scca_layers.py: saved weights measured again (--load) reproduce the training run's final
measurement, and a changed forward setting is measured and labelled as such."""

import dataclasses
import json

import pytest
import torch

from experiments.spiking.scca_layers import compact, main
from spiking_rhm.backends.norse.build import build_network
from spiking_rhm.backends.norse.network import initial_state, run_window
from spiking_rhm.config import RunConfig
from spiking_rhm.rhm import onehot

TINY = ["--L", "2", "--P", "64", "--P-test", "64", "--width", "16", "--epochs", "1", "--min-steps", "2", "--at", "",
        "--n-points", "64", "--models", "norse,rate", "--spiking", "T=10"]


def _rows(path):
    return [json.loads(line) for line in open(path) if '"layers"' in line]


def test_loaded_weights_give_the_final_measurement_of_the_run_that_saved_them(tmp_path, capsys):
    trained, loaded = tmp_path / "trained.jsonl", tmp_path / "loaded.jsonl"
    main(["--backend", "norse", *TINY, "--out", str(trained), "--save", str(tmp_path / "net")])
    main(["--load", str(tmp_path / "net.norse.pt"), "--models", "norse,rate", "--n-points", "64",
          "--out", str(loaded)])
    main(["--load", str(tmp_path / "net.norse.pt"), "--models", "norse", "--n-points", "64", "--spiking", "T=40",
          "--out", str(loaded)])
    final, same_norse, same_rate, longer = _rows(trained), *_rows(loaded)
    assert [r["model"] for r in final] == ["norse", "rate"]
    assert same_norse["layers"] == final[0]["layers"] and same_rate["layers"] == final[1]["layers"]
    assert same_norse["measured_with"] == {} and same_norse["spiking"] == {"T": "10"}
    assert longer["measured_with"] == {"T": "40"} and longer["spiking"] == {"T": "10"}
    # the longer window, simulated directly with the saved weights on the same points (seed 11 of the code)
    saved = torch.load(tmp_path / "net.norse.pt", weights_only=False)
    cfg = RunConfig.from_dict(saved["config"])
    cfg = cfg.replace(spiking=dataclasses.replace(cfg.spiking, T=40))
    rhm = cfg.rhm.build()
    train, _ = rhm.split(*cfg.sizes(), seed=cfg.seed)
    encoder, spec, params = build_network(cfg, rhm.v)
    spikes = encoder(onehot(train.inputs[:64], rhm.v), torch.Generator().manual_seed(11))
    assert spikes.shape[0] == 40
    res, _ = run_window(spikes, saved["hidden"], spec, params, initial_state(spec, params, 64))
    for layer, counts in zip(longer["layers"], res.counts):
        assert layer["spikes_per_step"] == pytest.approx(float(counts.mean()) / 40, rel=1e-6)
    assert longer["layers"][0]["spikes_per_step"] != final[0]["layers"][0]["spikes_per_step"]
    capsys.readouterr()
    compact(str(loaded))
    assert "| norse | T = 10, P = 64; measured at T = 40 | 1 |" in capsys.readouterr().out
