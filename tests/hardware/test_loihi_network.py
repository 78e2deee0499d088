"""NIR -> Lava (hardware/loihi/network.py): Lava float == Norse, Lava fixed == the integer model.

Norse and Lava's floating_pt LIF compute the same equations in float64 in a different order
(~1e-16 apart), so the spike trains are asserted identical (a flip would need a potential
within ~1e-15 of threshold).  Lava's bit-accurate fixed_pt models and our numpy integer model
(hardware/loihi/fixed_point.py) are asserted bit-identical.  Lava runs take 2-5 s each.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nir")

import nir  # noqa: E402
from hardware_helpers import input_spikes, make_network  # noqa: E402

from hardware.deploy import flat_trains  # noqa: E402
from hardware.loihi.network import from_nir, run  # noqa: E402
from hardware.nir_graph import to_nir  # noqa: E402
from spiking_rhm.backends.norse.deployed import simulate  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def cnn():
    net = make_network("cnn", width=5)
    spikes = input_spikes(net, N=4)
    _, logits, trains = simulate(net, spikes, record=True)
    return net, spikes, logits.numpy(), flat_trains(trains)


def test_mapping_is_the_norse_step_in_lava_terms(cnn):
    net, _, _, _ = cnn
    layers = from_nir(to_nir(net)).layers
    p, sp = net.params, net.config.spiking
    dv = sp.dt / sp.tau_mem
    assert layers[0].du == pytest.approx(sp.dt / sp.tau_syn) and layers[0].dv == pytest.approx(dv)
    np.testing.assert_allclose(layers[0].bias, dv * sp.v_th)  # v_leak = v_th
    W0 = net.hidden[0].numpy() * p.gains[0] * dv  # the first patch's rows of the dense matrix
    np.testing.assert_allclose(layers[0].weight[0, [0, 4, 1, 5]], W0[0, [0, 1, 4, 5]], rtol=1e-12)


def test_reference_engine_needs_fixed_point_and_names_are_checked(cnn):
    net, spikes, _, _ = cnn
    lnet = from_nir(to_nir(net))
    with pytest.raises(ConfigError, match="reference engine"):
        run(lnet, spikes, "float", engine="reference")
    with pytest.raises(ConfigError, match="precision"):
        run(lnet, spikes, "double")
    with pytest.raises(ConfigError, match="input spikes"):
        run(lnet, spikes[:, :, :2], "fixed", engine="reference")


def test_unsupported_graphs_give_clear_errors():
    g = nir.NIRGraph(nodes={"input": nir.Input({"input": np.array([4])}),
                            "lif": nir.LIF(tau=np.ones(4), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4)),
                            "output": nir.Output({"output": np.array([4])})},
                     edges=[("input", "lif"), ("lif", "output")], metadata={"dt": 1e-3})
    with pytest.raises(ConfigError, match="not supported on the Loihi path"):
        from_nir(g)
    net = make_network("fcn")
    graph = to_nir(net)
    graph.metadata = {}
    with pytest.raises(ConfigError, match="dt"):
        from_nir(graph)
    graph.nodes["lif1"].tau_mem = np.linspace(0.01, 0.02, graph.nodes["lif1"].tau_mem.size)
    with pytest.raises(ConfigError, match="differs between neurons"):
        from_nir(graph, dt=1e-3)


def test_fixed_point_reference_agrees_with_norse_up_to_rounding(cnn):
    net, spikes, logits, trains = cnn
    res = run(from_nir(to_nir(net)), spikes, "fixed", engine="reference")
    for z, ref in zip(res.trains, trains):
        assert (z == ref).mean() > 0.9
    assert np.corrcoef(res.counts[0].ravel(), trains[0].sum(0).ravel())[0, 1] > 0.98


@pytest.mark.lava
@pytest.mark.parametrize("arch,conv", [("cnn", True), ("lcn", False), ("fcn", False)])
def test_lava_float_spikes_equal_norse(arch, conv):
    net = make_network(arch, width=5)
    spikes = input_spikes(net, N=3)
    _, logits, trains = simulate(net, spikes, record=True)
    res = run(from_nir(to_nir(net, conv=conv)), spikes, "float")
    for l, (z, ref) in enumerate(zip(res.trains, flat_trains(trains))):
        assert ref.sum() > 0, f"layer {l + 1} is silent: the test would prove nothing"
        np.testing.assert_array_equal(z, ref)
    np.testing.assert_allclose(res.logits, logits.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.lava
def test_lava_fixed_point_is_bit_identical_to_the_integer_model(cnn):
    net, spikes, _, _ = cnn
    lnet = from_nir(to_nir(net))
    lava = run(lnet, spikes, "fixed")
    ref = run(lnet, spikes, "fixed", engine="reference")
    for z, r in zip(lava.trains, ref.trains):
        assert r.sum() > 0
        np.testing.assert_array_equal(z, r)
