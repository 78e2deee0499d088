r"""``train_brian2(cfg)``: a training run of a local rule in the Brian2 network (:class:`Brian2Backend`).

Per batch (the window-count form of the Norse learner, :mod:`spiking_rhm.backends.norse.learners`)::

    spikes = code(onehot(x)) over T steps                      (the Norse encoder, same generator)
    one window in the Brian2 network built once (Brian2Network.run: restore, weights in place, run)
    h^l = count / (T rho_h), y = readout  ->  L^l = rule.learning_signals(ctx)        (the plasticity core)
    e = Brian2's per-synapse eligibility at the window's end
        [modulator: the eligibility decays over the delay, then sum_k (1 - a_mod) a_mod^k e(T + D + k)]
    grad W^l = c^l sum L e / sqrt(K_l)                          (spiking_rhm.plasticity.weight_gradients)

``spiking.plasticity = online`` (:meth:`Brian2Backend._online_step`): the window runs in pieces to the stops of
:class:`spiking_rhm.plasticity.OnlineUpdates`; a signal every ``update_every`` steps from the running counts
(:func:`spiking_rhm.backends.norse.learners.running_context`), delivered ``modulator_delay`` later with the
per-synapse eligibility of that step, the weights updated and written into the synapses inside the window
(the Norse online learner's computation; ``modulator_tau`` is refused with it).

The loop (epochs, schedule, SGD, early stop, scores, record) is :func:`spiking_rhm.training.train`.
The neuron comes from ``cfg.spiking.neuron`` / ``neuron_options`` (:data:`.equations.NEURON_MODELS`), the
modulator from ``cfg.spiking.modulator_delay`` / ``modulator_tau``.  Back-end options (given with the rule
options): ``readout_lr``, ``online_readout`` (as the Norse back end) and ``codegen`` (``auto``: Cython where it
compiles, else numpy; ``numpy``; ``cython``).  Weights and readout are float64.  Rules: every registered three-factor rule without positive
views and without non-local needs (``bp``, ``eprop`` (a per-step signal) and the pair rules are refused with one
line); the branch-local ``sibling-cca`` with the two-compartment neuron only (``learning.branch_update`` on the
dendrite's tap branches).  With the two-compartment neuron a rule with a dendritic signal (``Rule.dendritic_signal``:
the CLAPP family) has it delivered to the dendrite (:meth:`Brian2Backend.deliver`, docs/brian2.md "Dendritic
delivery").
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping

import numpy as np
import torch

from spiking_rhm import training
from spiking_rhm.backends.brian2 import equations as eq
from spiking_rhm.backends.brian2.learning import _IndexedEligibility, branch_update
from spiking_rhm.backends.norse.learners import _cross_entropy, running_context
from spiking_rhm.backends.norse.network import describe, rates, readout, readout_gradient, top_rates
from spiking_rhm.backends.norse.train import NorseSetup, SetupParameters, final_scores
from spiking_rhm.errors import ConfigError
from spiking_rhm.plasticity import OnlineUpdates, active_fraction, combine, learning_context, weight_gradients
from spiking_rhm.training import StepOutput

BACKEND_OPTIONS: Mapping[str, Any] = {"readout_lr": None, "online_readout": None, "codegen": "auto"}
CODEGEN = ("auto", "numpy", "cython")


def neuron_from_config(sp) -> eq.NeuronModel:
    """The neuron model ``cfg.spiking`` names (ConfigError for a bad name or option)."""
    return eq.neuron_model(sp.neuron, sp.neuron_options, sp.reset)


def modulator_from_config(sp):
    from spiking_rhm.backends.brian2.network import Modulator

    return Modulator(float(sp.modulator_delay), float(sp.modulator_tau))


def codegen_target(choice: str) -> str:
    """``auto`` -> ``cython`` when Brian2 can compile Cython here, else ``numpy``."""
    if choice not in CODEGEN:
        raise ConfigError(f"unknown codegen {choice!r}; valid: {', '.join(CODEGEN)}")
    if choice != "auto":
        return choice
    try:
        from brian2.codegen.runtime.cython_rt.cython_rt import CythonCodeObject

        return "cython" if CythonCodeObject.is_available() else "numpy"
    except Exception:  # pragma: no cover - no Cython
        return "numpy"


class Brian2Backend(SetupParameters):
    """The Brian2 network as a :class:`spiking_rhm.training.Backend` (module docstring)."""

    name = "brian2"
    n_alignment_points = 0

    def __init__(self, cfg, target: str | None = None, network_options: Mapping[str, Any] | None = None):
        from spiking_rhm.backends.brian2.network import Brian2Network

        sp = cfg.spiking
        if sp.readout != "counts":
            raise ConfigError("the brian2 back end reads out spike counts (spiking.readout = counts)")
        options = dict(cfg.rule_options)
        rule_opts = {k: v for k, v in options.items() if k not in BACKEND_OPTIONS}
        own = {**BACKEND_OPTIONS, **{k: v for k, v in options.items() if k in BACKEND_OPTIONS}}
        self.model = neuron_from_config(sp)
        self.modulator = modulator_from_config(sp)
        self.online = sp.plasticity == "online"  # (config: no modulator_tau with it)
        if cfg.rule == "bp":
            raise ConfigError("rule 'bp' (backprop through time) is not available on the brian2 back end; train it "
                              "with --backend norse")
        if cfg.rule == "eprop":  # its window-count form here would be dfa's update under another name
            raise ConfigError("rule 'eprop' forms its signal at every step from a leaky readout, which the brian2 "
                              "back end (one signal per window) does not; train it with --backend norse")
        self.target = codegen_target(own["codegen"]) if target is None else target
        self.cfg = cfg
        # encoder, shapes, parameters, weights, rule and its state: the Norse set-up in float64
        shared = {k: v for k, v in own.items() if k != "codegen"}  # the options NorseSetup reads (readout_lr, ...)
        self.setup = setup = NorseSetup(cfg.replace(rule_options={**rule_opts, **shared}), dtype=torch.float64)
        learner = setup.learner
        self.rule = learner.rule
        if setup.levels:
            raise ConfigError(f"rule {cfg.rule!r} learns from pairs of views, which the brian2 back end does not "
                              f"present; use --backend norse")
        dendrite = hasattr(self.model, "delivered_gain")
        if learner.branch and not dendrite:
            raise ConfigError(f"rule {cfg.rule!r} learns on each neuron's dendritic branches (one per input tap), "
                              f"which the brian2 point neuron {self.model.name!r} does not have; use --neuron "
                              f"two-compartment (or --backend norse, which forms the branches from spike counts)")
        # the dendritic delivery (docs/brian2.md): a context rule's signal (the CLAPP family) enters the dendrite
        self.delivers = dendrite and self.model.delivers and self.rule.capabilities.dendritic and not learner.branch
        if self.delivers and (self.online or self.modulator.active):
            raise ConfigError(f"rule {cfg.rule!r} with the two-compartment neuron delivers its signal to the dendrite "
                              f"in a learning phase after the window, which takes no modulator delay / tau and no "
                              f"online plasticity; set spiking.neuron_options.delivery = 0 for the point update")
        self.delivery_stats = {"steps": 0, "cosine": 0.0, "relative_error": 0.0, "gradient_cosine": 0.0}
        self.label = f"brian2 {cfg.rule} {self.model.name}"
        P, P_test = cfg.sizes()
        train_set, self.test_set = setup.rhm.split(P, P_test, seed=cfg.seed)
        self.train_set, self.val_set = training.carve_validation(train_set, cfg.optim.validation)
        self.n_train = self.train_set.labels.shape[0]
        self.supervised = self.rule.supervised
        self.batch = max(1, min(cfg.optim.batch_size, self.n_train))
        # online: the modulator's delay is inside the window (step), not a phase after it
        network_modulator = None if self.online else self.modulator
        self.net = Brian2Network(setup.spec, setup.params, self.batch, sp.T, self.model, target=self.target,
                                 modulator=network_modulator, **dict(network_options or {}))  # e.g. monitors

    # ----------------------------------------------------------------- the Backend protocol
    def step(self, idx, lr, align):
        setup, spec, p = self.setup, self.setup.spec, self.setup.params
        sample = self.train_set.take(idx.numpy())
        batch = setup.present(sample)
        if self.online:
            return self._online_step(sample, batch, lr)
        res = self.net.run(setup.weights.hidden, batch.spikes, plastic=True)
        counts = [torch.as_tensor(c.sum(0)) for c in res.spikes]
        layers = [rates(c, res.steps, p) for c in counts]
        hbar, logits = readout(counts[-1], res.steps, setup.weights.readout, p)
        ctx = learning_context(self.rule, layers, logits, batch.target, weights=list(setup.weights.hidden))
        learner = setup.learner
        if learner.branch:  # sibling-cca: branches z^l_k = W_k x_k / sqrt(K) of the dendrite, pre-synaptic eligibility
            grads, _ = branch_update(self.rule, learner.rule_state, res, batch.spikes, spec, p, setup.weights.hidden,
                                     ctx)
            learner.rule_state = self.rule.update_state(ctx, learner.rule_state, lr)
        else:
            traces = [_IndexedEligibility(e) for e in res.eligibility]
            active = [e.active_fraction for e in res.eligibility]
            update = weight_gradients(self.rule, ctx, learner.rule_state, traces, spec.fan_in,
                                      spec.connectivity.shared, lr, learner.scale, active,
                                      deliver=self.deliver if self.delivers else None)
            learner.rule_state, grads = update.state, update.grads
            if self.delivers:  # how far the delivered update is from the point-neuron update of the same window
                point = combine(self.last_delivery["signal"], traces, spec.fan_in, spec.connectivity.shared,
                                learner.scale, active)
                self._running_mean("gradient_cosine", training.cosine_similarity(_flat(point), _flat(grads)))
        grads = [torch.as_tensor(np.asarray(g), dtype=torch.float64) for g in grads]
        grad_out = readout_gradient(hbar, logits, batch.target)
        wrong = int((logits.argmax(1).numpy() != sample.labels).sum())
        return StepOutput([*grads, grad_out], _cross_entropy(logits, batch.target), wrong, len(idx))

    def deliver(self, signals: list) -> list[torch.Tensor]:
        r"""The dendritic delivery (after :meth:`Brian2Network.run`): ``inj^l = -inject L^l / sigma^l`` into every
        dendrite (``sigma^l`` = rms of ``L^l`` over the layer), the deviation ``D - D0`` it causes
        (:meth:`~.network.Brian2Network.deliver`) and the third factor ``L~^l = -sigma^l (D - D0) / (inject G)``
        (``G``: :meth:`~.equations.TwoCompartmentModel.delivered_gain`; ``L~ = L`` while no spike changes)."""
        inject, p = self.model.options["inject"], self.setup.params
        G = self.model.delivered_gain(p.dt, 1 / float(p.lif.tau_mem_inv), 1 / float(p.elig.tau_elig_inv))
        sigmas, currents = [], []
        for L in signals:
            L = L.detach().cpu().numpy().astype(np.float64).transpose(0, 2, 1)  # [B, H, P] -> neurons [B, P, H]
            sigma = float(np.sqrt(np.mean(L * L)))
            sigmas.append(sigma)
            currents.append(-inject * L / sigma if sigma > 0 else np.zeros_like(L))
        out = [torch.as_tensor(-sigma * d / (inject * G)).transpose(1, 2)
               for d, sigma in zip(self.net.deliver(currents), sigmas)]
        self._delivery_statistics(signals, out)
        self.last_delivery = {"signal": [L.detach().double() for L in signals], "current": currents,
                              "third_factor": out}  # the last step's (spiking-rhm dynamics draws them)
        return out

    def _delivery_statistics(self, signals, delivered) -> None:
        """Running means over the steps of cos(L~, L) and |L~ - L| / |L| (all layers together), for the record."""
        L = torch.cat([s.detach().double().flatten() for s in signals])
        D = torch.cat([d.double().flatten() for d in delivered])
        if float(L.norm()) == 0:
            return
        self.delivery_stats["steps"] += 1
        self._running_mean("cosine", training.cosine_similarity(L, D))
        self._running_mean("relative_error", float((D - L).norm() / L.norm()))

    def _running_mean(self, key: str, value: float | None) -> None:
        st = self.delivery_stats
        if value is not None and st["steps"]:
            st[key] = st.get(key, 0.0) + (value - st.get(key, 0.0)) / st["steps"]

    def _online_step(self, sample, batch, lr) -> StepOutput:
        """The window in pieces: the network runs to each stop of :class:`~spiking_rhm.plasticity.OnlineUpdates`;
        at a signal point the Norse learner's running context (:func:`~.norse.learners.running_context`) gives
        the rule's signal, at a delivery the per-synapse eligibility of that step gives the update, applied to the
        weights (the Norse learner's SGD with its momentum buffers) and written into the synapses."""
        setup, spec, p, learner, net = self.setup, self.setup.spec, self.setup.params, self.setup.learner, self.net
        weights, T = setup.weights, self.cfg.spiking.T
        online = OnlineUpdates(self.rule, T, learner.update_every, learner.modulator_delay, spec.fan_in,
                               spec.connectivity.shared, learner.scale)
        n = net.start(weights.hidden, batch.spikes, plastic=True)
        now, hbar = -1, None
        for stop in online.stops():
            net.advance(stop - now)
            now = stop
            if stop in online.points:
                counts = [torch.as_tensor(c) for c in net.counts(n)]
                hbar, logits, ctx = running_context(self.rule, counts, counts[-1], stop + 1, weights, batch.target, p)
                _, learner.rule_state = online.signal(stop, ctx, learner.rule_state, lr,
                                                      [active_fraction(c) for c in counts])
            arrived = online.deliver(stop, lambda: [_IndexedEligibility(e) for e in net.eligibility(n)])
            for g in arrived:
                learner._apply(weights, g, lr)
            if arrived:
                net.set_weights(weights.hidden)
            if stop == T - 1:
                net.stop_plasticity()
        grad_out = readout_gradient(hbar, logits, batch.target)
        wrong = int((logits.argmax(1).numpy() != sample.labels).sum())
        return StepOutput([None] * spec.depth + [grad_out], _cross_entropy(logits, batch.target), wrong,
                          len(sample.labels))

    def features(self, sample, generator: torch.Generator) -> torch.Tensor:
        """Top-layer rates ``hbar [n, H]`` of plain presentations, in chunks of the built batch size."""
        setup, out = self.setup, []
        n = sample.labels.shape[0]
        for i in range(0, n, self.batch):
            part = sample.take(np.arange(i, min(n, i + self.batch)))
            res = self.net.run(setup.weights.hidden, setup.encode(part.inputs, generator), plastic=False)
            out.append(top_rates(torch.as_tensor(res.spikes[-1].sum(0)), res.steps, setup.params))
        return torch.cat(out) if out else torch.zeros(0, setup.spec.widths[-1], dtype=torch.float64)

    def evaluate(self, sample, generator) -> tuple[float, float, torch.Tensor]:
        """(error, mean cross-entropy, hbar) on ``sample``."""
        n = sample.labels.shape[0]
        if n == 0:
            return float("nan"), float("nan"), torch.zeros(0, self.setup.spec.widths[-1])
        hbar = self.features(sample, generator)
        logits = hbar @ self.setup.weights.readout / self.setup.weights.readout.shape[0]
        y = torch.as_tensor(sample.labels)
        loss = float(torch.nn.functional.cross_entropy(logits, y))
        return float((logits.argmax(1) != y).float().mean()), loss, hbar

    def test_error(self):
        return self.evaluate(self.test_set, torch.Generator().manual_seed(self.cfg.seed + 1))[0]

    def final(self, diverged):
        final, self.local = final_scores(self.evaluate, self.train_set, self.test_set, self.setup.spec.n_out,
                                         self.cfg.seed, diverged, self.val_set, self.setup.backend["online_readout"])
        return final

    def record(self):
        setup, cfg = self.setup, self.cfg
        return {"rule": {"name": cfg.rule, "family": self.rule.family, "supervised": self.supervised,
                         "local": self.rule.local, "options": dict(self.rule.options), "learner": type(self).__name__},
                "readout": "top",
                **training.local_readout_record(getattr(self, "local", None)),
                "device": "cpu",
                "spiking": {**dataclasses.asdict(cfg.spiking), **describe(setup.spec, setup.params),
                            "eligibility": "synapse", "eligibility_scale": setup.backend["eligibility_scale"]},
                "brian2": {"codegen": self.target, **self.model.describe(),
                           "modulator": {"delay": self.modulator.delay, "tau": self.modulator.tau},
                           **({"delivered_signal": dict(self.delivery_stats)} if self.delivers else {})}}


def _flat(tensors) -> torch.Tensor:
    """A list of arrays / tensors as one float64 vector."""
    return torch.cat([torch.as_tensor(t).double().flatten() for t in tensors])


def train_brian2(cfg, progress: bool = False, checkpoint=None) -> dict:
    """Train ``cfg`` with the Brian2 back end; the metrics dict (never raises on divergence)."""
    from spiking_rhm.checkpoint import check_checkpoint_path

    start = time.perf_counter()
    checkpoint = check_checkpoint_path(checkpoint)
    return training.train(Brian2Backend(cfg), cfg, progress, checkpoint, start)


__all__ = ["BACKEND_OPTIONS", "Brian2Backend", "codegen_target", "modulator_from_config", "neuron_from_config",
           "train_brian2"]
