r"""A trained network, frozen, as the Norse back end simulates it: the reference for every deployment.

:class:`TrainedNetwork` holds what a deployment needs and nothing of training: shapes, neuron
parameters, hidden weights and the affine readout of the checkpoint,

    logits = hbar . R + c,     hbar = counts_top.mean(positions) / (T rho_h)

(:mod:`spiking_rhm.checkpoint`).  A checkpoint of the rate back end becomes a spiking network
by this same map (the LIF rate with ``v_leak = v_th`` is a smoothed ReLU of the rate network's
pre-activation, ``docs/spiking.md``); ``spiking`` overrides (e.g. ``T``, ``max_rate``) change the
simulation, not the weights.  :mod:`hardware.nir_graph` writes it as NIR and :mod:`hardware.loihi`
runs it on Lava; :func:`simulate` is what both are compared with.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

from spiking_rhm.backends.norse.inputs import SpikeEncoder
from spiking_rhm.backends.norse.network import (
    NetworkSpec,
    NorseParameters,
    float64_parameters,
    initial_state,
    run_window,
    top_rates,
)
from spiking_rhm.errors import ConfigError

Tensor = torch.Tensor


class TrainedNetwork(NamedTuple):
    spec: NetworkSpec
    params: NorseParameters
    hidden: list[Tensor]  # W^l, spec.weight_shapes()
    readout_weight: Tensor  # R [H, n_out]
    readout_bias: Tensor  # c [n_out]
    encoder: SpikeEncoder
    config: Any  # the RunConfig the network was built from (spiking overrides applied)

    @property
    def steps(self) -> int:
        return self.encoder.T

    def readout(self, counts_top: Tensor, steps: int) -> Tensor:
        """``hbar . R + c`` from the top layer's spike counts ``[N, P, H]`` over ``steps`` steps."""
        return top_rates(counts_top, steps, self.params) @ self.readout_weight + self.readout_bias


def _lif_only(cfg, spiking: Mapping[str, Any]) -> dict:
    """The deployed network (and NIR's CubaLIF) is the current-based LIF: a network trained with another brian2
    neuron model is refused, unless ``spiking.neuron = lif`` is asked for (its weights in the LIF, an
    approximation; docs/brian2.md).  Returns the overrides to apply."""
    sp = cfg.spiking
    if spiking.get("neuron") == "lif" and "neuron_options" not in spiking:
        spiking = {**spiking, "neuron_options": {}}
    neuron, options = spiking.get("neuron", sp.neuron), dict(spiking.get("neuron_options", sp.neuron_options))
    if neuron == "lif" and not options:
        return dict(spiking)
    raise ConfigError(f"the network's neuron is the brian2 model {neuron!r} (options {options}), which the deployed "
                      f"network and NIR's CubaLIF cannot express; to run its weights in the current-based LIF "
                      f"(an approximation) give --option spiking.neuron=lif")


def from_checkpoint(checkpoint, spiking: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float64,
                    device: str | torch.device = "cpu") -> TrainedNetwork:
    """The network of a :class:`~spiking_rhm.checkpoint.Checkpoint`; ``spiking`` overrides ``cfg.spiking`` fields.

    In float64 (the default) the neuron parameters are float64 too (``float64_parameters``), so that
    the simulation is the float64 equations that Lava and Brian2 compute.
    """
    from spiking_rhm.backends.norse.build import build_network

    cfg = checkpoint.config
    spiking = _lif_only(cfg, spiking or {})
    if spiking:
        unknown = sorted(set(spiking) - {f.name for f in dataclasses.fields(cfg.spiking)})
        if unknown:
            raise ConfigError(f"unknown spiking setting(s) {', '.join(unknown)}")
        cfg = cfg.replace(spiking=dataclasses.replace(cfg.spiking, **spiking))
    encoder, spec, params = build_network(cfg, cfg.rhm.v)
    if params.readout != "counts":
        raise ConfigError(f"a deployed network reads out spike counts; this one was trained with the "
                          f"{params.readout!r} readout (use --option spiking.readout=counts)")
    if dtype == torch.float64:
        params = float64_parameters(params)
    shapes = spec.weight_shapes()
    if len(checkpoint.hidden) != len(shapes) or any(tuple(w.shape) != s for w, s in zip(checkpoint.hidden, shapes)):
        raise ConfigError(f"checkpoint weights {[tuple(w.shape) for w in checkpoint.hidden]} do not fit the "
                          f"network of its config {shapes}")
    if checkpoint.readout_weight.shape != (spec.widths[-1], spec.n_out):
        raise ConfigError(f"checkpoint readout {checkpoint.readout_weight.shape} does not fit "
                          f"[{spec.widths[-1]}, {spec.n_out}]")
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    return TrainedNetwork(spec, params, [as_tensor(w) for w in checkpoint.hidden], as_tensor(checkpoint.readout_weight),
                          as_tensor(checkpoint.readout_bias), encoder, cfg)


def simulate(net: TrainedNetwork, spikes: Tensor, record: bool = False) -> tuple[list[Tensor], Tensor, list | None]:
    """One window of input ``spikes [T, N, C, d]`` from rest: ``(counts per layer [N, P, H], logits, trains)``.

    With ``record=True`` ``trains[l]`` is layer l's spike train ``[T, N, P, H]``.
    """
    trains: dict[int, list[Tensor]] = {}

    def recorder(t, l, values):
        trains.setdefault(l, []).append(values["z"].clone())

    state = initial_state(net.spec, net.params, spikes.shape[1], spikes.dtype, spikes.device)
    with torch.no_grad():
        res, _ = run_window(spikes, net.hidden, net.spec, net.params, state, recorder=recorder if record else None)
    logits = net.readout(res.counts[-1], res.steps)
    out = [torch.stack(trains[l]) for l in range(net.spec.depth)] if record else None
    return res.counts, logits, out


def refit_readout(net: TrainedNetwork, seed: int | None = None, batch: int = 1024) -> tuple[TrainedNetwork, dict]:
    """The network with its readout refitted on its own spiking features of the run's P training points.

    A converged linear probe (:func:`spiking_rhm.metrics.fit_linear_probe`) on ``hbar`` of the
    training split of ``net.config`` (the points the network was trained on; their labels train
    the readout only).  This calibrates a rate-trained network to its spiking simulation
    (the LIF f-I curve is a smoothed, saturating ReLU); returns ``(network, probe scores)``,
    the test scores on the first ``min(P_test, 2048)`` held-out points.
    """
    from spiking_rhm.metrics import fit_linear_probe

    cfg = net.config
    P, P_test = cfg.sizes()
    train, test = cfg.rhm.build().split(P, min(P_test, 2048), seed=cfg.seed)
    seed = cfg.seed + 2 if seed is None else int(seed)

    def features(sample, offset):
        parts = []
        for k, i in enumerate(range(0, len(sample.labels), batch)):
            counts, _, _ = simulate(net, encode(net, sample.inputs[i:i + batch], seed + offset + k))
            parts.append(top_rates(counts[-1], net.steps, net.params))
        return torch.cat(parts) if parts else torch.zeros(0, net.spec.widths[-1])

    fit = fit_linear_probe(features(train, 0), train.labels, features(test, 10**6), test.labels, net.spec.n_out)
    like = net.readout_weight
    weight = torch.as_tensor(fit.weight, dtype=like.dtype, device=like.device)
    bias = torch.as_tensor(fit.bias, dtype=like.dtype, device=like.device)
    return net._replace(readout_weight=weight, readout_bias=bias), fit.metrics


def encode(net: TrainedNetwork, inputs: np.ndarray, seed: int) -> Tensor:
    """Spikes ``[T, N, C, d]`` of RHM ``inputs [N, d]`` under the network's code, seeded."""
    from spiking_rhm.rhm import onehot

    dtype, device = net.readout_weight.dtype, net.readout_weight.device
    x = onehot(inputs, net.config.rhm.v, dtype=dtype, device=device)
    return net.encoder(x, torch.Generator().manual_seed(int(seed)))


__all__ = ["TrainedNetwork", "encode", "from_checkpoint", "refit_readout", "simulate"]
