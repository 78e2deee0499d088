"""Foreign NIR graphs in (hardware.nir_sim, deploy.evaluate_foreign, spiking-rhm run-nir).

Independent checks: this package's graphs with their metadata stripped, simulated by the generic
chain simulation, give the Norse back end's spikes and logits; a graph written by Norse's own
``to_nir`` runs and gives the spikes of ``norse.torch.from_nir`` on the same file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nir")

import nir  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from hardware_helpers import RHM, input_spikes, make_network  # noqa: E402

from hardware.deploy import evaluate_foreign, flat_trains  # noqa: E402
from hardware.nir_graph import to_nir, write_nir  # noqa: E402
from hardware.nir_sim import input_shape, load_chain, run_chain  # noqa: E402
from spiking_rhm.backends.norse.deployed import simulate  # noqa: E402
from spiking_rhm.cli import cli  # noqa: E402
from spiking_rhm.config import SpikingConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402


@pytest.mark.parametrize("arch,conv,profile,convention", [
    ("cnn", True, "native", "dirac"), ("lcn", False, "native", "dirac"), ("fcn", False, "native", "dirac"),
    ("cnn", False, "norse", "step"), ("cnn", True, "spikingjelly", "step"), ("lcn", False, "spikingjelly", "step")])
def test_chain_simulation_of_our_graphs_without_metadata_is_the_norse_network(arch, conv, profile, convention):
    """Under NIR's equations (from v = v_leak) the native, norse and spikingjelly files are the network."""
    net = make_network(arch, T=25)
    spikes = input_spikes(net, N=6)
    _, logits, trains = simulate(net, spikes, record=True)
    graph = to_nir(net, conv=conv, profile=profile)
    graph.metadata = {}
    nodes = load_chain(graph)
    out, z = run_chain(nodes, spikes.reshape(*spikes.shape[:2], *input_shape(nodes)), net.params.dt, convention)
    for got, ref in zip(z.values(), flat_trains(trains)):
        np.testing.assert_array_equal(got.reshape(ref.shape).numpy(), ref)
    np.testing.assert_allclose(out.numpy(), logits.numpy(), rtol=1e-9, atol=1e-12)


def _norse_written(path):
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    # Norse 1.1.0's to_nir writes tau = dt * tau_mem (not 1 / tau_mem_inv): tau_mem_inv = 0.1 gives tau = 10 ms
    p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(0.1))
    d = RHM.s ** RHM.L
    m = norse.SequentialState(torch.nn.Linear(RHM.v * d, 10), norse.LIFBoxCell(p), torch.nn.Linear(10, RHM.n_c),
                              norse.LIFBoxCell(p))
    with torch.no_grad():
        m[0].weight.mul_(20)
        m[2].weight.mul_(10)
    nir.write(path, norse.to_nir(m, torch.zeros(1, RHM.v * d)), compression=None)  # scalar parameters: no gzip
    return path


def test_a_norse_written_graph_runs_and_matches_norses_own_importer(tmp_path):
    path = _norse_written(tmp_path / "norse.nir")
    report = evaluate_foreign(path, RHM, SpikingConfig(T=30, max_rate=400.0), P_test=8, targets=["sim", "norse-nir"],
                              batch=5)
    assert report["nodes"] == ["input:Input", "0:Affine", "1:LIF", "2:Affine", "3:LIF", "output:Output"]
    assert report["rates_hz"]["1"] > 0
    row = report["targets"]["norse-nir"]
    assert row["agreement_with_sim"] == 1.0 and row["spike_agreement"] == [1.0, 1.0]
    res = CliRunner().invoke(cli, ["run-nir", str(path), "--v", "4", "--m", "2", "--nc", "3", "--s", "2", "--L", "2",
                                   "--P-test", "4", "--option", "spiking.T=10"])
    assert res.exit_code == 0, res.output
    assert "sim            test error" in res.output


def test_a_snntorch_written_graph_runs_and_matches_snntorchs_own_importer(tmp_path):
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    d = RHM.s ** RHM.L
    leaky = lambda n, **kw: snn.Leaky(beta=torch.full((n,), 0.9), threshold=torch.ones(n),  # noqa: E731
                                      init_hidden=True, reset_mechanism="zero", **kw)
    # per-neuron beta and threshold: with scalars, snnTorch 1.0's own export fails NIR 1.0.8's type inference
    net = torch.nn.Sequential(torch.nn.Linear(RHM.v * d, 10), leaky(10), torch.nn.Linear(10, RHM.n_c),
                              leaky(RHM.n_c, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
    path = tmp_path / "snntorch.nir"
    nir.write(path, export_to_nir(net, torch.zeros(RHM.v * d)))
    # snnTorch writes tau = 1e-4 / (1 - beta), r = tau / 1e-4: its files are meant for dt = 1e-4
    report = evaluate_foreign(path, RHM, SpikingConfig(T=30, max_rate=400.0), P_test=8,
                              targets=["sim", "snntorch-nir"], batch=5, dt=1e-4)
    assert report["rates_hz"]["1"] > 0
    row = report["targets"]["snntorch-nir"]
    assert row["agreement_with_sim"] == 1.0 and row["spike_agreement"] == [1.0, 1.0]


def test_bad_foreign_graphs_get_one_line(tmp_path):
    net = make_network("cnn")
    graph = to_nir(net)
    graph.nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                        padding=np.array([0, 0]))
    with pytest.raises(ConfigError, match="node 'pool' \\(SumPool2d\\) is not supported"):
        load_chain(graph)
    stripped = to_nir(make_network("fcn"))
    stripped.metadata = {}
    res = CliRunner().invoke(cli, ["deploy", str(write_nir(tmp_path / "foreign.nir", stripped)), "--P-test", "4"])
    assert res.exit_code == 2 and "spiking-rhm run-nir" in res.output and "Traceback" not in res.output
    path = write_nir(tmp_path / "fcn.nir", to_nir(make_network("fcn")))
    wrong = RHM.__class__(v=5, m=2, n_c=3, s=2, L=2)
    with pytest.raises(ConfigError, match="does not take the (rate|regular) code"):
        evaluate_foreign(path, wrong, SpikingConfig(T=5), P_test=2, convention="dirac")
    with pytest.raises(ConfigError, match="unknown input convention"):
        evaluate_foreign(path, RHM, SpikingConfig(T=5), P_test=2, convention="box")
    res = CliRunner().invoke(cli, ["run-nir", str(path), "--v", "4", "--m", "2", "--nc", "2", "--s", "2", "--L", "2",
                                   "--convention", "dirac", "--P-test", "2"])
    assert res.exit_code == 2 and "n_c = 2 classes" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["run-nir", str(path), "--v", "4", "--m", "2", "--nc", "3", "--s", "2", "--L", "2",
                                   "--dt", "0", "--P-test", "2"])
    assert res.exit_code == 2 and "dt must be positive" in res.output
    res = CliRunner().invoke(cli, ["run-nir", str(path), "--v", "4", "--m", "2", "--nc", "3", "--s", "2", "--L", "2",
                                   "--option", "optim.lr=1"])
    assert res.exit_code == 2 and "run-nir takes spiking.code/T/dt/max_rate" in res.output
