r"""Online three-factor training on Lava's learning engine: many presentations, weights carried across.

:func:`train_online` trains a run config's network by a soma-local three-factor rule (the DFA family)
with plain online SGD over mini-batches, on one of two engines that see the same presentations:

* ``lava``  -- every mini-batch is one plastic presentation on Lava's float learning engine
  (:func:`hardware.loihi.learning.three_factor_step`, checked against the Norse learner to 1e-12);
  the weights it leaves are the next presentation's weights;
* ``norse`` -- the Norse learner (:class:`~spiking_rhm.backends.norse.learners.ThreeFactorLearner`,
  per-synapse eligibility, the chip's) on the same spikes: the float reference;
* ``loihi-fixed`` -- Loihi's bit-approximate learning engine in integers (8-bit weights, 7-bit
  traces and ``y`` factors, 8-bit tags, stochastic rounding as Lava implements it;
  :mod:`hardware.loihi.fixed_learning`, its numpy model checked against Lava's engine integer for
  integer), on the integer network (Lava's bit-accurate LIF): the chip keeps its integer weights
  and random streams from presentation to presentation.  Its test error is that of the integer
  network (inference in the same integers).

Per mini-batch ``W^l <- W^l - lr grad^l`` (what the chip applied) and, on the host, the delta-rule
readout ``beta <- beta - lr_out hbar^T (softmax(y) - y*) / (N H)``.  A batch of N samples runs as N
copies of the network side by side; their N weight changes are summed on the host and written back
to every copy (a host-side all-reduce: with ``batch = 1`` training is purely on chip).  Loihi has no
weight sharing, so the chip trains ``lcn`` and ``fcn`` networks (a ``cnn`` is refused).  The test
error after each epoch is that of the Norse float network with the current weights, which Lava's
float inference reproduces spike for spike (``tests/hardware``).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from hardware.loihi.fixed_learning import WEIGHT_RANGE
from spiking_rhm.errors import ConfigError
from spiking_rhm.training import all_finite

ENGINES = ("lava", "norse", "loihi-fixed")


def learning_rates(rule, width: int, H: int, lr: float | None, readout_lr: float | None) -> tuple[float, float]:
    """(hidden, readout) rates.  Defaults as on the Norse back end (:func:`spiking_rhm.training.learning_rates`):
    the rule's ``default_lr`` (times the width for width-scaled rules) and a readout rate of ``H`` (``lr H`` for
    width-scaled rules).  Unlike there, a given ``lr`` or ``readout_lr`` is used as it is, not scaled by the
    width or the readout's fan-in ``H`` (the on-chip scripts pass one absolute rate for both)."""
    scaled = rule.width_scaled_lr
    base = rule.default_lr if lr is None else float(lr)
    hidden = base * (width if scaled and lr is None else 1.0)
    out = readout_lr if readout_lr is not None else (base if scaled else 1.0) * H
    return hidden, float(out)


def train_online(cfg, engine: str = "lava", batch: int = 4, epochs: int = 2, lr: float | None = None,
                 readout_lr: float | None = None, scale: str = "none", progress: bool = False,
                 headroom: float = 2.0, restart: bool = False, fixed_engine: str = "numpy") -> dict:
    """Train ``cfg`` (rule, RHM, P, net, spiking, seed) online on ``engine``; returns the learning record.

    The record holds the test error before training and after every epoch (``curve``), the final
    weights, the rates used and the wall time.  Initial weights, feedback matrices, the order of the
    points and every spike train come from ``cfg.seed`` alone, so the engines see the same run.
    ``headroom`` (``loihi-fixed``): the initial weights use ``1 / headroom`` of the 8-bit range;
    ``restart``: every presentation starts as a new Lava process does (random streams from their
    seeds again, weights truncated to even mantissas) instead of a chip that keeps running;
    ``fixed_engine="lava"`` runs every presentation on Lava's bit-approximate engine itself (as new
    processes: needs ``restart``; the numpy model computes the same integers, ~100x faster).
    """
    from hardware.loihi.learning import SCALES, FixedChip, fixed_three_factor_step, three_factor_step
    from spiking_rhm.backends.norse.deployed import TrainedNetwork
    from spiking_rhm.backends.norse.learners import PresentedBatch, ThreeFactorLearner
    from spiking_rhm.backends.norse.network import (
        Weights,
        float64_parameters,
        forward_features,
        init_weights,
        readout_gradient,
        top_rates,
    )
    from spiking_rhm.backends.norse.train import build_network
    from spiking_rhm.rhm import onehot

    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if scale not in SCALES:
        raise ConfigError(f"eligibility scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if cfg.net.arch == "cnn":
        raise ConfigError("Loihi has no weight sharing: on chip a cnn's synapses learn independently; "
                          "train an lcn (net.arch = lcn) or an fcn")
    if engine == "loihi-fixed" and fixed_engine == "lava" and not restart:
        raise ConfigError("Lava runs every presentation as a new process: fixed_engine='lava' needs restart=True")
    if not (isinstance(batch, int) and batch >= 1 and isinstance(epochs, int) and epochs >= 0):
        raise ConfigError(f"batch must be >= 1 and epochs >= 0 (integers), got {batch!r}, {epochs!r}")
    if cfg.spiking.weight_bits is not None:
        raise ConfigError("spiking.weight_bits is fixed-point-aware training of the Norse back end, which on-chip "
                          "training does not use (leave weight_bits unset)")
    dtype = torch.float64
    rhm = cfg.rhm.build()
    encoder, spec, params = build_network(cfg, rhm.v)
    params = float64_parameters(params)
    init_gen = torch.Generator().manual_seed(cfg.seed)
    w = init_weights(spec, init_gen, dtype)
    learner = ThreeFactorLearner(cfg.rule, dict(cfg.rule_options), spec, params, init_gen, eligibility="synapse",
                                 scale=scale, dtype=dtype)
    rule = learner.rule  # three_factor_step refuses the rules the chip cannot run before Lava starts
    hidden, beta = [t.clone() for t in w.hidden], w.readout.clone()
    chip, chip_stats = None, []

    def trained(hidden_weights):
        return TrainedNetwork(spec, params, hidden_weights, beta / beta.shape[0], torch.zeros(spec.n_out, dtype=dtype),
                              encoder, cfg)

    if engine == "loihi-fixed":
        chip = FixedChip(trained(hidden), headroom=headroom, rng_seed=cfg.seed)
        hidden = [W.to(dtype) for W in chip.hidden()]
    lr_h, lr_out = learning_rates(rule, spec.widths[0], spec.widths[-1], lr, readout_lr)
    P, P_test = cfg.sizes()
    train, test = rhm.split(P, P_test, seed=cfg.seed)
    spike_gen = torch.Generator().manual_seed(cfg.seed + 104729)
    order_gen = torch.Generator().manual_seed(cfg.seed + 7919)
    size = min(batch, P)
    steps_per_epoch = -(-P // size)

    def present(sample):
        x = onehot(sample.inputs, rhm.v, dtype=dtype)
        target = torch.nn.functional.one_hot(torch.as_tensor(sample.labels), spec.n_out).to(dtype)
        return encoder(x, spike_gen), target

    def test_error() -> float:
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        wrong = 0
        for i in range(0, P_test, 512):
            part = test.take(np.arange(i, min(P_test, i + 512)))
            spikes = encoder(onehot(part.inputs, rhm.v, dtype=dtype), gen)
            if chip is not None:  # the integer network
                top = torch.as_tensor(chip.counts(spikes.numpy())[-1], dtype=dtype)
                logits = trained(hidden).readout(top, spikes.shape[0])
            else:
                _, logits = forward_features(spikes, Weights(hidden, beta), spec, params)
            wrong += int((logits.argmax(1).numpy() != part.labels).sum())
        return wrong / P_test

    start = time.perf_counter()
    curve = [{"epoch": 0, "presentations": 0, "test_error": test_error()}]
    presentations = 0
    iterator = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"{engine} {cfg.rule} P={P}", unit="epoch")
    for epoch in iterator:
        perm = torch.randperm(P, generator=order_gen).numpy()
        wrong = 0
        for k in range(steps_per_epoch):
            sample = train.take(perm[k * size:(k + 1) * size])
            spikes, target = present(sample)
            if engine == "norse":
                res = learner.step(Weights(hidden, beta), PresentedBatch(spikes, target), lr_h)
                grads, grad_out, logits = res.grads, res.grad_readout, res.logits
            elif engine == "loihi-fixed":
                res = fixed_three_factor_step(chip, trained(hidden), rule, learner.rule_state, spikes, target, lr_h,
                                              scale, engine=fixed_engine, continuous=not restart)
                learner.rule_state = res.rule_state
                base = [(W >> 1) << 1 for W in chip.weights] if restart else chip.weights  # where the process started
                chip.weights = [np.clip(W + d.sum(0), *WEIGHT_RANGE) for W, d in zip(base, res.deltas)]
                chip_stats.append(res.stats)
                hbar = top_rates(torch.as_tensor(res.counts[-1], dtype=dtype), spikes.shape[0], params)
                logits = res.logits
                grad_out = readout_gradient(hbar, logits, target)
            else:
                net = TrainedNetwork(spec, params, hidden, beta / beta.shape[0], torch.zeros(spec.n_out, dtype=dtype),
                                     encoder, cfg)
                res = three_factor_step(net, rule, learner.rule_state, spikes, target, lr_h, scale)
                learner.rule_state = res.rule_state
                grads = [torch.as_tensor(g, dtype=dtype) for g in res.grads]
                hbar = top_rates(torch.as_tensor(res.counts[-1], dtype=dtype), spikes.shape[0], params)
                logits = res.logits
                grad_out = readout_gradient(hbar, logits, target)
            if chip is not None:
                hidden = [W.to(dtype) for W in chip.hidden()]
            else:
                hidden = [W - lr_h * g for W, g in zip(hidden, grads)]
            beta = beta - lr_out * grad_out
            wrong += int((logits.argmax(1).numpy() != sample.labels).sum())
            presentations += len(sample.labels)
        if not all_finite([*hidden, beta]):
            curve.append({"epoch": epoch, "presentations": presentations, "test_error": math.nan,
                          "train_error": wrong / P, "diverged": True})
            break
        curve.append({"epoch": epoch, "presentations": presentations, "test_error": test_error(),
                      "train_error": wrong / P})
    record = {"engine": engine, "rule": cfg.rule, "P": P, "P_test": P_test, "seed": cfg.seed, "batch": size,
              "epochs": epochs, "lr": {"hidden": lr_h, "readout": lr_out}, "scale": scale,
              "test_error": curve[-1]["test_error"], "curve": curve, "wall_time": time.perf_counter() - start,
              "weights": [W.numpy() for W in hidden], "readout": beta.numpy()}
    if chip is not None:
        record["fixed"] = fixed_summary(chip, chip_stats, headroom) | {"restart": restart, "engine": fixed_engine}
    return record


def fixed_summary(chip, stats: list[dict], headroom: float) -> dict:
    """What the integers did over a run: the rule's integer constants per layer, the mean fractions of
    learning signals clipped to / rounded to 0 by the 7-bit ``y2``, of tags at their 8-bit bounds, and of
    weights at the 8-bit bounds at the end."""
    keys = sorted({k for s in stats for k in s})
    return {"headroom": headroom,
            "rules": [{"impulse": r.impulse, "y3": r.y3, "decay": list(r.decay), "pair": list(r.pair),
                       "weight": list(r.weight) if r.weight is not None else None, "tag_unit": r.tag_unit}
                      for r in chip.rules],
            "weight_exp": [int(n.weight_exp) for n in chip.neurons],
            "mean": {k: float(np.mean([s[k] for s in stats if k in s])) for k in keys},
            "weights_at_bounds": [float(np.mean(((W <= WEIGHT_RANGE[0]) | (W >= WEIGHT_RANGE[1]))[m]))
                                  for W, m in zip(chip.weights, chip.masks)]}


__all__ = ["ENGINES", "fixed_summary", "learning_rates", "train_online"]
