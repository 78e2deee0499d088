"""Shared setup of the Brian2 tests: one small RHM batch run through Norse and through Brian2.

Network (v, m, n_c, s, L) = (8, 4, 8, 2, 2), width 12, T = 30, 4 samples, rate code at 200 Hz.
The cross-check runs Norse in float64 (its LIF parameters cast to float64) so that both
simulators evaluate the same equations in the same precision.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from spiking_rhm.backends.brian2.network import Brian2Result, simulate
from spiking_rhm.backends.norse.inputs import SpikeEncoder
from spiking_rhm.backends.norse.network import (
    build_parameters,
    build_spec,
    float64_parameters,
    init_weights,
    initial_state,
    run_window,
)
from spiking_rhm.backends.norse.traces import SynapseEligibility
from spiking_rhm.rhm import RHM, onehot

V, M, NC, S, L = 8, 4, 8, 2, 2
WIDTH, T, N, DT, MAX_RATE = 12, 30, 4, 1e-3, 200.0


class NorseRun(NamedTuple):
    z: list[np.ndarray]  # [T, N, P, H]
    v_pre: list[np.ndarray]
    e: list[np.ndarray]  # [N, P, H, K]
    ebar: list[float]


class Setup(NamedTuple):
    spec: object
    params: object
    weights: object
    spikes: torch.Tensor
    target: torch.Tensor
    norse: NorseRun
    brian: Brian2Result


def rhm_batch(seed: int = 0, dtype=torch.float64):
    rhm = RHM(V, M, NC, S, L, seed=0)
    sample = rhm.split(N, 0, seed=seed)[0]
    x = onehot(sample.inputs, V, dtype=dtype)
    target = torch.nn.functional.one_hot(torch.as_tensor(sample.labels), NC).to(dtype)
    return x, target


def run_norse(spec, params, weights, spikes) -> NorseRun:
    traces = [SynapseEligibility(params.elig, params.dt, params.pre) for _ in range(spec.depth)]
    rec: dict[int, list] = {}

    def recorder(t, l, values):
        rec.setdefault(l, []).append((values["z"].clone(), values["v_pre"].clone()))

    state = initial_state(spec, params, spikes.shape[1], spikes.dtype)
    run_window(spikes, weights.hidden, spec, params, state, traces, True, recorder)
    z = [torch.stack([r[0] for r in rec[l]]).numpy() for l in range(spec.depth)]
    v = [torch.stack([r[1] for r in rec[l]]).numpy() for l in range(spec.depth)]
    return NorseRun(z, v, [tr.value().numpy() for tr in traces], [float(tr.expected_value()) for tr in traces])


OLD_OPERATING_POINT = {"v_leak": 1.0, "reset": "zero", "v_init": "rest"}  # rest at threshold, reset to 0
BELOW_THRESHOLD = {"v_leak": 0.0, "reset": "subtract", "v_init": "half", "drive": 8.0}


def make_setup(arch: str, dtype=torch.float64, operating_point: dict | None = None) -> Setup:
    """``operating_point``: keywords of ``build_parameters`` (v_leak, reset, v_init, drive); None: its defaults."""
    x, target = rhm_batch(dtype=dtype)
    enc = SpikeEncoder("rate", T, DT, MAX_RATE, V)
    spikes = enc(x, torch.Generator().manual_seed(1)).to(dtype)
    spec = build_spec(arch, enc.channels, S**L, S, L, WIDTH, NC)
    params = build_parameters(spec, enc.nominal_rate, dt=DT, tau_elig=T * DT, **(operating_point or {}))
    if dtype == torch.float64:
        params = float64_parameters(params)
    weights = init_weights(spec, torch.Generator().manual_seed(0), dtype=dtype)
    return Setup(spec, params, weights, spikes, target, run_norse(spec, params, weights, spikes),
                 simulate(spec, params, weights, spikes))
