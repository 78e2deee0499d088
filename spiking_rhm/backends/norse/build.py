"""The Norse network a config describes (spike encoder, :mod:`spiking_rhm.network` shapes, neuron/trace
parameters): no training code, so reading a checkpoint or a NIR graph needs only the simulator."""

from __future__ import annotations

from spiking_rhm.backends.norse.inputs import SpikeEncoder
from spiking_rhm.backends.norse.network import NorseParameters, build_parameters
from spiking_rhm.errors import ConfigError
from spiking_rhm.network import NetworkSpec, spec_from_config


def build_network(cfg, v: int) -> tuple[SpikeEncoder, NetworkSpec, NorseParameters]:
    """The spike encoder, network shapes and neuron/trace parameters that ``cfg`` describes (``v`` symbols)."""
    sp = cfg.spiking
    encoder = SpikeEncoder.from_config(sp, v)
    if cfg.net.bias:
        raise ConfigError("net.bias is not supported by the norse back end (use bias = false)")
    spec = spec_from_config(cfg, encoder.channels)
    params = build_parameters(spec, encoder.nominal_rate, dt=sp.dt, tau_mem=sp.tau_mem, tau_syn=sp.tau_syn,
                              tau_pre=sp.tau_pre, tau_elig=sp.tau_elig, v_th=sp.v_th, drive=float(sp.drive),
                              psi_beta=float(sp.psi_beta), v_leak=sp.v_rest, reset=sp.reset, v_init=sp.v_init,
                              readout=sp.readout, tau_readout=sp.tau_readout, layer_gain=sp.layer_gain)
    return encoder, spec, params


__all__ = ["build_network"]
