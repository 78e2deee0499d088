"""The detailed neuron models, synaptic delays and the modulator of the Brian2 back end.

* one neuron of every model against a hand-written Euler recursion (the order of Brian2's schedule:
  synaptic input, then the Euler step from the old state, threshold, reset), potentials within 1e-12;
* every detailed model in its limit against the LIF mirror on the two-layer network of the cross-check
  (the same spikes; potentials within the stated tolerance, of the order of the neglected term);
* a synaptic delay of d steps shifts layer l's spike train by l d steps;
* the delayed modulator's eligibility equals the hand-computed product ``e(T) a_e^D (1 - a_m) / (1 - a_m a_e)``;
* bad model parameters give one line.
"""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("brian2")
pytest.importorskip("norse")

from brian2_helpers import make_setup  # noqa: E402

from spiking_rhm.backends.brian2.equations import neuron_model  # noqa: E402
from spiking_rhm.backends.brian2.network import Modulator, modulated_factor, simulate  # noqa: E402
from spiking_rhm.backends.norse.network import build_parameters, build_spec  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402

pytestmark = [pytest.mark.brian2, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

DT, T, TAU_MEM, TAU_SYN, V_TH = 1e-3, 40, 1e-2, 5e-3, 1.0


def _one_neuron(weights, drive=4.0):
    spec = build_spec("cnn", 1, 2, 2, 1, 1, 2)
    params = build_parameters(spec, 0.25, dt=DT, tau_mem=TAU_MEM, tau_syn=TAU_SYN, tau_elig=12e-3, v_th=V_TH,
                              psi_beta=3.0, v_leak=0.0, drive=drive, reset="zero")
    spikes = np.zeros((T, 1, 1, 2))
    spikes[[1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 25, 26, 27], 0, 0, 0] = 1
    spikes[[2, 5, 9, 14, 15, 16, 17, 18, 19, 20, 30], 0, 0, 1] = 1
    return spec, params, torch.tensor([weights], dtype=torch.float64), spikes


def _euler(params, W, spikes, step, state):
    """Drive ``step(state, x) -> (state, v_pre, spiked)`` with the synaptic jumps ``x = g (W z)`` per tap."""
    g = params.gains[0]
    vs, zs = [], []
    for t in range(T):
        x = g * np.asarray(W[0]) * spikes[t, 0, 0]
        state, v, z = step(state, x, t)
        vs.append(v)
        zs.append(float(z))
    return np.array(vs), np.array(zs)


def _check(res, vs, zs):
    assert 2 <= zs.sum() <= T - 2  # the neuron fires, but not always
    np.testing.assert_allclose(res.v[0][:, 0, 0, 0], vs, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res.spikes[0][:, 0, 0, 0], zs)


def test_cond_neuron_follows_its_euler_recursion():
    spec, params, W, spikes = _one_neuron([2.0, -0.6], drive=6.0)
    e_exc, e_inh = 3.0, -0.5
    model = neuron_model("cond", {"e_exc": e_exc, "e_inh": e_inh}, "zero")

    def step(s, x, t):
        v, ge, gi = s
        ge += x[x > 0].sum() / (e_exc - 0.0)
        gi += x[x < 0].sum() / (e_inh - 0.0)
        v = v + DT / TAU_MEM * (0.0 - v + ge * (e_exc - v) + gi * (e_inh - v))
        ge, gi = ge - DT / TAU_SYN * ge, gi - DT / TAU_SYN * gi
        z = v > V_TH
        return ((0.0 if z else v), ge, gi), v, z

    _check(simulate(spec, params, [W], spikes, model=model), *_euler(params, W, spikes, step, (0.0, 0.0, 0.0)))


def test_adex_neuron_follows_its_euler_recursion():
    spec, params, W, spikes = _one_neuron([1.2, 1.5])
    o = dict(a=0.3, b=0.2, tau_w=0.03, delta_t=0.1, v_t=0.7)
    model = neuron_model("adex", o, "zero")

    def step(s, x, t):
        v, w, i = s
        i += x.sum()
        exp = o["delta_t"] * math.exp(min((v - o["v_t"]) / o["delta_t"], (V_TH - o["v_t"]) / o["delta_t"]))
        v, w = v + DT / TAU_MEM * (0.0 - v + exp - w + i), w + DT / o["tau_w"] * (o["a"] * (v - 0.0) - w)
        i -= DT / TAU_SYN * i
        z = v > V_TH
        return ((0.0 if z else v), w + (o["b"] if z else 0.0), i), v, z

    _check(simulate(spec, params, [W], spikes, model=model), *_euler(params, W, spikes, step, (0.0, 0.0, 0.0)))


def test_two_compartment_neuron_follows_its_recursion():
    spec, params, W, spikes = _one_neuron([1.6, 1.9])
    kappa, g_c = 0.4, 0.8
    model = neuron_model("two-compartment", {"kappa": kappa, "g_c": g_c}, "zero")
    a_d = math.exp(-DT * (1 + g_c / (kappa * (1 - kappa))) / TAU_MEM)

    def step(s, x, t):
        u, i, d = s
        i += x.sum()
        d = a_d * d + (1 - a_d) * i * (1 - kappa) / (kappa * (1 - kappa) + g_c)
        u = u + DT / TAU_MEM * (0.0 - u + i)
        i -= DT / TAU_SYN * i
        v = u - kappa * d
        z = v > V_TH
        return ((kappa * d if z else u), i, d), v, z  # zero reset: the soma to 0, the dendrite keeps delta

    _check(simulate(spec, params, [W], spikes, model=model), *_euler(params, W, spikes, step, (0.0, 0.0, 0.0)))


def test_refractory_lif_follows_its_recursion():
    """After a spike at step s the potential is held for the steps t with t - s < refractory / dt."""
    spec, params, W, spikes = _one_neuron([2.5, 2.5])
    r = 3
    model = neuron_model("lif", {"refractory": r * DT}, "zero")

    def step(s, x, t):
        v, i, last = s
        i += x.sum()
        refractory = t - last < r
        if not refractory:
            v = v + DT / TAU_MEM * (0.0 - v + i)
        i -= DT / TAU_SYN * i
        z = (v > V_TH) and not refractory
        return ((0.0 if z else v), i, t if z else last), v, z

    res = simulate(spec, params, [W], spikes, model=model)
    vs, zs = _euler(params, W, spikes, step, (0.0, 0.0, -10**6))
    _check(res, vs, zs)
    free = simulate(spec, params, [W], spikes)
    assert free.spikes[0].sum() > zs.sum()  # the refractory period removes spikes here


@pytest.fixture(scope="module")
def network():
    return make_setup("cnn")


LIMITS = {  # model, options at the limit, tolerance on the potentials (the order of the neglected term)
    "adex": ({"a": 0.0, "b": 0.0, "v_t": V_TH, "delta_t": 1e-5}, 1e-4),  # delta_t exp(.) <= delta_t
    "cond": ({"e_exc": 1e6, "e_inh": -1e6}, 1e-4),  # relative (v - v_rest) / (E - v_rest) ~ 1e-6
    "two-compartment": ({"g_c": 1e9}, 1e-6),  # delta_inf ~ isyn / g_c
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_detailed_model_reduces_to_the_lif_mirror(network, name):
    options, tol = LIMITS[name]
    s = network
    limit = simulate(s.spec, s.params, s.weights, s.spikes, model=neuron_model(name, options, s.params.reset))
    default = simulate(s.spec, s.params, s.weights, s.spikes, model=neuron_model(name, {}, s.params.reset))
    for l in range(2):
        assert 0.02 < s.brian.spikes[l].mean() < 0.9
        np.testing.assert_array_equal(limit.spikes[l], s.brian.spikes[l])
        assert np.abs(limit.v[l] - s.brian.v[l]).max() < tol
        assert np.abs(limit.eligibility[l].e - s.brian.eligibility[l].e).max() < 1e3 * tol
    assert np.abs(default.v[0] - s.brian.v[0]).max() > 1e-2  # away from the limit the model differs


def test_synaptic_delay_shifts_each_layer_by_its_depth(network):
    s, d = network, 2
    delayed = simulate(s.spec, s.params, s.weights, s.spikes,
                       model=neuron_model("lif", {"synapse_delay": d * DT}, s.params.reset))
    for l in range(2):
        shift = (l + 1) * d
        np.testing.assert_array_equal(delayed.spikes[l][shift:], s.brian.spikes[l][:-shift])
        assert delayed.spikes[l][:shift].sum() == 0


@pytest.mark.parametrize("delay,tau", [(0.0, 0.0), (10e-3, 0.0), (0.0, 20e-3), (10e-3, 20e-3), (50e-3, 5e-3)])
def test_delayed_modulator_is_the_hand_computed_trace_product(network, delay, tau):
    """e_mod = e(T) a_e^D (1 - a_m) / (1 - a_m a_e): the eligibility decays over the delay, the modulator
    (a_m = exp(-dt / tau)) weighs its later values; computed by Brian2 (delay and 2 tau of steps, tail closed)."""
    s = network
    res = simulate(s.spec, s.params, s.weights, s.spikes, record=False, modulator=Modulator(delay, tau))
    tau_e = 1 / s.params.elig.tau_elig_inv
    a_e, a_m, D = math.exp(-DT / tau_e), math.exp(-DT / tau) if tau else 0.0, round(delay / DT)
    factor = a_e ** D * (1 - a_m) / (1 - a_m * a_e)
    assert factor == pytest.approx(modulated_factor(Modulator(delay, tau), DT, tau_e), rel=1e-12)
    for l in range(2):
        e_T = s.brian.eligibility[l].e
        assert np.abs(e_T).max() > 1e-3
        np.testing.assert_allclose(res.eligibility[l].e, e_T * factor, rtol=1e-9, atol=1e-15)
        assert res.eligibility[l].expected == s.brian.eligibility[l].expected


@pytest.mark.parametrize("name,options,needle", [
    ("adex", {"delta_t": -1.0}, "delta_t and tau_w must be > 0"),
    ("adex", {"tau": 1.0}, "has no option(s) tau"),
    ("two-compartment", {"kappa": 1.5}, "kappa"),
    ("two-compartment", {"g_c": 0.0}, "g_c"),
    ("cond", {"e_exc": -1.0, "e_inh": 0.0}, "e_inh < e_exc"),
    ("lif", {"refractory": -1e-3}, "refractory must be >= 0"),
    ("lif", {"refractory": "long"}, "must be a number"),
    ("hh", {}, "unknown neuron 'hh'"),
])
def test_bad_model_parameters_are_one_line(name, options, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")) as err:
        neuron_model(name, options)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key", ["synapse_delay", "refractory"])
def test_times_between_steps_are_refused(network, key):
    s = network
    with pytest.raises(ConfigError, match=f"{key} = 0.0025 s is not a whole number of time steps"):
        simulate(s.spec, s.params, s.weights, s.spikes, model=neuron_model("lif", {key: 2.5e-3}))
    with pytest.raises(ConfigError, match="modulator_delay = 0.0025 s is not a whole number"):
        simulate(s.spec, s.params, s.weights, s.spikes, modulator=Modulator(2.5e-3, 0.0))


def test_reversal_potentials_inside_the_operating_range_are_refused(network):
    s = network
    with pytest.raises(ConfigError, match="e_exc > v_th"):
        simulate(s.spec, s.params, s.weights, s.spikes, model=neuron_model("cond", {"e_exc": 0.9, "e_inh": 0.0}))


def test_objects_off_in_the_first_run_work_when_switched_on(network):
    """A plain presentation first (plastic objects and modulator off when Brian2 makes its code objects), then
    plastic windows: the eligibility and the modulated eligibility are those of a fresh network."""
    from spiking_rhm.backends.brian2.network import Brian2Network

    s, mod = network, Modulator(3e-3, 0.0)
    net = Brian2Network(s.spec, s.params, s.spikes.shape[1], s.spikes.shape[0], modulator=mod)
    net.run(s.weights, s.spikes, plastic=False)
    res = net.run(s.weights, s.spikes)
    factor = modulated_factor(mod, DT, 1 / s.params.elig.tau_elig_inv)
    for l in range(2):
        assert np.abs(s.brian.eligibility[l].e).max() > 1e-3
        np.testing.assert_allclose(res.eligibility[l].e, s.brian.eligibility[l].e * factor, rtol=1e-9, atol=1e-15)
