"""LIF layer against a hand-integrated Euler loop; connectivity and initialisation match the rate nets."""

import pytest
import torch

pytest.importorskip("norse")

from spiking_rhm.backends.norse.neurons import initial_lif_state, lif_layer_step, patches  # noqa: E402
from spiking_rhm.backends.norse.network import build_parameters, build_spec, init_weights  # noqa: E402

pytestmark = pytest.mark.norse


def test_lif_layer_matches_hand_integrated_euler(gen):
    dt, tau_mem, tau_syn, v_th, v_leak = 1e-3, 1e-2, 5e-3, 1.0, 0.3
    spec = build_spec("fcn", 1, 1, 2, 1, 6, 2)
    p = build_parameters(spec, 1.0, dt=dt, tau_mem=tau_mem, tau_syn=tau_syn, v_th=v_th, v_leak=v_leak).lif
    T, shape = 200, (3, 1, 6)
    currents = 0.6 * torch.rand((T, *shape), generator=gen, dtype=torch.float64)
    state = initial_lif_state(shape, p, torch.float64, "cpu")
    z_lib = []
    for t in range(T):
        z, v_pre, state = lif_layer_step(currents[t], state, p, dt)
        z_lib.append(z)
    z_lib = torch.stack(z_lib)
    # reference: explicit Euler of  i += I;  v += dt/tau_mem (v_leak - v + i);  spike if v > v_th -> v = 0;  i *= 1 - dt/tau_syn
    v = torch.full(shape, v_leak, dtype=torch.float64)
    i = torch.zeros(shape, dtype=torch.float64)
    z_ref = []
    for t in range(T):
        i = i + currents[t]
        v = v + dt / tau_mem * (v_leak - v + i)
        z = (v > v_th).double()
        v = v * (1 - z)
        i = i * (1 - dt / tau_syn)
        z_ref.append(z)
    z_ref = torch.stack(z_ref)
    assert z_ref.sum() > 20, "the reference must actually spike for the test to mean anything"
    assert torch.equal(z_lib, z_ref)
    assert torch.allclose(state.v, v) and torch.allclose(state.i, i)


def test_pre_reset_potential_equals_norse_where_no_spike(gen):
    spec = build_spec("fcn", 1, 1, 2, 1, 50, 2)
    p = build_parameters(spec, 1.0).lif
    state = initial_lif_state((4, 1, 50), p, torch.float32, "cpu")
    for _ in range(30):
        cur = torch.randn((4, 1, 50), generator=gen) * 0.3
        z, v_pre, new = lif_layer_step(cur, state, p)
        quiet = z == 0
        assert torch.allclose(v_pre[quiet], new.v[quiet], atol=1e-6)
        assert bool((v_pre[~quiet] > float(p.v_th)).all())
        state = new


def test_patches_and_initial_weights_match_rate_models():
    rate = pytest.importorskip("rate_models.networks")
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # channel-last [N, P, C]
    rspec = rate.make_spec("cnn", 3, 4, 2, 2, 5, 2)
    assert torch.equal(patches(x, 2), rate.layer_forward(rate.init_params(rspec, torch.Generator()), x, 1)[0])
    for arch in ("cnn", "lcn", "fcn"):
        rspec = rate.make_spec(arch, 8, 4, 2, 2, 16, 8)
        ours = init_weights(build_spec(arch, 8, 4, 2, 2, 16, 8), torch.Generator().manual_seed(3))
        ref = rate.init_params(rspec, torch.Generator().manual_seed(3))
        assert all(torch.equal(a, b) for a, b in zip(ours.hidden, ref.weights))
        assert torch.equal(ours.readout, ref.readout)


def test_mean_potential_follows_rate_preactivation():
    """With v_leak = v_th the mean drive is v_th + g a, a = the rate network's pre-activation."""
    from spiking_rhm.backends.norse.inputs import SpikeEncoder
    from spiking_rhm.backends.norse.network import initial_state, run_window

    enc = SpikeEncoder("rate", 400, 1e-3, 200.0, 4)
    spec = build_spec("cnn", 4, 2, 2, 1, 64, 2)
    params = build_parameters(spec, enc.nominal_rate, drive=0.5)
    w = init_weights(spec, torch.Generator().manual_seed(0))
    x = torch.nn.functional.one_hot(torch.tensor([[0, 3], [2, 1]]), 4).float().transpose(1, 2)  # [N, v, d]
    spikes = enc(x, torch.Generator().manual_seed(1))
    cur = []
    run_window(spikes, w.hidden, spec, params, initial_state(spec, params, 2),
               recorder=lambda t, l, val: cur.append(val["current"]))
    ss = 1 / (1e-3 * float(params.lif.tau_syn_inv))
    mean_drive = torch.stack(cur).mean(0) * ss  # [N, 1, H]
    xhat = spikes.mean(0) / enc.nominal_rate  # input rates in units of the nominal rate
    exact = 0.5 * patches(xhat.transpose(1, 2), 2) @ w.hidden[0].T / 8 ** 0.5
    assert torch.allclose(mean_drive, exact, atol=1e-5)
    a = patches(x.transpose(1, 2), 2) @ w.hidden[0].T / 8 ** 0.5  # rate pre-activation on the one-hot input
    corr = torch.corrcoef(torch.stack([mean_drive.flatten(), a.flatten()]))[0, 1]
    assert corr > 0.95


# --------------------------------------------------------------------------- operating point
def _hand_loop(currents, v_leak, v_th, v0, subtract, dt=1e-3, tau_mem=1e-2, tau_syn=5e-3):
    """Explicit Euler of i += I; v += dt/tau_mem (v_leak - v + i); spike if v > v_th; reset; i *= 1 - dt/tau_syn."""
    v = torch.full(currents.shape[1:], v0, dtype=torch.float64)
    i = torch.zeros(currents.shape[1:], dtype=torch.float64)
    zs = []
    for cur in currents:
        i = i + cur
        v = v + dt / tau_mem * (v_leak - v + i)
        z = (v > v_th).double()
        v = v - z * v_th if subtract else v * (1 - z)
        i = i * (1 - dt / tau_syn)
        zs.append(z)
    return torch.stack(zs), v


@pytest.mark.parametrize("reset, v_init", [("subtract", "rest"), ("subtract", "half"), ("zero", "half")])
def test_reset_and_initial_potential_match_a_hand_loop(gen, reset, v_init):
    from spiking_rhm.backends.norse.network import float64_parameters, initial_state

    spec = build_spec("fcn", 1, 1, 2, 1, 6, 2)
    params = float64_parameters(build_parameters(spec, 1.0, v_leak=0.25, reset=reset, v_init=v_init))
    p = params.lif
    currents = 0.8 * torch.rand((150, 3, 1, 6), generator=gen, dtype=torch.float64)
    state = initial_state(spec, params, 3, torch.float64).lif[0]
    v0 = 0.25 if v_init == "rest" else 0.5
    assert torch.all(state.v == v0)
    zs = []
    for cur in currents:
        z, _, state = lif_layer_step(cur, state, p, 1e-3, reset)
        zs.append(z)
    z_ref, v_ref = _hand_loop(currents, 0.25, 1.0, v0, reset == "subtract")
    assert z_ref.sum() > 20
    assert torch.equal(torch.stack(zs), z_ref)
    assert torch.allclose(state.v, v_ref, atol=1e-6)
    if reset == "subtract":  # the overshoot is kept: some post-spike potentials are above 0
        assert bool((state.v > 1e-3).any())


def test_bad_operating_point_is_refused():
    from spiking_rhm.errors import ConfigError

    spec = build_spec("fcn", 1, 1, 2, 1, 6, 2)
    for kw, match in ((dict(reset="soft"), "reset"), (dict(v_init="zero"), "v_init"), (dict(v_leak=1.5), "v_rest")):
        with pytest.raises(ConfigError, match=match):
            build_parameters(spec, 1.0, **kw)


DRIVES = torch.linspace(0.013, 6.0, 211, dtype=torch.float64)  # an irregular grid: no drive sits on a step edge


@pytest.mark.parametrize("v_leak, v_init", [(1.0, "rest"), (0.0, "rest"), (0.0, "half"), (0.5, "half")])
def test_response_curve_with_reset_to_zero_is_the_first_passage_formula(v_leak, v_init):
    """Count vs constant drive D: first spike after n(v_0), then one every n(v_reset) steps (neurons docstring)."""
    from spiking_rhm.backends.norse.neurons import first_passage_counts, response_counts

    spec = build_spec("fcn", 1, 1, 2, 1, 6, 2)
    params = build_parameters(spec, 1.0, v_leak=v_leak, reset="zero", v_init=v_init)
    lif = float64_lif(params)
    counts = response_counts(DRIVES, 40, lif, 1e-3, "zero", params.v_init)
    ref = torch.tensor([first_passage_counts(float(D), 40, v_leak, 1.0, 0.0, 1e-2, 1e-3, params.v_init)
                        for D in DRIVES], dtype=torch.float64)
    assert ref.max() >= 8 and (ref == 0).any() == (v_leak < 1.0)
    assert torch.equal(counts, ref)


@pytest.mark.parametrize("v_init", ["rest", "half"])
def test_response_curve_with_subtraction_is_a_staircase_linear_in_drive(v_init):
    """No leak (tau_mem = 1000 s, so alpha v < 1e-5 over the window): count = floor((v_0 + T alpha v_inf) / v_th)."""
    from spiking_rhm.backends.norse.neurons import response_counts, subtractive_counts

    spec = build_spec("fcn", 1, 1, 2, 1, 6, 2)
    params = build_parameters(spec, 1.0, tau_mem=1e3, v_leak=0.0, reset="subtract", v_init=v_init)
    alpha, T = 1e-6, 40
    drives = DRIVES / (alpha * 8)  # up to 0.75 v_th per step
    counts = response_counts(drives, T, float64_lif(params), 1e-3, "subtract", params.v_init)
    arg = ((0.0 if params.v_init is None else params.v_init) + T * alpha * drives)
    clear = (arg - arg.round()).abs() > 1e-3  # away from a step edge, where the neglected leak could flip it
    ref = torch.tensor([subtractive_counts(float(D), T, 0.0, 1.0, 0.0, 1e3, 1e-3, params.v_init) for D in drives],
                       dtype=torch.float64)
    assert clear.sum() > 150 and ref.max() >= 25
    assert torch.equal(counts[clear], ref[clear])
    # floor-like: the staircase is within one spike of the straight line T alpha D / v_th (+ v_0)
    assert ((counts - T * alpha * drives).abs() <= 1.0 + 1e-9).all()


def float64_lif(params):
    from spiking_rhm.backends.norse.network import float64_parameters

    return float64_parameters(params).lif


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_layer_step_without_autograd_is_the_same_step(gen, reset):
    """Under no_grad the SuperSpike threshold is evaluated as the Heaviside step: same spikes and states
    as the autograd path, whose surrogate gradient still flows."""
    from norse.torch.functional.lif import LIFParameters

    p = LIFParameters(v_th=torch.as_tensor(1.0))
    assert p.method == "super"
    current = torch.rand((6, 3, 5), generator=gen) * 0.8
    state = initial_lif_state((6, 3, 5), p, torch.float32, "cpu", v0=0.5)
    grad_state = state
    x = current.clone().requires_grad_(True)
    for _ in range(12):
        with torch.no_grad():
            z, v_pre, state = lif_layer_step(current, state, p, 1e-3, reset)
        zg, vg, grad_state = lif_layer_step(x, grad_state, p, 1e-3, reset)
        assert torch.equal(z, zg.detach()) and torch.equal(v_pre, vg.detach())
        assert torch.equal(state.v, grad_state.v.detach()) and torch.equal(state.i, grad_state.i.detach())
    assert z.sum() > 0 and z.sum() < z.numel()  # some fire, some do not
    (g,) = torch.autograd.grad(zg.sum(), x)
    assert g.abs().sum() > 0
