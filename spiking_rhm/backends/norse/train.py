r"""``train_norse(cfg)``: one spiking training run of any registered rule on the RHM.

Per batch::

    spikes = code(onehot(x)) over T steps            (cfg.spiking: code, T, dt, max_rate)
    [pairs: positive views R_l(x) encoded the same way, shown after cfg.spiking.delay silent steps]
    grads  = learner.step(...)                        (three-factor L x e, or BPTT for rule 'bp')
    SGD(momentum, weight decay) step, cosine schedule (as the rate back end)

Learning rates follow ``rate_models.train``: hidden ``lr x H`` for width-scaled rules, readout
``readout_lr x H`` (default: the rule's lr for width-scaled rules, else 1.0).  Back-end options
given with the rule options: ``readout_lr`` (as the rate back end).  The neuron and trace
parameters come from ``cfg.spiking``: taus, ``drive`` g, ``psi_beta``, ``eligibility``
(factored | synapse) and ``eligibility_scale`` (``expected`` (default): the trace normalised to
the rate eligibility's scale, so the same learning rates apply; ``none``: the raw trace).
The metrics dict has the keys of the rate back end (``test_error``, ``train_error``, ``curve``,
``alignment``, ``data``, ``diverged``, ...) plus ``spiking`` (the neuron/trace parameters used).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any, Mapping

import numpy as np
import torch

from spiking_rhm.backends.norse.inputs import SpikeEncoder
from spiking_rhm.backends.norse.learners import BPTTLearner, Learner, PresentedBatch, make_learner
from spiking_rhm.backends.norse.network import (
    NetworkSpec,
    NorseParameters,
    Weights,
    activity,
    build_parameters,
    build_spec,
    describe,
    forward_features,
    init_weights,
)
from spiking_rhm.backends.norse.traces import ELIGIBILITY_MODES, ELIGIBILITY_SCALES
from spiking_rhm.checkpoint import check_checkpoint_path, make_checkpoint
from spiking_rhm.device import resolve_device
from spiking_rhm.epochs import EpochLog, evaluation_fields
from spiking_rhm.errors import ConfigError
from spiking_rhm.metrics import fit_linear_probe
from spiking_rhm.rhm import onehot

Tensor = torch.Tensor
BACKEND_OPTIONS: Mapping[str, Any] = {"readout_lr": None}
EVAL_CHUNK = 2048
N_ALIGNMENT_POINTS = 3


def split_options(options: Mapping[str, Any], spiking=None) -> tuple[dict, dict]:
    """(rule options, back-end options) from ``cfg.rule_options`` and ``cfg.spiking``."""
    if options.get("readout", "top") != "top":
        raise ConfigError("the norse back end reads out the top layer only (readout = 'top')")
    rule_opts = {k: v for k, v in options.items() if k not in BACKEND_OPTIONS and k != "readout"}
    backend = {**BACKEND_OPTIONS, **{k: v for k, v in options.items() if k in BACKEND_OPTIONS}}
    if spiking is not None:
        backend.update(eligibility=spiking.eligibility, eligibility_scale=spiking.eligibility_scale)
    lr = backend["readout_lr"]
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
        raise ConfigError(f"readout_lr must be a positive number, got {lr!r}")
    if backend.get("eligibility_scale", "expected") not in ELIGIBILITY_SCALES:
        raise ConfigError(f"eligibility_scale must be one of {', '.join(ELIGIBILITY_SCALES)}, "
                          f"got {backend['eligibility_scale']!r}")
    if backend.get("eligibility", "factored") not in ELIGIBILITY_MODES:
        raise ConfigError(f"eligibility must be one of {', '.join(ELIGIBILITY_MODES)}, got {backend['eligibility']!r}")
    return rule_opts, backend


def build_network(cfg, v: int) -> tuple[SpikeEncoder, NetworkSpec, NorseParameters]:
    """The spike encoder, network shapes and neuron/trace parameters that ``cfg`` describes (``v`` symbols)."""
    sp = cfg.spiking
    encoder = SpikeEncoder.from_config(sp, v)
    r = cfg.rhm
    depth = cfg.net.depth if cfg.net.depth is not None else r.L
    spec = build_spec(cfg.net.arch, encoder.channels, r.s**r.L, r.s, depth, cfg.net.width, r.n_c)
    if cfg.net.bias:
        raise ConfigError("net.bias is not supported by the norse back end (use bias = false)")
    params = build_parameters(spec, encoder.nominal_rate, dt=sp.dt, tau_mem=sp.tau_mem, tau_syn=sp.tau_syn,
                              tau_pre=sp.tau_pre, tau_elig=sp.tau_elig, v_th=sp.v_th, drive=float(sp.drive),
                              psi_beta=float(sp.psi_beta), v_leak=sp.v_rest, reset=sp.reset, v_init=sp.v_init,
                              readout=sp.readout, tau_readout=sp.tau_readout)
    return encoder, spec, params


class NorseSetup:
    """Everything a run builds from its config: encoder, spec, parameters, weights, learner."""

    def __init__(self, cfg, device: torch.device | None = None, dtype: torch.dtype = torch.float32):
        self.cfg = cfg
        rule_opts, self.backend = split_options(cfg.rule_options, cfg.spiking)
        self.device = device if device is not None else resolve_device(cfg.device)
        self.dtype = dtype
        self.rhm = cfg.rhm.build()
        self.encoder, self.spec, self.params = build_network(cfg, self.rhm.v)
        sp = cfg.spiking
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.weights: Weights = init_weights(self.spec, init_gen, dtype, self.device)
        self.learner: Learner = make_learner(cfg.rule, rule_opts, self.spec, self.params, init_gen,
                                             delay=sp.delay, eligibility=self.backend["eligibility"],
                                             scale=self.backend["eligibility_scale"],
                                             dtype=dtype, device=self.device)
        self.levels = self.learner.positive_view_levels()
        self.spike_gen = torch.Generator().manual_seed(cfg.seed + 104729)
        self.view_rng = np.random.default_rng([cfg.seed, 2])

    def learning_rates(self) -> tuple[float, float]:
        """(hidden, readout) learning rates, the conventions of the rate back end."""
        rule = getattr(self.learner, "rule", None)
        scaled = getattr(rule, "width_scaled_lr", isinstance(self.learner, BPTTLearner))
        base = self.cfg.optim.lr if self.cfg.optim.lr is not None else self.learner.default_lr
        H = self.spec.widths[-1]
        hidden = base * (self.spec.widths[0] if scaled else 1.0)
        ro = self.backend["readout_lr"] if self.backend["readout_lr"] is not None else (base if scaled else 1.0)
        return hidden, ro * H

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
        return PresentedBatch(self.encode(sample.inputs), target, views)


def evaluate(setup: NorseSetup, sample, generator: torch.Generator) -> tuple[float, float, Tensor]:
    """(error, mean cross-entropy, top-layer rates hbar [N, H]) of the spiking network on ``sample``."""
    n = sample.labels.shape[0]
    if n == 0:
        return float("nan"), float("nan"), torch.zeros(0, setup.spec.widths[-1])
    wrong, loss, feats = 0, 0.0, []
    with torch.no_grad():
        for i in range(0, n, EVAL_CHUNK):
            part = sample.take(np.arange(i, min(n, i + EVAL_CHUNK)))
            hbar, logits = forward_features(setup.encode(part.inputs, generator), setup.weights, setup.spec,
                                            setup.params)
            y = torch.as_tensor(part.labels, device=setup.device)
            wrong += int((logits.argmax(1) != y).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            feats.append(hbar.cpu())
    return wrong / n, loss / n, torch.cat(feats)


def _cosine(a: Tensor, b: Tensor) -> float | None:
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0 or not torch.isfinite(na * nb):
        return None
    return float((a * b).sum() / (na * nb))


def alignment_with_bptt(setup: NorseSetup, batch: PresentedBatch, grads: list[Tensor], step: int, epoch: int) -> dict:
    """Per-layer cosine between the rule's update and the surrogate-gradient BPTT gradient (same batch)."""
    bptt = BPTTLearner("bp", {}, setup.spec, setup.params, torch.Generator(), dtype=setup.dtype, device=setup.device)
    ref = bptt.step(setup.weights, batch, 0.0)
    return {"step": step, "epoch": epoch, "cosine": [_cosine(g, r) for g, r in zip(grads, ref.grads)]}


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


def _train_norse(cfg, progress: bool = False, checkpoint=None) -> dict:
    start = time.perf_counter()
    setup = NorseSetup(cfg)
    P, P_test = cfg.sizes()
    train, test = setup.rhm.split(P, P_test, seed=cfg.seed)
    hidden_lr, readout_lr = setup.learning_rates()
    w = setup.weights
    for t in w.parameters():
        t.requires_grad_(False)
    groups = [{"params": w.hidden, "lr": hidden_lr, "base": hidden_lr},
              {"params": [w.readout], "lr": readout_lr, "base": readout_lr}]
    opt = torch.optim.SGD(groups, lr=hidden_lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay)
    order_gen = torch.Generator().manual_seed(cfg.seed + 7919)

    batch_size = min(cfg.optim.batch_size, P)
    steps_per_epoch = P // batch_size + (1 if P % batch_size >= 2 else 0)
    n_epochs = cfg.optim.n_epochs(steps_per_epoch)
    total_steps = max(1, n_epochs * steps_per_epoch)
    align_at = set()
    if n_epochs > 0 and not isinstance(setup.learner, BPTTLearner):
        align_at = {int(round(k * (total_steps - 1) / max(1, N_ALIGNMENT_POINTS - 1))) for k in range(N_ALIGNMENT_POINTS)}

    alignment, n_generated = [], 0
    step = seen_total = 0
    log = EpochLog(n_epochs, cfg.optim.stop_train_loss, progress, desc=f"norse {cfg.rule} P={P}")
    for epoch in range(1, n_epochs + 1):
        perm = torch.randperm(P, generator=order_gen).numpy()
        loss_sum, wrong, seen = 0.0, 0, 0
        for k in range(steps_per_epoch):
            idx = perm[k * batch_size:(k + 1) * batch_size]
            sample = train.take(idx)
            batch = setup.present(sample)
            if setup.levels:
                n_generated += len(set(setup.levels)) * len(idx)
            scale = 0.5 * (1 + math.cos(math.pi * step / total_steps)) if cfg.optim.schedule == "cosine" else 1.0
            result = setup.learner.step(w, batch, hidden_lr * scale)
            if step in align_at:
                alignment.append(alignment_with_bptt(setup, batch, result.grads, step, epoch))
            for param, grad in zip(w.parameters(), [*result.grads, result.grad_readout]):
                param.grad = grad
            for g in opt.param_groups:
                g["lr"] = g["base"] * scale
            opt.step()
            loss_sum += result.loss * len(idx)
            wrong += int((result.logits.argmax(1).cpu().numpy() != sample.labels).sum())
            seen += len(idx)
            step += 1
        seen_total += seen
        if log.end_epoch(epoch, loss_sum / seen, wrong / seen,
                         params_finite=lambda: all(bool(torch.isfinite(t).all()) for t in w.parameters()),
                         test_error=lambda: evaluate(setup, test, torch.Generator().manual_seed(cfg.seed + 1))[0]):
            break
    log.close()
    diverged = log.diverged

    eval_gen = torch.Generator().manual_seed(cfg.seed + 1)
    test_error, test_loss, test_feats = evaluate(setup, test, eval_gen)
    train_error, train_loss, train_feats = evaluate(setup, train, eval_gen)
    learner = setup.learner
    rule = getattr(learner, "rule", None)
    data_use = learner.data_use() or {"pairs": None}
    supervised = True if rule is None else rule.supervised
    probe = None
    if not diverged:  # the converged linear probe on the top-layer rates (as the rate back end)
        probe = fit_linear_probe(train_feats, train.labels, test_feats, test.labels, setup.spec.n_out)
    fields = evaluation_fields(test_error, train_error, None if probe is None else probe.metrics, supervised,
                               diverged, P, P_test, n_generated, data_use)
    with torch.no_grad():  # energy proxy: spikes and synaptic operations per inference (test points, at most 256)
        part = test if test.labels.shape[0] else train
        part = part.take(np.arange(min(256, part.labels.shape[0])))
        energy = activity(setup.encode(part.inputs, torch.Generator().manual_seed(cfg.seed + 2)), w, setup.spec,
                          setup.params) if part.labels.shape[0] else None
    if checkpoint is not None:
        make_checkpoint(cfg, w.hidden, w.readout, None if supervised else probe, "norse",
                        fields["test_error"]).save(checkpoint)
    return {
        **fields,
        "test_loss": test_loss,
        "train_loss": train_loss,
        "alignment": alignment,
        "alignment_reference": "surrogate-gradient BPTT on the same batch and weights",
        "sensitivity": None,
        **log.record(seen_total),
        "steps": step,
        "wall_time": time.perf_counter() - start,
        "lr": {"hidden": hidden_lr, "readout": readout_lr, "schedule": cfg.optim.schedule},
        "rule": {"name": cfg.rule, "family": getattr(rule, "family", "reference"), "supervised": supervised,
                 "local": getattr(rule, "local", False), "options": dict(getattr(rule, "options", {})),
                 "learner": type(learner).__name__},
        "readout": "top",
        "energy": energy,
        "device": str(setup.device),
        "spiking": {**dataclasses.asdict(cfg.spiking), **describe(setup.spec, setup.params),
                    "eligibility": setup.backend["eligibility"],
                    "eligibility_scale": setup.backend["eligibility_scale"]},
    }


__all__ = ["BACKEND_OPTIONS", "NorseSetup", "build_network", "evaluate", "flush_denormals", "resolve_device",
           "split_options",
           "train_norse"]
