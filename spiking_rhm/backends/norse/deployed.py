r"""A trained network, frozen, as the Norse back end simulates it: the reference for every deployment.

:class:`TrainedNetwork` holds what a deployment needs and nothing of training: shapes, neuron
parameters, hidden weights and the affine readout of the checkpoint,

    logits = hbar . R + c,     hbar = counts_top.mean(positions) / (T rho_h)

(:mod:`spiking_rhm.checkpoint`).  A checkpoint of the rate back end becomes a spiking network
by this same map (the LIF rate with ``v_leak = v_th`` is a smoothed ReLU of the rate network's
pre-activation, ``docs/spiking.md``); ``spiking`` overrides (e.g. ``T``, ``max_rate``) change the
simulation, not the weights.  :mod:`hardware.nir_graph` writes it as NIR and :mod:`hardware.loihi`
runs it on Lava; :func:`simulate` is what both are compared with.

**Data-based weight normalisation** (:func:`normalise`; Diehl et al. 2015, Rueckauer et al. 2017): a rate
network's ReLU activations ``h^l`` have no natural scale, a LIF's rate lies between its rheobase and one
spike per step.  With ``lambda_l`` the p-th percentile of layer l's positive rate activations on the
training points and ``r`` the target rate (a fraction of the largest rate ``1 / rho_h``, in the units of
``h``), ``W^l <- W^l lambda_{l-1} / lambda_l`` (``lambda_0 = r``: the one-hot input is ``h = 1``) and
``R <- R lambda_L / r``: by the ReLU's homogeneity the normalised network's activations are ``r h^l /
lambda_l`` and its logits those of the rate network, while the percentile unit fires at ``r``.
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
    if "weight_bits" in spiking:
        raise ConfigError("spiking.weight_bits is a training setting: a checkpoint holds the weights its run was scored "
                          "with (quantised when it trained with weight_bits), and they are deployed as saved")
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


def simulate(net: TrainedNetwork, spikes: Tensor, record: bool = False, generator: torch.Generator | None = None
             ) -> tuple[list[Tensor], Tensor, list | None]:
    """One window of input ``spikes [T, N, C, d]`` from the start potential: ``(counts per layer [N, P, H], logits,
    trains)`` (``generator``: the draws of a dithered start, ``spiking.v_init = uniform``).

    With ``record=True`` ``trains[l]`` is layer l's spike train ``[T, N, P, H]``.
    """
    trains: dict[int, list[Tensor]] = {}

    def recorder(t, l, values):
        trains.setdefault(l, []).append(values["z"].clone())

    state = initial_state(net.spec, net.params, spikes.shape[1], spikes.dtype, spikes.device, generator)
    with torch.no_grad():
        res, _ = run_window(spikes, net.hidden, net.spec, net.params, state, recorder=recorder if record else None)
    logits = net.readout(res.counts[-1], res.steps)
    out = [torch.stack(trains[l]) for l in range(net.spec.depth)] if record else None
    return res.counts, logits, out


def run_points(cfg, n_test: int | None = None):
    """``(train, test)`` of the run of ``cfg``: its P training points and the first ``n_test`` of its held-out
    points (all by default).  The training points follow the run's ``P_test`` held-out ones
    (:meth:`~spiking_rhm.rhm.RHM.split`), so they are drawn with the run's own ``P_test``."""
    P, P_test = cfg.sizes()
    rhm = cfg.rhm.build()
    train, test = rhm.split(P, P_test, seed=cfg.seed)
    if n_test is not None and n_test < P_test:
        test = rhm.points(np.arange(max(0, int(n_test))), cfg.seed)
    return train, test


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
    train, test = run_points(cfg, n_test=2048)
    seed = cfg.seed + 2 if seed is None else int(seed)
    train_feats, _ = features(net, train.inputs, seed, batch)
    test_feats, _ = features(net, test.inputs, seed + 10**6, batch)

    fit = fit_linear_probe(train_feats, train.labels, test_feats, test.labels, net.spec.n_out)
    like = net.readout_weight
    weight = torch.as_tensor(fit.weight, dtype=like.dtype, device=like.device)
    bias = torch.as_tensor(fit.bias, dtype=like.dtype, device=like.device)
    return net._replace(readout_weight=weight, readout_bias=bias), fit.metrics


def rate_activations(net: TrainedNetwork, inputs: np.ndarray) -> list[Tensor]:
    """The rate network's ReLU activations ``h^l = relu(W^l . patch / sqrt(K_l))`` ``[N, P_l, H]`` on RHM
    ``inputs`` (one-hot, the layout of ``rate_models.networks`` without bias: the weights of ``net``)."""
    from spiking_rhm.backends.norse.neurons import patches
    from spiking_rhm.rhm import onehot

    like = net.readout_weight
    x = onehot(inputs, net.config.rhm.v, dtype=like.dtype, device=like.device).transpose(1, 2)  # [N, d, v]
    out = []
    for W, K in zip(net.hidden, net.spec.fan_in):
        x = torch.relu(net.spec.connectivity.apply(patches(x, net.spec.patch), W) / K**0.5)
        out.append(x)
    return out


def rate_logits(net: TrainedNetwork, inputs: np.ndarray) -> Tensor:
    """The rate network's logits ``hbar . R + c``, ``hbar`` = the top layer's position-averaged ReLU activations
    (:func:`rate_activations`): what ``net`` computes without spikes."""
    return rate_activations(net, inputs)[-1].mean(1) @ net.readout_weight + net.readout_bias


def normalise(net: TrainedNetwork, percentile: float = 99.9, target: float = 1.0, n_points: int = 2048
              ) -> tuple[TrainedNetwork, dict]:
    """Data-based weight normalisation of a converted rate network (module docstring; Rueckauer et al. 2017).

    ``lambda_l`` = the ``percentile`` of layer l's positive rate activations on the first ``n_points`` training
    points of ``net.config``; ``target`` = the rate the percentile unit fires at, as a fraction of one spike
    per step.  Returns ``(network, {"lambda": [...], "factors": [...], "target_rate": r})``.
    """
    if not (0 < percentile <= 100):
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
    if not (0 < target <= 1):
        raise ConfigError(f"target must be a fraction of the largest rate in (0, 1], got {target}")
    if int(n_points) < 1:
        raise ConfigError(f"n_points must be >= 1, got {n_points}")
    train, _ = run_points(net.config, n_test=0)
    acts = rate_activations(net, train.inputs[:n_points])
    lam = []
    for h in acts:
        pos = h[h > 0]
        lam.append(float(np.percentile(pos.double().cpu().numpy(), percentile)) if pos.numel() else 1.0)  # no size cap
    r = target / net.params.rho_hidden
    prev = r  # lambda_0: the one-hot input is h = 1, its unit should fire at r
    hidden, factors = [], []
    for W, lam_l in zip(net.hidden, lam):
        factors.append(prev / lam_l)
        hidden.append(W * (prev / lam_l))
        prev = lam_l
    weight = net.readout_weight * (lam[-1] / r)
    return net._replace(hidden=hidden, readout_weight=weight), {"lambda": lam, "factors": factors,
                                                                "target_rate": r, "percentile": percentile}


def held_out_error(net: TrainedNetwork, n_test: int | None = None, seed: int = 1, batch: int = 1024) -> float:
    """Error of ``net`` on the held-out points of its run (the first ``n_test``; all by default), encoded with
    ``seed`` (the readout of ``net`` as it is)."""
    _, test = run_points(net.config, n_test=n_test)
    _, logits = features(net, test.inputs, seed, batch)
    return int((logits.argmax(1).cpu().numpy() != test.labels).sum()) / max(1, len(test.labels))


def features(net: TrainedNetwork, inputs: np.ndarray, seed: int, batch: int = 1024) -> tuple[Tensor, Tensor]:
    """``(hbar [N, H], logits [N, n_out])`` of RHM ``inputs`` simulated in batches of ``batch`` points, batch k
    encoded with seed ``seed + k`` (a dithered start from its own generator,
    seeded ``seed + k + 104729``): the top
    layer's position-averaged rates and the readout of ``net``."""
    rates, logits = [], []
    for k, i in enumerate(range(0, len(inputs), batch)):
        starts = torch.Generator().manual_seed(seed + k + 104729) if net.params.v_spread else None
        counts, out, _ = simulate(net, encode(net, inputs[i:i + batch], seed + k), generator=starts)
        rates.append(top_rates(counts[-1], net.steps, net.params))
        logits.append(out)
    if not rates:
        like = net.readout_weight
        return like.new_zeros(0, net.spec.widths[-1]), like.new_zeros(0, net.spec.n_out)
    return torch.cat(rates), torch.cat(logits)


def encode(net: TrainedNetwork, inputs: np.ndarray, seed: int) -> Tensor:
    """Spikes ``[T, N, C, d]`` of RHM ``inputs [N, d]`` under the network's code, seeded."""
    from spiking_rhm.rhm import onehot

    dtype, device = net.readout_weight.dtype, net.readout_weight.device
    x = onehot(inputs, net.config.rhm.v, dtype=dtype, device=device)
    return net.encoder(x, torch.Generator().manual_seed(int(seed)))


__all__ = ["TrainedNetwork", "encode", "features", "from_checkpoint", "held_out_error", "normalise", "rate_activations", "rate_logits",
           "refit_readout", "run_points", "simulate"]
