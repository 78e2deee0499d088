"""Online plasticity on ``--backend brian2`` (``spiking.plasticity = online``): the weights change inside the
window, a signal every ``update_every`` steps delivered ``modulator_delay`` later, as the Norse online learner."""

import numpy as np
import pytest
import torch

pytest.importorskip("brian2")
pytest.importorskip("norse")

from spiking_rhm import training  # noqa: E402
from spiking_rhm.config import RunConfig  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402

pytestmark = [pytest.mark.brian2, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _cfg(rule="dfa", options=None, **spiking):
    return RunConfig.from_dict(dict(rule=rule, backend="brian2", P=48, P_test=16, seed=0, net={"width": 8},
                                    optim={"epochs": 1, "batch_size": 16},
                                    rule_options={"codegen": "numpy", **(options or {})},
                                    spiking={"plasticity": "online", **spiking}))


def _trained(backend):
    initial = [t.detach().clone().numpy() for t in backend.trainable()[0]]
    training.train(backend, backend.cfg)
    return initial, [t.detach().numpy().copy() for t in backend.trainable()[0] + backend.trainable()[1]]


@pytest.mark.parametrize("rule, every, delay_steps", [("dfa", 1, 0), ("dfa", 1, 2), ("dfa", 4, 3), ("dkp", 3, 5)])
def test_online_training_steps_equal_norse_online_float64(rule, every, delay_steps):
    """3 SGD steps (momentum 0.9) with the LIF mirror, width 8, T = 30, batch 16: every hidden and readout weight
    of --backend brian2 online equals --backend norse online (float64) within 1e-6."""
    from spiking_rhm.backends.brian2.train import Brian2Backend
    from spiking_rhm.backends.norse.train import NorseBackend

    cfg = _cfg(rule, update_every=every, modulator_delay=delay_steps * 1e-3)
    b = Brian2Backend(cfg)
    n = NorseBackend(cfg.replace(backend="norse", rule_options={}), dtype=torch.float64)
    assert n.setup.learner.modulator_delay == delay_steps and b.setup.learner.update_every == every
    init_b, wb = _trained(b)
    _, wn = _trained(n)
    for l, (x, y) in enumerate(zip(wb, wn)):
        assert np.abs(x - y).max() < 1e-6, f"tensor {l}: {np.abs(x - y).max()}"
    moved = [float(np.abs(x - w0).max()) for x, w0 in zip(wb, init_b)]
    assert min(moved) > 1e-3  # every hidden layer learned: the comparison is not vacuous


def test_online_is_not_the_window_form_and_one_update_per_window_is():
    """Brian2 online with a signal every step moves the weights differently from its window form (the option is
    not ignored); with update_every >= T and no delay it is the window form (3 steps, momentum 0.9)."""
    from spiking_rhm.backends.brian2.train import Brian2Backend

    window = _trained(Brian2Backend(_cfg(plasticity="window")))[1]
    every_step = _trained(Brian2Backend(_cfg(update_every=1)))[1]
    once = _trained(Brian2Backend(_cfg(update_every=30)))[1]
    assert max(np.abs(x - y).max() for x, y in zip(window[:-1], every_step[:-1])) > 1e-3
    for l, (x, y) in enumerate(zip(window, once)):
        assert np.abs(x - y).max() < 1e-9, f"tensor {l}: {np.abs(x - y).max()}"


def test_adex_runs_online():
    """AdEx at its defaults learns online (signal every 5 steps, 10 ms delay): finite weights that moved, and
    with update_every >= T and no delay its window form exactly."""
    from spiking_rhm.backends.brian2.train import Brian2Backend

    init, online = _trained(Brian2Backend(_cfg(neuron="adex", update_every=5, modulator_delay=0.01)))
    assert all(np.isfinite(w).all() for w in online)
    assert min(float(np.abs(x - w0).max()) for x, w0 in zip(online, init)) > 1e-3
    window = _trained(Brian2Backend(_cfg(neuron="adex", plasticity="window")))[1]
    once = _trained(Brian2Backend(_cfg(neuron="adex", update_every=30)))[1]
    for l, (x, y) in enumerate(zip(window, once)):
        assert np.abs(x - y).max() < 1e-9, f"tensor {l}: {np.abs(x - y).max()}"


def test_online_refusals_are_one_line_config_errors():
    from spiking_rhm.backends.brian2.train import Brian2Backend

    with pytest.raises(ConfigError, match="modulator_tau = 0"):
        _cfg(modulator_tau=0.01)
    with pytest.raises(ConfigError, match="has no online form"):
        Brian2Backend(_cfg("clapp", {"pairs": "resample"}))
    with pytest.raises(ConfigError, match="backprop through time"):
        Brian2Backend(_cfg("bp"))
    with pytest.raises(ConfigError, match="not a whole number of time steps"):
        _cfg(modulator_delay=0.0025)
