"""One Brian2 neuron against hand-written formulas; bad input; import isolation."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("brian2")
pytest.importorskip("norse")

from spiking_rhm.backends.brian2.learning import three_factor_update  # noqa: E402
from spiking_rhm.backends.brian2.network import simulate  # noqa: E402
from spiking_rhm.backends.norse.network import build_parameters, build_spec  # noqa: E402
from spiking_rhm.errors import ConfigError, SpikingRHMError  # noqa: E402

pytestmark = [pytest.mark.brian2, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

DT, T = 1e-3, 40
TAU_MEM, TAU_SYN, TAU_PRE, TAU_ELIG, V_TH, BETA, RHO = 1e-2, 5e-3, 7e-3, 12e-3, 1.0, 3.0, 0.25


@pytest.fixture(scope="module")
def one_neuron():
    """One post neuron with two inputs (d = 2, s = 2, one channel) and known input spike trains."""
    spec = build_spec("cnn", 1, 2, 2, 1, 1, 2)
    params = build_parameters(spec, RHO, dt=DT, tau_mem=TAU_MEM, tau_syn=TAU_SYN, tau_pre=TAU_PRE,
                              tau_elig=TAU_ELIG, v_th=V_TH, psi_beta=BETA, v_leak=0.0, drive=4.0, reset="zero")
    spikes = np.zeros((T, 1, 1, 2))
    spikes[[1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 25, 26, 27], 0, 0, 0] = 1
    spikes[[2, 5, 9, 14, 15, 16, 17, 18, 19, 20, 30], 0, 0, 1] = 1
    W = torch.tensor([[0.9, 1.3]], dtype=torch.float64)
    return spec, params, W, spikes, simulate(spec, params, [W], spikes)


def test_potential_and_spikes_follow_the_euler_recursion(one_neuron):
    spec, params, W, spikes, res = one_neuron
    g = params.gains[0]
    v, i, vs, zs = 0.0, 0.0, [], []
    for t in range(T):
        i += g * float(W[0] @ torch.as_tensor(spikes[t, 0, 0]))
        v += DT / TAU_MEM * (0.0 - v + i)
        i -= DT / TAU_SYN * i
        z = v > V_TH
        vs.append(v)
        zs.append(float(z))
        v = 0.0 if z else v
    assert 2 <= sum(zs) <= T - 2  # the neuron fires, but not always
    np.testing.assert_allclose(res.v[0][:, 0, 0, 0], vs, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res.spikes[0][:, 0, 0, 0], zs)


def test_eligibility_equals_its_closed_form(one_neuron):
    """e_k = (1-k) sum_t k^(T-1-t) psi(v(t)) xbar_k(t) / rho, xbar_k(t) = (1-a) sum_{t'<=t} a^(t-t') z_k(t')."""
    spec, params, W, spikes, res = one_neuron
    a, k = math.exp(-DT / TAU_PRE), math.exp(-DT / TAU_ELIG)
    v = res.v[0][:, 0, 0, 0]
    psi = 1 / (1 + BETA * np.abs(v - V_TH)) ** 2
    for tap in range(2):
        z = spikes[:, 0, 0, tap]
        xbar = [sum((1 - a) * a ** (t - s) * z[s] for s in range(t + 1)) for t in range(T)]
        e = sum((1 - k) * k ** (T - 1 - t) * psi[t] * xbar[t] / RHO for t in range(T))
        assert e > 0.05
        assert res.eligibility[0].e[0, 0, 0, tap] == pytest.approx(e, rel=1e-10)
    ebar = sum((1 - k) * k ** (T - 1 - t) * psi[t] * (1 - a ** (t + 1)) for t in range(T))
    assert res.eligibility[0].expected == pytest.approx(ebar, rel=1e-10)


def test_update_is_l_times_e_over_sqrt_k(one_neuron):
    spec, params, W, spikes, res = one_neuron
    layer = res.eligibility[0]
    L = np.array([[[0.7]]])
    (grad,) = three_factor_update(res.eligibility, [L], scale="none")
    np.testing.assert_allclose(grad, 0.7 * layer.e[0, 0] / math.sqrt(2), rtol=1e-12)
    (grad,) = three_factor_update(res.eligibility, [L], scale="expected")
    np.testing.assert_allclose(grad, 0.7 * layer.e[0, 0] / math.sqrt(2) * layer.active_fraction / layer.expected)


def test_not_plastic_only_decays(one_neuron):
    spec, params, W, spikes, _ = one_neuron
    res = simulate(spec, params, [W], spikes, record=False, plastic=False)
    assert res.v == [None]
    assert (res.eligibility[0].e == 0).all()
    with pytest.raises(ConfigError, match="plastic"):
        three_factor_update(res.eligibility, [np.ones((1, 1, 1))], scale="expected")


def test_record_subset_returns_those_neurons():
    spec = build_spec("cnn", 2, 4, 2, 2, 3, 2)
    params = build_parameters(spec, 0.3)
    gen = torch.Generator().manual_seed(0)
    W = [torch.randn(s, generator=gen, dtype=torch.float64) * 3 for s in spec.weight_shapes()]
    spikes = (torch.rand((15, 2, 2, 4), generator=gen) < 0.3).double()
    full = simulate(spec, params, W, spikes)
    part = simulate(spec, params, W, spikes, record={2: [0, 4]})
    assert part.v[0] is None
    np.testing.assert_array_equal(part.v[1], full.v[1].reshape(15, -1)[:, [0, 4]])


@pytest.mark.parametrize("bad, match", [
    (dict(spikes=np.zeros((5, 1, 1, 3))), "input spikes must be"),
    (dict(spikes=np.full((5, 1, 1, 2), 0.5)), "0/1"),
    (dict(W=[torch.zeros(2, 2, dtype=torch.float64)]), "shape"),
    (dict(target="gpu"), "codegen target"),
    (dict(record={1: [5]}), "record"),
])
def test_bad_input_raises_a_clear_error(one_neuron, bad, match):
    spec, params, W, spikes, _ = one_neuron
    kw = dict(spikes=spikes, W=[W], target="numpy", record=True) | bad
    with pytest.raises(SpikingRHMError, match=match):
        simulate(spec, params, kw["W"], kw["spikes"], record=kw["record"], target=kw["target"])


def test_bad_learning_signal_raises(one_neuron):
    res = one_neuron[-1]
    with pytest.raises(ConfigError, match="shape"):
        three_factor_update(res.eligibility, [np.ones((1, 2, 1))])
    with pytest.raises(ConfigError, match="scale"):
        three_factor_update(res.eligibility, [np.ones((1, 1, 1))], scale="max")


def test_import_spiking_rhm_does_not_import_brian2():
    code = ("import sys, spiking_rhm, spiking_rhm.backends, spiking_rhm.backends.brian2, "
            "spiking_rhm.backends.brian2.learning, spiking_rhm.backends.brian2.equations\n"
            "assert 'brian2' not in sys.modules, 'brian2 imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
