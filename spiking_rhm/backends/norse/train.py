r"""``train_norse(cfg)``: one spiking training run of any registered rule on the RHM.

Per batch::

    spikes = code(onehot(x)) over T steps            (cfg.spiking: code, T, dt, max_rate)
    [pairs: positive views R_l(x) encoded the same way, shown after cfg.spiking.delay silent steps]
    grads  = learner.step(...)                        (three-factor L x e, or BPTT for rule 'bp')

:class:`NorseBackend` presents batches; the loop (epochs, schedule, SGD, early stop, alignment,
scores, record) is :func:`spiking_rhm.training.train`, the same as the rate back end's.

Learning rates: :func:`spiking_rhm.training.learning_rates` (hidden ``lr x H`` for width-scaled rules,
readout ``readout_lr x H``, default: the rule's lr for width-scaled rules, else 1.0).  Back-end options
given with the rule options: ``readout_lr`` and ``online_readout`` (as the rate back end: for unsupervised
rules the rule's own scores are by default those of a frozen local delta-rule readout fitted on the top-layer
rates after training; ``joint``: the readout trained alongside the layers).  The neuron and trace
parameters come from ``cfg.spiking``: taus, ``drive`` g, ``psi_beta``, ``eligibility``
(factored | synapse) and ``eligibility_scale`` (``expected`` (default): the trace normalised to
the rate eligibility's scale, so the same learning rates apply; ``none``: the raw trace).
``spiking.weight_bits`` = b: fixed-point-aware training -- the network runs (in training, evaluation and the
checkpoint) with its hidden weights quantised to b signed bits with one scale per layer, as the Loihi
fixed-point export quantises them at b = 8; the updates go to float master weights (straight-through).
The metrics dict has the keys of the rate back end (``test_error``, ``train_error``, ``curve``,
``alignment``, ``data``, ``diverged``, ...) plus ``spiking`` (the neuron/trace parameters used).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Mapping

import numpy as np
import torch

from spiking_rhm import training
from spiking_rhm.backends.norse.build import build_network
from spiking_rhm.backends.norse.learners import BPTTLearner, Learner, PresentedBatch, make_learner
from spiking_rhm.backends.norse.network import (
    Weights,
    activity,
    describe,
    float64_parameters,
    forward_features,
    init_weights,
)
from spiking_rhm.backends.norse.traces import ELIGIBILITY_MODES
from spiking_rhm.checkpoint import check_checkpoint_path
from spiking_rhm.device import resolve_device
from spiking_rhm.errors import ConfigError
from spiking_rhm.metrics import fit_linear_probe, probe_scores
from spiking_rhm.plasticity import ELIGIBILITY_SCALES
from spiking_rhm.rhm import onehot
from spiking_rhm.training import Final, StepOutput, cosine_similarity, learning_rates

Tensor = torch.Tensor
BACKEND_OPTIONS: Mapping[str, Any] = {"readout_lr": None, "online_readout": None}
EVAL_CHUNK = 2048
N_ALIGNMENT_POINTS = 3


def split_options(options: Mapping[str, Any], spiking=None) -> tuple[dict, dict]:
    """(rule options, back-end options) from ``cfg.rule_options`` and ``cfg.spiking``."""
    if options.get("readout", "top") != "top":
        raise ConfigError("the norse back end reads out the top layer only (readout = 'top')")
    rule_opts, backend = training.split_options({k: v for k, v in options.items() if k != "readout"},
                                                BACKEND_OPTIONS)
    if spiking is not None:
        backend.update(eligibility=spiking.eligibility, eligibility_scale=spiking.eligibility_scale)
    if backend.get("eligibility_scale", "expected") not in ELIGIBILITY_SCALES:
        raise ConfigError(f"eligibility_scale must be one of {', '.join(ELIGIBILITY_SCALES)}, "
                          f"got {backend['eligibility_scale']!r}")
    if backend.get("eligibility", "factored") not in ELIGIBILITY_MODES:
        raise ConfigError(f"eligibility must be one of {', '.join(ELIGIBILITY_MODES)}, got {backend['eligibility']!r}")
    return rule_opts, backend


class NorseSetup:
    """Everything a run builds from its config: encoder, spec, parameters, weights, learner."""

    def __init__(self, cfg, device: torch.device | None = None, dtype: torch.dtype = torch.float32):
        self.cfg = cfg
        rule_opts, self.backend = split_options(cfg.rule_options, cfg.spiking)
        self.device = device if device is not None else resolve_device(cfg.device)
        self.dtype = dtype
        self.rhm = cfg.rhm.build()
        self.encoder, self.spec, self.params = build_network(cfg, self.rhm.v)
        if dtype == torch.float64:  # Norse's LIF tensors default to float32
            self.params = float64_parameters(self.params)
        sp = cfg.spiking
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.weights: Weights = init_weights(self.spec, init_gen, dtype, self.device)
        self.learner: Learner = make_learner(cfg.rule, rule_opts, self.spec, self.params, init_gen,
                                             delay=sp.delay, eligibility=self.backend["eligibility"],
                                             scale=self.backend["eligibility_scale"],
                                             dtype=dtype, device=self.device, plasticity=sp.plasticity,
                                             update_every=sp.update_every,
                                             modulator_delay=round(sp.modulator_delay / sp.dt),
                                             momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay,
                                             weight_bits=sp.weight_bits)
        self.backend["online_readout"] = training.online_readout_mode(self.backend["online_readout"],
                                                                      self.learner.rule.supervised, cfg.rule)
        self.levels = self.learner.positive_view_levels()
        self.spike_gen = torch.Generator().manual_seed(cfg.seed + 104729)
        self.view_rng = np.random.default_rng([cfg.seed, 2])

    def network_weights(self) -> Weights:
        """The weights the network runs with: the float weights, or with ``spiking.weight_bits`` the hidden
        weights quantised (:meth:`~.learners.Learner.forward_weights`); ``self.weights`` are the master weights."""
        return self.learner.forward_weights(self.weights)

    def learning_rates(self) -> tuple[float, float]:
        """(hidden, readout) learning rates, the conventions of the rate back end."""
        scaled = self.learner.rule.width_scaled_lr
        base = self.cfg.optim.lr if self.cfg.optim.lr is not None else self.learner.default_lr
        return learning_rates(base, scaled, self.spec.widths[0], self.backend["readout_lr"], self.spec.widths[-1])

    def encode(self, inputs: np.ndarray, generator: torch.Generator | None = None) -> Tensor:
        x = onehot(inputs, self.rhm.v, dtype=self.dtype, device=self.device)
        return self.encoder(x, self.spike_gen if generator is None else generator)

    def present(self, sample) -> PresentedBatch:
        """Spikes of a batch (and of its positive views when the rule wants them)."""
        target = torch.nn.functional.one_hot(torch.as_tensor(sample.labels, device=self.device),
                                             self.spec.n_out).to(self.dtype)
        views = None
        if self.levels:
            views = {level: self.encode(self.rhm.resample(sample, level, self.view_rng).inputs)
                     for level in sorted(set(self.levels))}
        return PresentedBatch(self.encode(sample.inputs), target, views, self.spike_gen)


def evaluate(setup: NorseSetup, sample, generator: torch.Generator) -> tuple[float, float, Tensor]:
    """(error, mean cross-entropy, top-layer rates hbar [N, H]) of the spiking network on ``sample``."""
    n = sample.labels.shape[0]
    if n == 0:
        return float("nan"), float("nan"), torch.zeros(0, setup.spec.widths[-1])
    wrong, loss, feats = 0, 0.0, []
    weights = setup.network_weights()
    with torch.no_grad():
        for i in range(0, n, EVAL_CHUNK):
            part = sample.take(np.arange(i, min(n, i + EVAL_CHUNK)))
            hbar, logits = forward_features(setup.encode(part.inputs, generator), weights, setup.spec,
                                            setup.params, generator)
            y = torch.as_tensor(part.labels, device=setup.device)
            wrong += int((logits.argmax(1) != y).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            feats.append(hbar.cpu())
    return wrong / n, loss / n, torch.cat(feats)


def final_scores(evaluate_part, train, test, n_out: int, seed: int, diverged: bool, val=None,
                 online_readout: str = "joint") -> tuple[Final, Any]:
    """``(scores, local readout or None)`` of the final network on ``test`` and ``train`` (``evaluate_part(sample,
    generator) -> (error, loss, top-layer rates)``, one generator seeded ``seed + 1``) and, unless it diverged, the
    converged linear probe on the top-layer rates (as the rate back end); both scorings on the validation points
    ``val`` when there are any.  ``online_readout = frozen``: the rule's own scores are those of the frozen local
    readout fitted on the top-layer rates after training (:func:`spiking_rhm.training.frozen_readout_scores`, as
    the rate back end), not of the readout trained alongside."""
    gen = torch.Generator().manual_seed(seed + 1)
    test_error, test_loss, test_feats = evaluate_part(test, gen)
    train_error, train_loss, train_feats = evaluate_part(train, gen)
    probe = None if diverged else fit_linear_probe(train_feats, train.labels, test_feats, test.labels, n_out)
    validation, val_feats, online_val = None, None, None
    if val is not None:
        val_error, val_loss, val_feats = evaluate_part(val, gen)
        online_val = {"error": val_error, "loss": val_loss}
    local = None
    if online_readout == "frozen" and not diverged:
        local, scores = training.frozen_readout_scores(train_feats, train.labels, test_feats, test.labels, n_out,
                                                       seed, val_feats, None if val is None else val.labels)
        test_error, test_loss, train_error, train_loss, local_val = scores
        online_val = local_val if val is not None else None
    if val is not None:
        validation = {"online_readout": online_val,
                      "probe": None if probe is None else probe_scores(probe, val_feats, val.labels)}
    return Final(test_error, test_loss, train_error, train_loss, probe, None, validation), local


def alignment_with_bptt(setup: NorseSetup, batch: PresentedBatch, grads: list[Tensor]) -> list[float | None]:
    """Per-layer cosine between the rule's update and the surrogate-gradient BPTT gradient (same batch, and
    the same weights the rule's network ran with)."""
    bptt = BPTTLearner("bp", {}, setup.spec, setup.params, torch.Generator(), dtype=setup.dtype, device=setup.device)
    ref = bptt.step(setup.network_weights(), batch, 0.0)
    return [cosine_similarity(g, r) for g, r in zip(grads, ref.grads)]


@contextlib.contextmanager
def flush_denormals():
    """Flush subnormal floats to zero while a run is on (torch's default, off, is restored after).

    Sparse spiking (e.g. the 200 Hz rate code) drives surrogate-gradient and trace values into the
    subnormal range, where CPU arithmetic is ~10x slower; the values flushed are below 1e-38.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train_norse(cfg, progress: bool = False, checkpoint=None) -> dict:
    """Train ``cfg`` with the Norse back end; returns the metrics dict (never raises on divergence).

    ``checkpoint``: a path to save the trained network to (:mod:`spiking_rhm.checkpoint`).
    """
    with flush_denormals():
        return _train_norse(cfg, progress, check_checkpoint_path(checkpoint))


class SetupParameters:
    """The Backend protocol's methods that only read a :class:`NorseSetup` (Norse, Brian2): the trainable
    hidden weights and readout, their learning rates, the data use of pair rules and the checkpoint weights."""

    setup: NorseSetup

    def trainable(self):
        w = self.setup.weights
        return list(w.hidden), [w.readout]

    def learning_rates(self):
        return self.setup.learning_rates()

    def data_use(self):
        return self.setup.learner.data_use() or {"pairs": None}

    def checkpoint_weights(self):
        w = self.setup.network_weights()  # with spiking.weight_bits: the quantised network, what was scored
        return w.hidden, w.readout


class NorseBackend(SetupParameters):
    """The Norse network as a :class:`spiking_rhm.training.Backend`."""

    name = "norse"

    def __init__(self, cfg, dtype: torch.dtype = torch.float32):
        self.cfg = cfg
        self.setup = setup = NorseSetup(cfg, dtype=dtype)
        self.label = f"norse {cfg.rule}"
        P, P_test = cfg.sizes()
        train, self.test = setup.rhm.split(P, P_test, seed=cfg.seed)
        self.train, self.val = training.carve_validation(train, cfg.optim.validation)
        self.n_train = self.train.labels.shape[0]
        for t in setup.weights.parameters():
            t.requires_grad_(False)
        learner = setup.learner
        self.rule = learner.rule
        self.supervised = self.rule.supervised
        self.n_alignment_points = 0 if isinstance(learner, BPTTLearner) else N_ALIGNMENT_POINTS

    def step(self, idx, lr, align):
        setup = self.setup
        idx = idx.numpy()
        sample = self.train.take(idx)
        batch = setup.present(sample)
        generated = len(set(setup.levels)) * len(idx) if setup.levels else 0
        result = setup.learner.step(setup.weights, batch, lr)
        cosine = alignment_with_bptt(setup, batch, result.grads) if align else None
        wrong = int((result.logits.argmax(1).cpu().numpy() != sample.labels).sum())
        hidden = [None] * len(result.grads) if result.applied else result.grads  # applied within the window
        return StepOutput([*hidden, result.grad_readout], result.loss, wrong, len(idx), generated, cosine)

    def test_error(self):
        return evaluate(self.setup, self.test, torch.Generator().manual_seed(self.cfg.seed + 1))[0]

    def final(self, diverged):
        final, self.local = final_scores(lambda part, gen: evaluate(self.setup, part, gen), self.train, self.test,
                                         self.setup.spec.n_out, self.cfg.seed, diverged, self.val,
                                         self.setup.backend["online_readout"])
        return final

    def energy(self):
        """Energy proxy: spikes and synaptic operations per inference, per layer (test points, at most 256)."""
        with torch.no_grad():
            part = self.test if self.test.labels.shape[0] else self.train
            part = part.take(np.arange(min(256, part.labels.shape[0])))
            if not part.labels.shape[0]:
                return None
            gen = torch.Generator().manual_seed(self.cfg.seed + 2)
            return activity(self.setup.encode(part.inputs, gen), self.setup.network_weights(), self.setup.spec,
                            self.setup.params, gen)

    def record(self):
        setup, rule, cfg = self.setup, self.rule, self.cfg
        return {"alignment_reference": "surrogate-gradient BPTT on the same batch and weights",
                "rule": {"name": cfg.rule, "family": rule.family, "supervised": self.supervised, "local": rule.local,
                         "options": dict(rule.options), "learner": type(setup.learner).__name__},
                "readout": "top",
                **training.local_readout_record(getattr(self, "local", None)),
                "energy": self.energy(),
                "device": str(setup.device),
                "spiking": {**dataclasses.asdict(cfg.spiking), **describe(setup.spec, setup.params),
                            "eligibility": setup.backend["eligibility"],
                            "eligibility_scale": setup.backend["eligibility_scale"]}}


def _train_norse(cfg, progress: bool = False, checkpoint=None) -> dict:
    start = time.perf_counter()
    return training.train(NorseBackend(cfg), cfg, progress, checkpoint, start)


__all__ = ["BACKEND_OPTIONS", "NorseSetup", "build_network", "evaluate", "flush_denormals", "resolve_device",
           "split_options",
           "train_norse"]
