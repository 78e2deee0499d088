"""NIR export/import of trained networks (hardware/nir_graph.py).

Independent checks: the NIR weight layouts applied to flattened inputs equal the Norse back end's
own patch/connectivity code; a graph written to disk and read back rebuilds a network whose
spikes are identical to the original's on the same input; taus are in seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("nir")

import nir  # noqa: E402
from hardware_helpers import input_spikes, make_network  # noqa: E402

from hardware.nir_graph import (  # noqa: E402
    chain,
    conv_weight,
    dense_weight,
    from_nir,
    package_metadata,
    read_nir,
    to_nir,
    undense_weight,
    unconv_weight,
    write_nir,
)
from spiking_rhm.backends.norse.deployed import simulate  # noqa: E402
from spiking_rhm.backends.norse.neurons import Local, Shared, patches  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402

ARCHS = [("cnn", True), ("cnn", False), ("lcn", False), ("fcn", False)]


@pytest.mark.parametrize("untied,patch", [(False, 2), (True, 2), (False, None)])
def test_dense_weight_equals_the_norse_layer_on_flattened_inputs(untied, patch):
    rng = np.random.default_rng(0)
    C, P_in, H = 3, 4, 5
    P = 1 if patch is None else P_in // patch
    K = C * (P_in if patch is None else patch)
    W = rng.normal(size=(P, H, K) if untied else (H, K))
    x = rng.normal(size=(2, C, P_in))  # NIR layout (channels, positions)
    pat = patches(torch.as_tensor(x).transpose(1, 2), patch)  # the Norse path: channel-last patches
    ref = (Local if untied else Shared).apply(pat, torch.as_tensor(W)).transpose(1, 2)  # [N, H, P]
    M = dense_weight(W, P_in, patch)
    out = x.reshape(2, -1) @ M.T
    np.testing.assert_allclose(out, ref.reshape(2, -1).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(undense_weight(M, P_in, patch, H, untied), W)


def test_conv_weight_is_a_conv1d_with_stride_s():
    rng = np.random.default_rng(1)
    C, s, H, d = 3, 2, 4, 8
    W = rng.normal(size=(H, s * C))
    x = rng.normal(size=(2, C, d))
    conv = torch.nn.functional.conv1d(torch.as_tensor(x), torch.as_tensor(conv_weight(W, s)), stride=s)
    ref = Shared.apply(patches(torch.as_tensor(x).transpose(1, 2), s), torch.as_tensor(W)).transpose(1, 2)
    np.testing.assert_allclose(conv.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(unconv_weight(conv_weight(W, s)), W)


@pytest.mark.parametrize("arch,conv", ARCHS)
def test_file_round_trip_gives_identical_spikes(tmp_path, arch, conv):
    net = make_network(arch)
    graph = to_nir(net, conv=conv)
    path = write_nir(tmp_path / "net.nir", graph)
    back = read_nir(path)  # nir.read re-runs infer_types / check_types
    assert isinstance(back.nodes["conv1" if conv else "linear1"], nir.Conv1d if conv else nir.Linear)
    rebuilt = from_nir(back)
    for a, b in zip(net.hidden, rebuilt.hidden):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-14)
    spikes = input_spikes(net)
    counts, logits, trains = simulate(net, spikes, record=True)
    counts2, logits2, trains2 = simulate(rebuilt, spikes, record=True)
    for z, z2 in zip(trains, trains2):
        assert torch.equal(z, z2)
    np.testing.assert_allclose(logits2.numpy(), logits.numpy(), rtol=1e-10, atol=1e-12)


def test_neuron_parameters_are_in_seconds_and_the_jump_convention():
    net = make_network("cnn")
    graph = to_nir(net)
    lif = graph.nodes["lif1"]
    cfg = net.config.spiking
    np.testing.assert_allclose(lif.tau_mem, cfg.tau_mem)
    np.testing.assert_allclose(lif.tau_syn, cfg.tau_syn)
    np.testing.assert_allclose(lif.w_in, cfg.tau_syn)  # a unit-area spike through w makes the current jump by w
    np.testing.assert_allclose(lif.v_threshold, cfg.v_th)
    assert lif.tau_mem.shape == (net.spec.widths[0], net.spec.positions[1])
    assert graph.metadata["dt"] == cfg.dt and graph.metadata["time_unit"] == "s"
    assert [type(graph.nodes[n]).__name__ for n in chain(graph)] == [
        "Input", "Conv1d", "CubaLIF", "Conv1d", "CubaLIF", "Flatten", "Affine", "I", "Output"]


def test_readout_is_the_time_average_of_the_integrated_affine_output():
    """logits = (W counts + b t_end) / t_end reproduces the network's hbar . R + c."""
    net = make_network("lcn")
    graph = to_nir(net, conv=False)
    counts, logits, _ = simulate(net, input_spikes(net))
    top = counts[-1].transpose(1, 2).reshape(counts[-1].shape[0], -1).numpy()  # [N, H*P], index j*P + p
    t_end = net.steps * net.params.dt
    ro = graph.nodes["readout"]
    np.testing.assert_allclose((top @ ro.weight.T + ro.bias * t_end) / t_end, logits.numpy(), rtol=1e-10, atol=1e-12)


def test_clear_errors(tmp_path):
    net = make_network("cnn")
    graph = to_nir(net)
    with pytest.raises(ConfigError, match="does not exist"):
        read_nir(tmp_path / "missing.nir")
    (tmp_path / "junk.nir").write_text("not hdf5")
    with pytest.raises(ConfigError, match="not a readable NIR graph"):
        read_nir(tmp_path / "junk.nir")
    with pytest.raises(Exception, match="does not exist"):
        write_nir(tmp_path / "no" / "dir.nir", graph)
    foreign = nir.NIRGraph(nodes=dict(graph.nodes), edges=list(graph.edges), metadata={"dt": 1e-3})
    with pytest.raises(ConfigError, match="not written by spiking-rhm"):
        package_metadata(foreign)
    graph.nodes["lif2"].tau_mem = graph.nodes["lif2"].tau_mem * 2
    with pytest.raises(ConfigError, match="lif2.tau_mem"):
        from_nir(graph)
    cyclic = to_nir(net)
    cyclic.edges.append(("output", "input"))
    with pytest.raises(ConfigError):
        chain(cyclic)


def test_untied_weights_that_should_be_shared_are_rejected():
    net = make_network("cnn")
    graph = to_nir(net, conv=False)
    M = graph.nodes["linear1"].weight.copy()
    M[0, 0] += 1.0  # position 0 now differs from position 1
    graph.nodes["linear1"].weight = M
    with pytest.raises(ConfigError, match="differ between positions"):
        from_nir(graph)


@pytest.mark.parametrize("changes, match", [({"reset": "subtract"}, "spiking.reset=zero"),
                                            ({"v_init": "half"}, "spiking.reset=zero"),
                                            ({"v_init": "uniform", "reset": "zero"}, "random potential"),
                                            ({"readout": "membrane"}, "spiking.readout=counts")])
def test_operating_points_a_cuba_lif_cannot_express_are_refused(changes, match):
    from spiking_rhm.backends.norse.network import float64_parameters
    from spiking_rhm.backends.norse.train import build_network

    net = make_network("cnn")
    cfg = net.config.replace(spiking=dataclasses.replace(net.config.spiking, **changes))
    params = float64_parameters(build_network(cfg, cfg.rhm.v)[2])
    with pytest.raises(ConfigError, match=match):
        to_nir(net._replace(params=params, config=cfg))


def test_configs_stored_before_the_operating_point_settings_keep_theirs():
    from spiking_rhm.config import RunConfig, with_legacy_operating_point

    old = make_network("cnn").config.to_dict()
    for key in ("v_rest", "reset", "v_init"):
        old["spiking"].pop(key)
    sp = RunConfig.from_dict(with_legacy_operating_point(old)).spiking
    assert (sp.v_rest, sp.reset, sp.v_init) == (None, "zero", "rest")
    new = RunConfig.from_dict({"spiking": {"T": 12}}).to_dict()
    assert with_legacy_operating_point(new) == new
