"""Export profiles (hardware.nir_graph.PROFILES) read by the libraries' own NIR importers.

Independent checks: the file each profile writes, read back by Norse's / snnTorch's importer and
run step by step, gives the spikes of the Norse back end's own simulation of the network (Norse:
equal up to float32; snnTorch: equal once its state starts at the rest state, the one difference
its importer cannot express, which the deploy report measures).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nir")

import nir  # noqa: E402
from hardware_helpers import input_spikes, make_network  # noqa: E402

from hardware.deploy import READERS, evaluate_deployment, flat_trains, run_reader  # noqa: E402
from hardware.nir_graph import PROFILES, from_nir, lif_constants, to_nir, write_nir  # noqa: E402
from spiking_rhm.backends.norse.deployed import simulate  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402


def _reference(net, N=12):
    spikes = input_spikes(net, N=N)
    _, logits, trains = simulate(net, spikes, record=True)
    return spikes, logits.numpy(), flat_trains(trains)


@pytest.mark.parametrize("arch", ["cnn", "lcn", "fcn"])
def test_norse_profile_read_by_norse_from_nir_gives_the_norse_spikes(tmp_path, arch):
    pytest.importorskip("norse")
    net = make_network(arch, T=30)
    spikes, logits, ref = _reference(net)
    path = write_nir(tmp_path / "net.nir", to_nir(net, profile="norse"))
    res = run_reader("norse-nir", path, spikes)
    for z, z_ref in zip(res.trains, ref):
        assert z.shape == z_ref.shape
        assert (z == z_ref).mean() >= 0.999  # float32 importer against the float64 reference
    np.testing.assert_array_equal(res.logits.argmax(1), logits.argmax(1))
    np.testing.assert_allclose(res.logits, logits, rtol=0, atol=1e-4 * np.abs(logits).max())


def test_norse_profile_keeps_the_current_jump_and_the_rest_state():
    c = lif_constants(make_network("cnn").params)
    code = PROFILES["norse"].code(c)
    r, V = code.cuba["r"], code.cuba["v_leak"]
    # neuron drive V + r s with s = V + i / r: rest (v_leak - v_reset) + i, and the jump per unit of w is 1
    assert V * (1 + r) == pytest.approx(c.v_leak - c.v_reset, rel=1e-15)
    assert r * code.cuba["w_in"] * c.dt / c.tau_syn == pytest.approx(1.0, rel=1e-12)
    assert code.cuba["v_threshold"] == c.v_th - c.v_reset


def test_snntorch_profile_is_exact_from_the_rest_state_and_the_difference_is_the_start(tmp_path):
    pytest.importorskip("snntorch")
    net = make_network("cnn", T=30)
    spikes, logits, ref = _reference(net)
    path = write_nir(tmp_path / "net.nir", to_nir(net, profile="snntorch"))
    as_read = run_reader("snntorch-nir", path, spikes)
    # The importer starts syn and mem at 0; started at the rest state instead, it is the Norse network.
    c = lif_constants(net.params)
    rest = c.v_leak - c.v_reset
    module = READERS["snntorch-nir"].load(nir.read(path))
    N = spikes.shape[1]
    x = spikes.reshape(spikes.shape[0], N, -1).float()
    record = {}
    for l in range(net.spec.depth):
        lif = module.get_submodule(f"lif{l + 1}")
        n = ref[l].shape[2]
        lif.syn = torch.full((N, n), rest)
        lif.mem = torch.full((N, n), rest * c.tau_mem / c.dt)  # (v_leak - v_reset) / b
        lif.register_forward_hook(lambda m, i, out, l=l: record.setdefault(l, []).append(out.numpy().astype(np.int8)))
    with torch.no_grad():
        for t in range(x.shape[0]):
            module(x[t])
    for l in range(net.spec.depth):
        assert (np.stack(record[l]) == ref[l]).mean() >= 0.999
    # as read: measurably different spikes, fewer of them (the neurons start below rest, the leak drive at 0)
    agreement = [(z == z_ref).mean() for z, z_ref in zip(as_read.trains, ref)]
    assert all(0.5 < a < 0.999 for a in agreement)
    assert all(z.sum() < z_ref.sum() for z, z_ref in zip(as_read.trains, ref))


@pytest.mark.parametrize("arch", ["cnn", "fcn"])
def test_spikingjelly_profile_is_exact_from_the_rest_state_and_the_difference_is_the_start(tmp_path, arch):
    pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    net = make_network(arch, T=30)
    spikes, logits, ref = _reference(net)
    graph = to_nir(net, profile="spikingjelly")
    assert isinstance(graph.nodes["conv1" if arch == "cnn" else "affine1"], nir.Conv1d if arch == "cnn" else nir.Affine)
    path = write_nir(tmp_path / "net.nir", graph)
    as_read = run_reader("spikingjelly-nir", path, spikes)
    # SpikingJelly starts v at v_reset; started at rest (v = 0 in the profile's units) it is the Norse network
    module = READERS["spikingjelly-nir"].load(nir.read(path))
    T, N = spikes.shape[:2]
    x = spikes.reshape(T, N, *graph.nodes["input"].input_type["input"]).float()
    record = {}
    state = {name: None for name in graph.nodes}
    for l in range(net.spec.depth):
        shape = (N, *graph.nodes[f"lif{l + 1}"].v_threshold.shape)
        state[f"lif{l + 1}"] = (torch.zeros(shape), torch.zeros(shape))  # (v, c)
        module.get_submodule(f"lif{l + 1}").register_forward_hook(
            lambda m, i, out, l=l: record.setdefault(l, []).append(out[0].reshape(N, -1).numpy().astype(np.int8)))
    with torch.no_grad():
        for t in range(T):
            _, state = module(x[t], state)
    for l in range(net.spec.depth):
        assert (np.stack(record[l]) == ref[l]).mean() >= 0.999
    agreement = [(z == z_ref).mean() for z, z_ref in zip(as_read.trains, ref)]
    assert all(0.5 < a < 0.999 for a in agreement)


def test_profiles_are_refused_where_they_do_not_apply():
    net = make_network("cnn")
    with pytest.raises(ConfigError, match="unknown export profile"):
        to_nir(net, profile="spyx")
    with pytest.raises(ConfigError, match="--profile norse"):
        from_nir(to_nir(net, profile="norse"))
    flat = to_nir(net, profile="norse")
    assert not any(isinstance(n, (nir.Conv1d, nir.Flatten, nir.I)) for n in flat.nodes.values())
    assert flat.metadata["profile"] == "norse"


def test_deploy_report_has_a_row_per_reader():
    pytest.importorskip("norse")
    net = make_network("lcn", T=20)
    targets = ["norse", "norse-nir"] + (["snntorch-nir"] if _has("snntorch") else [])
    report = evaluate_deployment(to_nir(net, conv=False), P_test=8, targets=targets, batch=5)
    rows = report["targets"]
    assert rows["norse-nir"]["agreement_with_norse"] == 1.0
    assert min(rows["norse-nir"]["spike_agreement"]) >= 0.999 and rows["norse-nir"]["profile"] == "norse"
    if "snntorch-nir" in rows:
        assert len(rows["snntorch-nir"]["spike_agreement"]) == 2


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
