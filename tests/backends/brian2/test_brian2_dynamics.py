"""``spiking-rhm dynamics --backend brian2``: one recorded presentation with a neuron model and a delayed modulator."""

import math

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("brian2")

from spiking_rhm.cli import cli  # noqa: E402
from spiking_rhm.config import RunConfig  # noqa: E402

pytestmark = [pytest.mark.brian2, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_recorded_eligibility_only_decays_during_the_modulator_delay():
    from spiking_rhm.backends.brian2.dynamics import record_dynamics

    cfg = RunConfig.from_dict(dict(rule="dfa", backend="brian2", P=16, seed=0, rhm=dict(v=8, m=4, n_c=8, s=2, L=2),
                                   net={"width": 8}, optim={"batch_size": 4}, rule_options={"codegen": "numpy"},
                                   spiking={"neuron": "adex", "modulator_delay": 0.005, "modulator_tau": 0.01}))
    rec = record_dynamics(cfg, n_neurons=2, n_synapses=4)
    T, D = rec.T, 5
    assert rec.spikes.sum() > 0 and set(rec.variables) == {"v", "wad"}
    e_T = rec.elig[:, T - 1]
    assert (e_T > 1e-3).all()  # synapses with active inputs were chosen
    a_e = math.exp(-cfg.spiking.dt / cfg.spiking.tau_elig)
    for k in range(1, D + 1):  # plasticity off during the delay: e(T + k) = a_e^k e(T), nothing accumulated
        np.testing.assert_allclose(rec.elig[:, T - 1 + k], e_T * a_e**k, rtol=1e-12)
    assert not rec.wacc[:, :T + D - 1].any() and (rec.wacc[:, -1] > 0).all()
    assert np.isfinite(rec.grad).all() and np.abs(rec.grad).max() > 0


def test_cli_dynamics_brian2_writes_the_figure(tmp_path):
    res = CliRunner().invoke(cli, ["dynamics", "--backend", "brian2", "--neuron", "two-compartment", "--rule", "dfa",
                                   "--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2", "--P", "16",
                                   "--width", "8", "--option", "codegen=numpy", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "brian2_dynamics.png").stat().st_size > 10_000
    assert "neuron two-compartment: layer-1 neurons" in res.output


def test_cli_dynamics_brian2_bad_neuron_option_is_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["dynamics", "--backend", "brian2", "--neuron", "adex", "--rule", "dfa", "--P", "16",
                                   "--option", "spiking.neuron_options.tau_w=-1", "--out", str(tmp_path)])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "tau_w must be > 0" in lines[0], res.output


def test_recorded_learning_phase_gives_the_delivered_third_factor():
    """clapp with the two-compartment neuron: from the monitored dendrite with and without the delivered current,
    ``sum_t a_e^t (v_d - v_d^0)`` over the learning phase is ``I G L~ / L`` for every chosen neuron (the third
    factor the update used, computed by the network's own accumulator)."""
    from spiking_rhm.backends.brian2.dynamics import record_dynamics
    from spiking_rhm.backends.brian2.equations import neuron_model

    cfg = RunConfig.from_dict(dict(rule="clapp", backend="brian2", P=16, seed=0, rhm=dict(v=8, m=4, n_c=8, s=2, L=2),
                                   net={"width": 8}, optim={"batch_size": 4}, rule_options={"codegen": "numpy"},
                                   spiking={"neuron": "two-compartment"}))
    rec = record_dynamics(cfg, n_neurons=3, n_synapses=4)
    phase, sp = rec.phase, cfg.spiking
    assert phase is not None and phase["steps"] == 10
    weights = np.exp(-np.arange(1, 11) * sp.dt / sp.tau_elig)

    def after_reset(run):  # the monitors hold pre-reset potentials; a spike (v > v_th) moves v_d by -(v_th - 0)
        return phase[run]["v_dend"] - sp.v_th * (phase[run]["v"] > sp.v_th)

    measured = ((after_reset("delivered") - after_reset("reference")) * weights).sum(1)
    G = neuron_model("two-compartment").delivered_gain(sp.dt, sp.tau_mem, sp.tau_elig)
    assert np.abs(phase["signal"]).max() > 0
    np.testing.assert_allclose(phase["current"] * G * phase["third_factor"], phase["signal"] * measured,
                               rtol=1e-9, atol=1e-12 * np.abs(phase["signal"] * measured).max())
    assert rec.elig.shape[1] == rec.T + 10
