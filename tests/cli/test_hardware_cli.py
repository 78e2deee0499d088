"""spiking-rhm train --save-net -> export -> deploy, as a user runs them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from spiking_rhm.cli import cli

pytest.importorskip("nir")

TRAIN = ["train", "--rule", "dfa", "--backend", "rate", "--v", "4", "--m", "2", "--nc", "3", "--s", "2", "--L", "2",
         "--P", "16", "--P-test", "8", "--width", "6", "--epochs", "2", "--quiet"]


def _run(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def nir_file(tmp_path):
    net = tmp_path / "net.npz"
    res = _run([*TRAIN, "--save-net", net])
    assert res.exit_code == 0, res.output
    assert f"network: {net}" in res.output
    out = tmp_path / "net.nir"
    res = _run(["export", net, "--out", out, "--option", "spiking.T=10", "--option", "spiking.reset=zero",
                "--refit-readout"])
    assert res.exit_code == 0, res.output
    assert "readout refitted" in res.output and "conv1:Conv1d" in res.output and out.is_file()
    return out


def test_export_then_deploy_on_the_reference_engine(nir_file, tmp_path):
    report = tmp_path / "report.json"
    res = _run(["deploy", nir_file, "--P-test", 8, "--engine", "reference", "--target", "norse,loihi-fixed",
                "--out", report, "--quiet"])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["steps"] == 10 and set(data["targets"]) == {"norse", "loihi-fixed"}
    assert "loihi-fixed (ref)" in res.output


def test_export_normalises_the_weights_before_refitting(nir_file, tmp_path):
    out = tmp_path / "norm.nir"
    res = _run(["export", nir_file.with_suffix(".npz"), "--out", out, "--option", "spiking.reset=zero",
                "--normalise", "99.9", "--target-rate", "0.5", "--refit-readout"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("weights normalised: layer scales") and lines[1].startswith("readout refitted")
    assert out.is_file()


@pytest.mark.parametrize("args,needle", [
    (["export", "missing.npz", "--out", "x.nir"], "does not exist"),
    (["deploy", "missing.nir"], "does not exist"),
    (["export", "{net}", "--out", "x.nir", "--option", "optim.lr=3"], "spiking.<setting>"),
    (["export", "{net}", "--out", "x.nir", "--option", "spiking.colour=3"], "unknown spiking setting"),
    (["export", "{net}", "--out", "x.nir"], "spiking.reset=zero"),  # the default reset by subtraction
    (["deploy", "{nir}", "--target", "loihi-9"], "unknown target"),
    (["deploy", "{nir}", "--out", "no/such/dir/r.json"], "does not exist"),
    (["export", "{net}", "--out", "x.nir", "--profile", "spyx"], "valid profiles are native, norse"),
    (["export", "{net}", "--out", "x.nir", "--profile", "norse", "--dense"], "always dense"),
    (["export", "{net}", "--out", "x.nir", "--normalise", "0"], "--normalise takes a percentile"),
    (["export", "{net}", "--out", "x.nir", "--normalise", "99", "--target-rate", "2"], "--target-rate"),
])
def test_bad_input_is_one_line_and_exit_code_2(nir_file, args, needle):
    net = nir_file.with_suffix(".npz")
    args = [a.format(net=net, nir=nir_file) for a in args]
    res = _run(args)
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_norse_reads_the_export_with_its_own_importer(nir_file, tmp_path):
    """deploy --target norse,norse-nir: the file exported for Norse, run by norse.torch.from_nir."""
    pytest.importorskip("norse")
    report = tmp_path / "report.json"
    res = _run(["deploy", nir_file, "--P-test", 8, "--target", "norse,norse-nir", "--out", report, "--quiet"])
    assert res.exit_code == 0, res.output
    row = json.loads(report.read_text())["targets"]["norse-nir"]
    assert row["agreement_with_norse"] >= 0.99 and min(row["spike_agreement"]) >= 0.99
    res = _run(["export", nir_file.with_suffix(".npz"), "--out", tmp_path / "norse.nir", "--profile", "norse",
                "--option", "spiking.reset=zero"])
    assert res.exit_code == 0, res.output
    assert "affine1:Affine -> lif1:CubaLIF" in res.output and "norse.torch.from_nir" in res.output
    res = _run(["deploy", tmp_path / "norse.nir", "--P-test", 4, "--target", "norse"])
    assert res.exit_code == 2 and "--profile norse" in res.output


@pytest.mark.lava
def test_deploy_on_lava(nir_file):
    res = _run(["deploy", nir_file, "--P-test", 4, "--quiet"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.split()}
    assert "lava-float" in lines and "loihi-fixed" in lines
    assert lines["lava-float"].split()[2] == "1.0000"  # the same predictions as Norse
