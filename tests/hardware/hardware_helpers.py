"""A small trained-looking network (random weights, random affine readout) for the hardware tests."""

from __future__ import annotations

import numpy as np
import torch

from spiking_rhm.backends.norse.deployed import TrainedNetwork
from spiking_rhm.backends.norse.network import float64_parameters, init_weights
from spiking_rhm.backends.norse.build import build_network
from spiking_rhm.config import NetConfig, RHMConfig, RunConfig, SpikingConfig

RHM = RHMConfig(v=4, m=2, n_c=3, s=2, L=2)
# what a NIR CubaLIF expresses: rest at threshold, reset to 0, a start at rest, Bernoulli rate code
NIR_OPERATING_POINT = {"code": "rate", "v_rest": None, "reset": "zero", "v_init": "rest"}


def make_config(arch: str = "cnn", width: int = 6, T: int = 12, max_rate: float = 400.0, seed: int = 0) -> RunConfig:
    return RunConfig(rhm=RHM, P=16, P_test=8, rule="dfa", backend="norse", seed=seed, net=NetConfig(arch, width),
                     spiking=SpikingConfig(T=T, max_rate=max_rate, **NIR_OPERATING_POINT))


def make_network(arch: str = "cnn", seed: int = 0, **kw) -> TrainedNetwork:
    """Weights drawn as the Norse back end draws them (float64), a random readout with a bias."""
    cfg = make_config(arch, seed=seed, **kw)
    encoder, spec, params = build_network(cfg, cfg.rhm.v)
    params = float64_parameters(params)
    weights = init_weights(spec, torch.Generator().manual_seed(seed), torch.float64)
    rng = np.random.default_rng(seed)
    R = torch.as_tensor(rng.normal(size=(spec.widths[-1], spec.n_out)), dtype=torch.float64)
    c = torch.as_tensor(rng.normal(size=spec.n_out), dtype=torch.float64)
    return TrainedNetwork(spec, params, weights.hidden, R, c, encoder, cfg)


def input_spikes(net: TrainedNetwork, N: int = 5, seed: int = 1) -> torch.Tensor:
    """Spikes of N random RHM inputs under the network's code."""
    from spiking_rhm.backends.norse.deployed import encode

    rhm = net.config.rhm.build()
    indices = np.random.default_rng(seed).integers(0, rhm.P_max, size=N)
    return encode(net, rhm.decode(indices).inputs, seed)


def plastic_setup(arch: str, rule: str = "dfa", scale: str = "none", N: int = 2):
    """A small network with the delta readout ``(beta / H, 0)``, N inputs, one-hot targets and the
    Norse three-factor learner of ``rule``: ``(net, beta, learner, spikes, target)``."""
    from spiking_rhm.backends.norse.learners import ThreeFactorLearner

    net = make_network(arch, width=5, T=12)
    beta = torch.randn(net.spec.widths[-1], net.spec.n_out, generator=torch.Generator().manual_seed(5),
                       dtype=torch.float64)
    net = net._replace(readout_weight=beta / beta.shape[0], readout_bias=torch.zeros(net.spec.n_out,
                                                                                      dtype=torch.float64))
    spikes = input_spikes(net, N=N)
    target = torch.nn.functional.one_hot(torch.arange(N) % net.spec.n_out, net.spec.n_out).double()
    learner = ThreeFactorLearner(rule, {}, net.spec, net.params, torch.Generator().manual_seed(3),
                                 eligibility="synapse", scale=scale, dtype=torch.float64)
    return net, beta, learner, spikes, target
