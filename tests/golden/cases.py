"""The fixed small runs of the golden test (``tests/test_golden.py``) and how their values are read.

Every spiking option is pinned here explicitly (code, T, dt, max_rate, taus, v_th, drive, psi_beta,
delay, eligibility, eligibility_scale), so a change of a *default* elsewhere does not move the values.
Regenerate (only when a change of behaviour is intended): ``python tests/golden/make_golden.py``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig, SpikingConfig

GOLDEN = Path(__file__).with_name("golden.json")
# keys of a record that measure the machine (time, memory), not behaviour
TIMING = {"wall_time", "samples_per_s", "train_time", "device", "memory"}

RHM = RHMConfig(v=8, m=4, n_c=8, s=2, L=2, rule_seed=0)
SPIKING = dict(code="rate", T=10, dt=1e-3, max_rate=200.0, tau_mem=1e-2, tau_syn=5e-3, tau_pre=1e-2,
               tau_elig=2e-2, v_th=1.0, delay=0, drive=4.0, psi_beta=5.0, eligibility="factored",
               eligibility_scale="expected", v_rest=1.0, reset="zero", v_init="rest", readout="counts",
               tau_readout=2e-2, population_size=4, latency_window=None, plasticity="window",
               update_every=1, modulator_delay=0, weight_bits=None)

RATE_RUNS = {
    "rate-bp": dict(rule="bp"),
    "rate-dfa": dict(rule="dfa"),
    # the unsupervised runs pin the readout trained with the layers (online_readout = joint), what they ran with
    "rate-clapp": dict(rule="clapp", rule_options={"online_readout": "joint"}),
    "rate-sibling-cca": dict(rule="sibling-cca", rule_options={"dim": 8, "online_readout": "joint"}),
}
NORSE_RUNS = {
    "norse-dfa": dict(rule="dfa"),
    # the readout trained with the layers (online_readout = joint), what the run was recorded with
    "norse-clapp": dict(rule="clapp", rule_options={"online_readout": "joint"}),
}


def rate_config(rule: str, rule_options=None) -> RunConfig:
    return RunConfig(rhm=RHM, P=128, P_test=128, rule=rule, backend="rate", seed=3,
                     net=NetConfig(arch="cnn", width=16, bias=False),
                     optim=OptimConfig(epochs=3, batch_size=32, lr=None, momentum=0.9, weight_decay=0.0,
                                       schedule="cosine", stop_train_loss=1e-3, min_steps=0),
                     rule_options=dict(rule_options or {}))


def norse_config(rule: str, rule_options=None) -> RunConfig:
    return RunConfig(rhm=RHM, P=32, P_test=32, rule=rule, backend="norse", seed=3,
                     net=NetConfig(arch="cnn", width=8, bias=False),
                     optim=OptimConfig(epochs=2, batch_size=16, lr=None, momentum=0.9, weight_decay=0.0,
                                       schedule="cosine", stop_train_loss=1e-3, min_steps=0),
                     spiking=SpikingConfig(**SPIKING), rule_options=dict(rule_options or {}))


def _weights(path: Path) -> dict:
    arrays = np.load(path)
    out = {}
    for key in sorted(arrays.files):
        if key == "meta":
            continue
        a = arrays[key].astype(np.float64)
        out[key] = {"norm": float(np.linalg.norm(a)), "sum": float(a.sum())}
    return out


def _strip(record):
    if isinstance(record, dict):
        return {k: _strip(v) for k, v in record.items() if k not in TIMING}
    if isinstance(record, (list, tuple)):
        return [_strip(v) for v in record]
    if isinstance(record, float) and not math.isfinite(record):
        return repr(record)
    return record


def train_run(cfg: RunConfig) -> dict:
    """The record's metrics (timing removed) and norms/sums of the trained weights (from a checkpoint)."""
    from spiking_rhm.api import train

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.npz"
        record = train(cfg, checkpoint=path)
        weights = _weights(path)
    return {"test_error": record["test_error"], "train_error": record["train_error"],
            "metrics": _strip(record["metrics"]), "weights": weights}


def _norms(grads) -> list[dict]:
    return [{"norm": float(np.linalg.norm(np.asarray(g, dtype=np.float64))),
             "sum": float(np.asarray(g, dtype=np.float64).sum())} for g in grads]


def _spiking_parts(arch: str, width: int, T: int, max_rate: float, N: int, tau_elig: float):
    """Spec, float64 parameters, weights, spikes and targets of one small batch (every option pinned)."""
    from spiking_rhm.backends.norse.inputs import SpikeEncoder
    from spiking_rhm.backends.norse.network import build_parameters, build_spec, float64_parameters, init_weights
    from spiking_rhm.rhm import RHM as Grammar
    from spiking_rhm.rhm import onehot

    v, m, n_c, s, L = 8, 4, 8, 2, 2
    rhm = Grammar(v, m, n_c, s, L, seed=0)
    sample = rhm.split(N, 0, seed=0)[0]
    x = onehot(sample.inputs, v, dtype=torch.float64)
    target = torch.nn.functional.one_hot(torch.as_tensor(sample.labels), n_c).to(torch.float64)
    enc = SpikeEncoder("rate", T, 1e-3, max_rate, v)
    spikes = enc(x, torch.Generator().manual_seed(1)).to(torch.float64)
    spec = build_spec(arch, enc.channels, s**L, s, L, width, n_c)
    params = float64_parameters(build_parameters(spec, enc.nominal_rate, dt=1e-3, tau_mem=1e-2, tau_syn=5e-3,
                                                 tau_pre=1e-2, tau_elig=tau_elig, v_th=1.0, drive=4.0,
                                                 psi_beta=5.0, v_leak=1.0, reset="zero",
                                                 v_init="rest"))
    weights = init_weights(spec, torch.Generator().manual_seed(0), dtype=torch.float64)
    return spec, params, weights, spikes, target


def brian2_agreement() -> dict | None:
    """dfa (expected scale) on a small CNN: Norse learner's update and Brian2's, from the same spikes."""
    try:
        import brian2  # noqa: F401
    except ImportError:
        return None
    from spiking_rhm.backends.brian2.learning import three_factor_update
    from spiking_rhm.backends.brian2.network import simulate
    from spiking_rhm.backends.norse.learners import PresentedBatch, ThreeFactorLearner

    spec, params, weights, spikes, target = _spiking_parts("cnn", 12, 30, 200.0, 4, 30e-3)
    learner = ThreeFactorLearner("dfa", {}, spec, params, torch.Generator().manual_seed(3), eligibility="synapse",
                                 scale="expected", dtype=torch.float64)
    res = learner.step(weights, PresentedBatch(spikes, target), lr=0.0)
    brian = simulate(spec, params, weights, spikes, record=False)
    grads = three_factor_update(brian.eligibility, res.signals, scale="expected")
    rel = [float(np.abs(gb - gn.numpy()).max() / np.abs(gn.numpy()).max()) for gb, gn in zip(grads, res.grads)]
    return {"norse": _norms(res.grads), "brian2": _norms(grads), "rel_err": rel}


def lava_agreement() -> dict | None:
    """dfa (expected scale) on a tiny CNN: Lava's on-chip learning engine vs the Norse learner."""
    try:
        from hardware.loihi.learning import three_factor_step
        from hardware.loihi.network import lava

        lava()
    except Exception:  # lava (or its shim) not installed
        return None
    import copy

    from spiking_rhm.backends.norse.deployed import TrainedNetwork
    from spiking_rhm.backends.norse.inputs import SpikeEncoder
    from spiking_rhm.backends.norse.learners import PresentedBatch, ThreeFactorLearner
    from spiking_rhm.backends.norse.network import Weights, build_parameters, build_spec, float64_parameters
    from spiking_rhm.backends.norse.network import init_weights
    from spiking_rhm.rhm import onehot

    rhm_cfg = RHMConfig(v=4, m=2, n_c=3, s=2, L=2)
    sp = {**SPIKING, "T": 12, "max_rate": 400.0}
    cfg = RunConfig(rhm=rhm_cfg, P=16, P_test=8, rule="dfa", backend="norse", net=NetConfig("cnn", 5),
                    spiking=SpikingConfig(**sp))
    enc = SpikeEncoder("rate", 12, 1e-3, 400.0, 4)
    spec = build_spec("cnn", enc.channels, 4, 2, 2, 5, 3)
    params = float64_parameters(build_parameters(spec, enc.nominal_rate, dt=1e-3, tau_mem=1e-2, tau_syn=5e-3,
                                                 tau_pre=1e-2, tau_elig=2e-2, v_th=1.0, drive=4.0, psi_beta=5.0,
                                                 v_leak=1.0, reset="zero", v_init="rest"))
    hidden = init_weights(spec, torch.Generator().manual_seed(0), torch.float64).hidden
    beta = torch.randn(5, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    net = TrainedNetwork(spec, params, hidden, beta / 5, torch.zeros(3, dtype=torch.float64), enc, cfg)
    rhm = rhm_cfg.build()
    sample = rhm.decode(np.random.default_rng(1).integers(0, rhm.P_max, size=2))
    spikes = enc(onehot(sample.inputs, 4, dtype=torch.float64), torch.Generator().manual_seed(1)).to(torch.float64)
    target = torch.nn.functional.one_hot(torch.arange(2) % 3, 3).double()
    learner = ThreeFactorLearner("dfa", {}, spec, params, torch.Generator().manual_seed(3), eligibility="synapse",
                                 scale="expected", dtype=torch.float64)
    state = copy.deepcopy(learner.rule_state)
    ref = learner.step(Weights(list(hidden), beta), PresentedBatch(spikes, target), lr=0.1)
    res = three_factor_step(net, learner.rule, state, spikes, target, lr=0.1, scale="expected")
    rel = [float(np.abs(g - r.numpy()).max() / np.abs(r.numpy()).max()) for g, r in zip(res.grads, ref.grads)]
    return {"norse": _norms(ref.grads), "lava": _norms(res.grads), "rel_err": rel}


def compute(names=None) -> dict:
    """Every golden case (or those in ``names``) -> its values."""
    cases = {**{k: (lambda kw=kw: train_run(rate_config(**kw))) for k, kw in RATE_RUNS.items()},
             **{k: (lambda kw=kw: train_run(norse_config(**kw))) for k, kw in NORSE_RUNS.items()},
             "brian2-vs-norse": brian2_agreement, "lava-vs-norse": lava_agreement}
    return {k: f() for k, f in cases.items() if names is None or k in names}
