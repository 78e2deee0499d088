"""spiking-rhm train / rules through click's runner."""

import json

import pytest
from click.testing import CliRunner

from spiking_rhm.cli import cli

BASE = ["train", "--backend", "rate", "--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2", "--P", "256",
        "--seed", "0", "--width", "32", "--epochs", "3", "--quiet"]


def _run(args):
    return CliRunner().invoke(cli, args)


def test_train_prints_test_error_last_and_writes_record(tmp_path):
    out = tmp_path / "rec.json"
    res = _run([*BASE, "--rule", "bp", "--out", str(out)])
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("test_error: ") and 0 <= float(last.split()[1]) <= 1
    rec = json.loads(out.read_text())
    assert rec["rule"] == "bp" and rec["status"] == "ok" and rec["config"]["net"]["width"] == 32
    assert abs(rec["test_error"] - float(last.split()[1])) < 1e-4


def test_options_and_config_file(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('rule = "dfa"\n[rhm]\nv = 8\nm = 4\nn_c = 8\ns = 2\nL = 2\n[optim]\nepochs = 2\n')
    res = _run(["train", "--config", str(cfg), "--P", "128", "--width", "16", "--quiet",
                "--option", "feedback_shape=shared", "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["rule"] == "dfa" and rec["config"]["rule_options"] == {"feedback_shape": "shared"}
    assert rec["config"]["optim"]["epochs"] == 2


@pytest.mark.parametrize("extra,needle", [
    (["--rule", "nope"], "unknown rule"),
    (["--rule", "dfa", "--option", "colour=1"], "takes no option"),
    (["--rule", "dfa", "--option", "colour"], "key=value"),
    (["--rule", "dfa", "--backend", "quantum"], "unknown backend"),
    (["--rule", "bp", "--option", "readout=all"], "readout"),
    (["--rule", "dfa", "--backend", "lava"], "spiking-rhm export"),
    (["--rule", "bp", "--backend", "brian2"], "not available on the brian2 back end"),
    (["--rule", "dfa", "--option", "spiking.neuron=adex"], "needs --backend brian2"),
    (["--rule", "dfa", "--backend", "brian2", "--option", "spiking.neuron=hh"], "unknown spiking.neuron"),
])
def test_bad_input_exit_2(extra, needle):
    res = _run([*BASE, *extra])
    assert res.exit_code == 2
    assert needle in res.output


@pytest.mark.parametrize("extra,needle", [
    (["--neuron", "adex", "--option", "spiking.neuron_options.tau_w=0"], "adex: delta_t and tau_w must be > 0"),
    (["--neuron", "adex", "--option", "spiking.neuron_options.tau=1"], "has no option(s) tau"),
    (["--neuron", "hh"], "unknown spiking.neuron 'hh'"),
])
def test_curve_bad_neuron_exit_2(tmp_path, extra, needle):
    res = _run(["curve", "--rule", "dfa", "--backend", "brian2", *BASE[3:13], "--P", "64", "--out", str(tmp_path / "s"),
                *extra])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0]


def test_rules_lists_every_registered_rule():
    from spiking_rhm.rules import available_rules

    res = _run(["rules"])
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(available_rules())
    bp = next(line for line in lines if line.startswith("bp "))
    assert "reference" in bp and " supervised" in bp


def test_section_options_and_min_steps_reach_the_config():
    from spiking_rhm.cli.options import parse_option
    from spiking_rhm.cli.train import build_config

    cfg = build_config(None, {"rule": "dfa", "min_steps": 50},
                       [parse_option("optim.lr=0.5"), parse_option("feedback_shape=shared"), parse_option("net.bias=true")])
    assert cfg.optim.min_steps == 50 and cfg.optim.lr == 0.5 and cfg.net.bias is True
    assert cfg.rule_options == {"feedback_shape": "shared"}
    assert cfg.optim.n_epochs(steps_per_epoch=2) == max(cfg.optim.epochs, 25)


@pytest.mark.parametrize("backend, option", [("norse", "online_readout=joint"), ("norse", "readout_lr=0.5")])
def test_back_end_options_pass_the_rule_check(tmp_path, backend, option):
    """A back end's own options (its BACKEND_OPTIONS) are not taken for unknown rule options."""
    pytest.importorskip("norse")
    out = tmp_path / "r.json"
    res = _run(["train", "--backend", backend, "--rule", "clapp", "--v", "8", "--m", "4", "--nc", "8", "--s", "2",
                "--L", "2", "--P", "32", "--P-test", "16", "--width", "8", "--epochs", "1", "--quiet",
                "--option", "spiking.T=4", "--option", option, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert set(json.loads(out.read_text())["config"]["rule_options"]) == {option.split("=")[0]}
