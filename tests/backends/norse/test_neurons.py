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
    assert torch.equal(patches(x, 2), rate.architecture("cnn").patches(x, rspec, 1))
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
