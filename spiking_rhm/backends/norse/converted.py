r"""The ``norse-converted`` back end: a rule trained on the rate back end, its network simulated on Norse.

One run, one record (the schema of every back end)::

    rate run = train(cfg with backend = rate)                      its scores: metrics.rate
    network  = deployed.from_checkpoint(the rate network)          the simulation: cfg.spiking (code, T, neurons)
    [convert.normalise]  W^l <- W^l lambda_{l-1} / lambda_l,  R <- R lambda_L / r
                         (deployed.normalise: lambda_l the convert.percentile of layer l's rate activations on
                         convert.n_points training points, r = convert.target spikes per step)
    scores   = the spiking network on the run's P training and P_test held-out points

``test_error`` / ``train_error`` are the converted network's, read out by the rate network's own readout
(``convert.readout = rate``: its online readout for supervised rules, its linear probe for unsupervised ones)
or by a linear probe refitted on the spiking features of the training points (``refitted``).  Both are in
the record: ``metrics.transferred_readout`` (the rate readout on spikes), ``metrics.probe`` (the refitted
probe), ``metrics.online_readout`` (the transferred readout of a supervised rule; None otherwise: the rate
back end's online readout of an unsupervised rule is not part of its network).  ``metrics.rate``: the rate
run's own scores; ``metrics.conversion``: the settings and the per-layer percentiles and factors;
``metrics.energy``: spikes and synaptic operations per inference, per layer (256 held-out points);
``metrics.spiking``: the simulation's parameters.  Every other field (curve, epochs, learning rates,
alignment, data use) is the rate run's.

Spike draws: held-out points with seed ``seed + 1``, training points ``seed + 2``, energy ``seed + 3``
(batch k of a set adds k).  The rate back end is found through the trainer registry
(:func:`spiking_rhm.api.backend_trainer`): this module imports no back end above the core.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spiking_rhm.checkpoint import Checkpoint, check_checkpoint_path
from spiking_rhm.errors import ConfigError

TRAINED_ON = "rate"
"""The back end that trains the network (its ``BACKEND_OPTIONS`` are this back end's rule options)."""
ENERGY_POINTS = 256
RATE_FIELDS = ("test_error", "train_error", "test_loss", "train_loss", "online_readout", "probe", "evaluation",
               "wall_time", "epochs_run", "stop_reason")


def check_convertible(cfg) -> None:
    """Fail before training on what the converted network cannot be (a clear :class:`ConfigError`)."""
    from spiking_rhm.backends.norse.build import build_network

    if cfg.optim.validation > 0:
        raise ConfigError("optim.validation (and a selection grid) is not supported by the norse-converted back end: "
                          "its scores use all P training points; select on the rate back end")
    if cfg.rule_options.get("readout", "top") != "top":
        raise ConfigError("the norse-converted back end converts networks read out from the top layer "
                          "(rule option readout = top)")
    if cfg.spiking.readout != "counts":
        raise ConfigError(f"a converted network reads out spike counts; got spiking.readout = "
                          f"{cfg.spiking.readout!r} (use spiking.readout = counts)")
    build_network(cfg, cfg.rhm.v)  # net.bias, code and neuron parameters


def train_converted(cfg, progress: bool = False, checkpoint=None) -> dict:
    """Train ``cfg.rule`` on the rate back end, convert the network, score it on Norse (module docstring).

    Returns the metrics dict (never raises on divergence); ``checkpoint``: where to save the converted
    network (normalised weights and the readout it was scored with; ``spiking-rhm export`` reads it).
    """
    from spiking_rhm import api
    from spiking_rhm.backends.norse.train import flush_denormals

    checkpoint = check_checkpoint_path(checkpoint)
    check_convertible(cfg)
    trainer = api.backend_trainer(TRAINED_ON)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="spiking-rhm-convert-") as tmp:
        path = Path(tmp) / "rate.npz"
        rate = trainer(cfg.replace(backend=TRAINED_ON), progress=progress, checkpoint=path)
        rate_net = None if rate.get("diverged") else Checkpoint.load(path)
    summary = {k: rate.get(k) for k in RATE_FIELDS}
    if rate_net is None:  # nothing to convert: the record says diverged, as the rate run's
        return {**rate, "rate": summary, "conversion": None, "energy": None, "transferred_readout": None,
                "wall_time": time.perf_counter() - start}
    with flush_denormals():
        scores = convert_and_score(cfg, rate_net, supervised=bool(rate["rule"]["supervised"]), checkpoint=checkpoint)
    return {**rate, **scores, "rate": summary, "wall_time": time.perf_counter() - start,
            "convert_time": time.perf_counter() - start - float(rate.get("wall_time") or 0.0)}


def convert_and_score(cfg, rate_net: Checkpoint, supervised: bool, checkpoint=None) -> dict:
    """The conversion of the rate network ``rate_net`` as ``cfg.convert`` and ``cfg.spiking`` say, scored on the
    run's points: the record fields of :func:`train_converted` that are not the rate run's."""
    from spiking_rhm.backends.norse.deployed import features, from_checkpoint, normalise, run_points
    from spiking_rhm.backends.norse.network import Weights, activity, describe
    from spiking_rhm.device import resolve_device
    from spiking_rhm.metrics import fit_linear_probe

    conv = cfg.convert
    net = from_checkpoint(dataclasses.replace(rate_net, config=cfg), device=resolve_device(cfg.device))
    conversion = {**dataclasses.asdict(conv), "rate_readout": rate_net.readout_kind}
    if conv.normalise:
        net, info = normalise(net, percentile=conv.percentile, target=conv.target, n_points=conv.n_points)
        conversion.update(**{k: info[k] for k in ("lambda", "factors", "target_rate")})
    train, test = run_points(cfg)
    scored = {}
    for name, sample, seed in (("test", test, cfg.seed + 1), ("train", train, cfg.seed + 2)):
        hbar, logits = features(net, sample.inputs, seed)
        labels = torch.as_tensor(sample.labels, device=logits.device)
        error = float((logits.argmax(1) != labels).double().mean()) if len(labels) else float("nan")
        loss = float(torch.nn.functional.cross_entropy(logits, labels)) if len(labels) else float("nan")
        scored[name] = (hbar, error, loss)
    (test_h, test_error, test_loss), (train_h, train_error, train_loss) = scored["test"], scored["train"]
    fit = fit_linear_probe(train_h, train.labels, test_h, test.labels, net.spec.n_out)
    transferred = {"test_error": test_error, "train_error": train_error, "test_loss": test_loss,
                   "train_loss": train_loss, "kind": rate_net.readout_kind}
    if conv.readout == "refitted":
        main = {k: fit.metrics.get(k) for k in ("test_error", "train_error", "test_loss", "train_loss")}
        evaluation = "linear probe"
        like = net.readout_weight
        net = net._replace(readout_weight=torch.as_tensor(fit.weight, dtype=like.dtype, device=like.device),
                           readout_bias=torch.as_tensor(fit.bias, dtype=like.dtype, device=like.device))
    else:
        main = {k: transferred[k] for k in ("test_error", "train_error", "test_loss", "train_loss")}
        evaluation = "rate network's " + ("online readout" if supervised else "linear probe")
    part = test if len(test.labels) else train
    energy = None
    if len(part.labels):
        from spiking_rhm.backends.norse.deployed import encode

        spikes = encode(net, part.inputs[:ENERGY_POINTS], cfg.seed + 3)
        energy = activity(spikes, Weights(list(net.hidden), net.readout_weight), net.spec, net.params)
    if checkpoint is not None:
        numpy = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
        Checkpoint(cfg, tuple(numpy(w) for w in net.hidden), numpy(net.readout_weight), numpy(net.readout_bias),
                   "probe" if conv.readout == "refitted" else rate_net.readout_kind, cfg.backend,
                   main["test_error"]).save(checkpoint)
    return {**main, "evaluation": evaluation, "transferred_readout": transferred, "probe": fit.metrics,
            "online_readout": ({k: transferred[k] for k in ("test_error", "train_error")} if supervised else None),
            "conversion": conversion, "energy": energy, "readout": "top",
            "spiking": {**dataclasses.asdict(cfg.spiking), **describe(net.spec, net.params)}}


__all__ = ["TRAINED_ON", "check_convertible", "convert_and_score", "train_converted"]
