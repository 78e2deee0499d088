"""A network trained with a detailed brian2 neuron is not exported as a different (LIF) network silently: NIR
export and the deployed network refuse it in one line, or run its weights in the LIF when asked to."""

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("nir")

from spiking_rhm.checkpoint import Checkpoint  # noqa: E402
from spiking_rhm.cli import cli  # noqa: E402
from spiking_rhm.config import RunConfig  # noqa: E402


def _checkpoint(tmp_path, neuron, options=None):
    from spiking_rhm.backends.norse.build import build_network

    cfg = RunConfig.from_dict(dict(rule="dfa", backend="brian2", P=64, rhm=dict(v=8, m=4, n_c=8, s=2, L=2),
                                   net={"width": 8}, spiking={"neuron": neuron, "neuron_options": options or {}}))
    _, spec, _ = build_network(cfg, cfg.rhm.v)
    rng = np.random.default_rng(0)
    hidden = tuple(rng.normal(size=s) for s in spec.weight_shapes())
    path = tmp_path / f"{neuron}.npz"
    Checkpoint(cfg, hidden, rng.normal(size=(8, 8)), np.zeros(8), "delta", "brian2").save(path)
    return path


def _export(path, tmp_path, *options):
    args = ["export", str(path), "--out", str(tmp_path / "net.nir"), "--option", "spiking.reset=zero"]
    return CliRunner().invoke(cli, [*args, *[a for o in options for a in ("--option", o)]])


@pytest.mark.parametrize("neuron,options", [("adex", None), ("cond", None), ("two-compartment", {"g_c": 2.0}),
                                            ("lif", {"refractory": 2e-3})])
def test_export_of_a_detailed_neuron_is_one_line_error(tmp_path, neuron, options):
    res = _export(_checkpoint(tmp_path, neuron, options), tmp_path)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert f"brian2 model {neuron!r}" in lines[0] and "cannot express" in lines[0]
    assert not (tmp_path / "net.nir").exists()


def test_export_as_lif_when_asked_and_no_detailed_model_by_override(tmp_path):
    res = _export(_checkpoint(tmp_path, "adex"), tmp_path, "spiking.neuron=lif")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "net.nir").exists()
    res = _export(_checkpoint(tmp_path, "lif"), tmp_path, "spiking.neuron=cond")
    assert res.exit_code == 2 and "brian2 model 'cond'" in res.output
