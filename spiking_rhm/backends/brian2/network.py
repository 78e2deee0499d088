r"""One presentation window of the spiking hierarchy in Brian2 (equations in :mod:`.equations`).

The network is the Norse back end's (:mod:`spiking_rhm.backends.norse.network`): the same
:class:`NetworkSpec`, :class:`NorseParameters` and weights, a batch of N samples simulated as N
disconnected copies.  Neuron ``(b, p, h)`` of a layer is index ``b P H + p H + h``; input neuron
``(b, q, c)`` (channel-last) is ``b d C + q C + c``.  Synapse ``(b, p, h, k)`` connects input
``(b, p s + k // C, k % C)`` to ``(b, p, h)`` (filter = stride = s; the FCN's one patch is s = P),
with the weight copied from ``W[h, k]`` (shared: CNN / dense, ``widx = h K + k``) or
``W[p, h, k]`` (untied: LCN, ``widx = (p H + h) K + k``); the copies of a shared weight are
equal by construction and :func:`~.learning.three_factor_update` sums over them.

Schedule.  Norse runs all layers within one step (layer l sees layer l-1's spikes of the
*same* step), so every object runs in the ``groups`` slot with an explicit order: the input
layer first, then per layer ``pathway -> LIF update -> threshold -> monitors -> pre-trace
decay and jump -> eligibility and ebar -> reset``.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from spiking_rhm.backends.brian2 import equations as eq
from spiking_rhm.errors import BackendUnavailableError, ConfigError

try:
    import brian2 as b2
except ImportError as exc:  # pragma: no cover - brian2 is a core dependency
    raise BackendUnavailableError("the brian2 back end needs brian2 (pip install brian2==2.9.0)") from exc

__all__ = ["Brian2Network", "Brian2Result", "CODEGEN_TARGETS", "LayerEligibility", "Modulator", "modulated_factor",
           "simulate"]

CODEGEN_TARGETS = ("numpy", "cython")


class LayerEligibility(NamedTuple):
    """Eligibility of one layer at the end of the window, one number per synapse."""

    e: np.ndarray  # [N, P, H, K]
    weight_index: np.ndarray  # [N, P, H, K] flat index into the weight table
    weight_shape: tuple[int, ...]  # (H, K) shared, (P, H, K) untied
    fan_in: int  # K
    expected: float  # ebar (Norse ``Eligibility.expected_value``), nan when not plastic
    active_fraction: float  # fraction of (sample, position, neuron) that spiked in the window


class Brian2Result(NamedTuple):
    spikes: list[np.ndarray]  # per layer [T, N, P, H] (0/1 float)
    v: list[np.ndarray | None]  # pre-reset potentials: [T, N, P, H] (record=True) or [T, n] (index list)
    eligibility: list[LayerEligibility]
    steps: int

    @property
    def counts(self) -> list[np.ndarray]:
        """Spike counts per layer ``[N, P, H]`` (Norse ``WindowResult.counts``)."""
        return [s.sum(0) for s in self.spikes]


def _numpy(x) -> np.ndarray:
    return (x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)).astype(np.float64)


def _synapse_indices(N: int, P_in: int, C: int, P: int, H: int, K: int, shared: bool):
    """Pre, post and weight-table indices of every synapse ``(b, p, h, k)``, in that (C) order."""
    b, p, h, k = np.meshgrid(np.arange(N), np.arange(P), np.arange(H), np.arange(K), indexing="ij")
    s = K // C  # taps per patch
    pre = b * P_in * C + (p * s + k // C) * C + k % C
    post = b * P * H + p * H + h
    widx = h * K + k if shared else (p * H + h) * K + k
    return pre.ravel(), post.ravel(), widx.ravel()


def _schedule(obj, order: int) -> None:
    obj.when, obj.order = "groups", order


def _check_inputs(spec, weights, spikes: np.ndarray) -> None:
    if spikes.ndim != 4 or spikes.shape[2] != spec.in_channels or spikes.shape[3] != spec.positions[0]:
        raise ConfigError(f"input spikes must be [T, N, {spec.in_channels}, {spec.positions[0]}], "
                          f"got {tuple(spikes.shape)}")
    if not np.isin(spikes, (0.0, 1.0)).all():
        raise ConfigError("input spikes must be 0/1")
    if len(weights) != spec.depth:
        raise ConfigError(f"need {spec.depth} hidden weight tensors, got {len(weights)}")
    for l, (W, shape) in enumerate(zip(weights, spec.weight_shapes()), start=1):
        if tuple(W.shape) != tuple(shape):
            raise ConfigError(f"W^{l} must have shape {tuple(shape)}, got {tuple(W.shape)}")


def _record_indices(record, layer: int, n: int) -> np.ndarray | bool | None:
    if record is True:
        return True
    if record is False or record is None:
        return None
    idx = record.get(layer) if isinstance(record, Mapping) else None
    if idx is None:
        return None
    idx = np.asarray(idx, dtype=np.int64)
    if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
        raise ConfigError(f"record[{layer}] must be flat neuron indices in [0, {n})")
    return idx


class Modulator(NamedTuple):
    """The broadcast factor's time course after a window: it arrives ``delay`` seconds after the window's end
    and decays with ``tau`` (0: one step); the eligibility only decays in between (plastic off)."""

    delay: float = 0.0
    tau: float = 0.0

    @property
    def active(self) -> bool:
        return self.delay > 0 or self.tau > 0

    def steps(self, dt: float) -> tuple[int, int, float]:
        """(delay steps D, modulation steps M run in Brian2, a_mod = exp(-dt / tau))."""
        D = int(round(self.delay / dt))
        a = math.exp(-dt / self.tau) if self.tau > 0 else 0.0
        M = max(1, int(math.ceil(2 * self.tau / dt)))
        return D, M, a


def modulated_factor(modulator: Modulator, dt: float, tau_elig: float) -> float:
    """``e_mod / e(T)`` for an eligibility that only decays: ``a_e^D (1 - a_mod) / (1 - a_mod a_e)``
    (``a_e = exp(-dt / tau_elig)``), the hand-computed product the Brian2 modulator must give."""
    D, _, a = modulator.steps(dt)
    ae = math.exp(-dt / tau_elig)
    return ae ** D * (1 - a) / (1 - a * ae)


def _seconds(name: str, value: float):
    return value * b2.second if name.startswith("tau") or name in ("refractory",) else value


class Brian2Network:
    """The hierarchy built once for ``N`` samples and windows of ``T`` steps, run again and again.

    :meth:`run` restores the stored initial state (``Network.restore``), copies the weights into the synapses,
    replaces the input ``TimedArray`` and runs one window; with a :class:`Modulator` it then runs the delay and
    the modulator's arrival and returns the modulated eligibility in place of ``e``.
    """

    def __init__(self, spec, params, N: int, T: int, model=None, record: bool | Mapping[int, Sequence[int]] = False,
                 target: str = "numpy", modulator: Modulator | None = None, record_vars: Sequence[str] = ("v",),
                 record_synapses: Mapping[int, Sequence[int]] | None = None):
        if target not in CODEGEN_TARGETS:
            raise ConfigError(f"unknown codegen target {target!r}; valid: {', '.join(CODEGEN_TARGETS)}")
        if abs(float(params.psi.v_th) - float(params.lif.v_th)) > 0:
            raise ConfigError("the surrogate's v_th must equal the LIF threshold")
        reset = getattr(params, "reset", "zero")
        if reset not in eq.LIF_RESETS:
            raise ConfigError(f"unknown reset {reset!r}; valid: {', '.join(eq.LIF_RESETS)}")
        self.model = model if model is not None else eq.neuron_model("lif", reset=reset)
        if hasattr(self.model, "check_rest"):
            self.model.check_rest(float(params.lif.v_leak), float(params.lif.v_th))
        self.spec, self.params, self.N, self.T, self.target = spec, params, int(N), int(T), target
        self.modulator = modulator if modulator is not None else Modulator()
        eq.check_whole_steps(self.model, self.modulator.delay, float(params.dt))
        if self.modulator.delay < 0 or self.modulator.tau < 0:
            raise ConfigError(f"modulator delay and tau must be >= 0 seconds, got {tuple(self.modulator)}")
        dt_s = self.dt = float(params.dt)
        dt = b2.Clock(dt_s * b2.second, name="window_clock")  # one clock: the single-clock run loop
        self.clock = dt
        lif = params.lif
        tau_mem = 1 / float(lif.tau_mem_inv)
        self.D, self.M, a_mod = self.modulator.steps(dt_s)
        self.namespace = {
            "tau_mem": tau_mem * b2.second, "tau_syn": 1 / float(lif.tau_syn_inv) * b2.second,
            "v_leak": float(lif.v_leak), "v_th": float(lif.v_th), "v_reset": float(lif.v_reset),
            "psi_beta": float(params.psi.beta), "tau_pre": 1 / params.pre.tau_pre_inv * b2.second,
            "tau_elig": 1 / params.elig.tau_elig_inv * b2.second, "a_trace": math.exp(-dt_s * params.pre.tau_pre_inv),
            "a_mod": a_mod, "a_elig": math.exp(-dt_s * params.elig.tau_elig_inv),
            **{k: _seconds(k, v) for k, v in self.model.namespace(dt_s).items()},
        }
        if hasattr(self.model, "a_delta"):
            self.namespace["a_delta"] = self.model.a_delta(dt_s, tau_mem)
        if getattr(params, "v_spread", 0.0):
            raise ConfigError("the brian2 network starts every window at one potential; a dithered start "
                              "(spiking.v_init = uniform) is an option of the norse back end")
        self.v_init = float(lif.v_leak) if getattr(params, "v_init", None) is None else float(params.v_init)
        C0, d = spec.in_channels, spec.positions[0]
        self.n_input = N * d * C0
        self._stim(np.zeros((T, N, C0, d)))

        objects: list = []
        nominal = b2.NeuronGroup(1, eq.NOMINAL_MODEL, method="exact", clock=dt, name="nominal_pre")
        _schedule(nominal.state_updater, 0)
        inputs = b2.NeuronGroup(self.n_input, eq.INPUT_MODEL, threshold=eq.INPUT_THRESHOLD, reset=eq.TRACE_JUMP,
                                method="exact", clock=dt, name="layer0")
        _schedule(inputs.state_updater, 1)
        _schedule(inputs.thresholder["spike"], 2)
        _schedule(inputs.resetter["spike"], 4)
        objects += [nominal, inputs]
        self.nominal = nominal
        self.forward_only: list = []  # objects switched off for plain (non-plastic) presentations
        self.modulation: list = []  # objects switched on only while the modulator arrives
        self.learning_phase: list = []  # objects switched on only in the dendritic delivery's learning phase
        self.phase_record: dict = {}  # the last learning phase's monitored variables (:meth:`deliver`)

        m = self.model
        refractory = m.refractory * b2.second if m.refractory > 0 else False
        pre_group, self.layers = inputs, []
        for l in range(1, spec.depth + 1):
            base = 20 * l
            P_in, P, H, K = spec.positions[l - 1], spec.positions[l], spec.widths[l - 1], spec.fan_in[l - 1]
            C = spec.in_channels if l == 1 else spec.widths[l - 2]
            n = N * P * H
            group = b2.NeuronGroup(n, m.model() + (eq.MODULATOR_MODEL + "\n"), threshold=m.threshold,
                                   reset=m.reset(), refractory=refractory, method="euler", clock=dt, name=f"layer{l}")
            trace = b2.NeuronGroup(n, eq.TRACE_MODEL, method="exact", clock=dt, name=f"trace{l}")
            group.xbar = b2.linked_var(trace, "xbar")
            jump = b2.Synapses(group, trace, on_pre=eq.TRACE_ON_PRE, clock=dt, name=f"trace_jump{l}")
            jump.connect(j="i")

            syn = b2.Synapses(pre_group, group, eq.SYNAPSE_MODEL, on_pre=m.on_pre, method="exact", clock=dt,
                              name=f"synapses{l}")
            pre, post, widx = _synapse_indices(N, P_in, C, P, H, K, spec.connectivity.shared)
            syn.connect(i=pre, j=post)
            if not (np.array_equal(syn.i[:], pre) and np.array_equal(syn.j[:], post)):
                raise RuntimeError("brian2 reordered the synapses")  # pragma: no cover - internal invariant
            syn.widx = widx
            syn.gain, syn.rho_in, syn.plastic = float(params.gains[l - 1]), float(params.rho_in[l - 1]), 1.0
            if m.synapse_delay > 0:
                syn.delay = m.synapse_delay * b2.second

            _schedule(syn.pre, base + 0)
            if hasattr(m, "a_delta"):
                dendrite = group.run_regularly(eq.TWO_COMPARTMENT_DELTA, clock=dt, name=f"dendrite{l}")
                _schedule(dendrite, base + 1)
                objects.append(dendrite)
            _schedule(group.state_updater, base + 2)
            _schedule(group.thresholder["spike"], base + 3)
            spike_mon = b2.SpikeMonitor(group, name=f"spikes{l}")
            _schedule(spike_mon, base + 4)
            rec = _record_indices(record, l, n)
            v_mon = None
            if rec is not None:
                v_mon = b2.StateMonitor(group, list(record_vars), record=rec, clock=dt, name=f"v{l}")
                _schedule(v_mon, base + 4)
            _schedule(trace.state_updater, base + 5)
            _schedule(jump.pre, base + 6)
            accumulate = syn.run_regularly(eq.MODULATED_ELIGIBILITY, clock=dt, name=f"modulated{l}")
            _schedule(accumulate, base + 7)
            _schedule(syn.state_updater, base + 8)
            syn_idx = (record_synapses or {}).get(l)
            if syn_idx is not None:  # eligibility and modulated accumulator of chosen synapses, every step
                syn_mon = b2.StateMonitor(syn, ["elig", "wacc"], record=np.asarray(syn_idx, dtype=np.int64), clock=dt,
                                          name=f"synapse_monitor{l}")
                _schedule(syn_mon, base + 9)
                objects.append(syn_mon)
            decay = group.run_regularly(eq.MODULATOR_DECAY, clock=dt, name=f"modulator{l}")
            _schedule(decay, base + 9)
            acc = b2.NeuronGroup(1, eq.ACCUMULATOR_MODEL, method="exact", clock=dt, name=f"ebar{l}")
            acc.xnom = b2.linked_var(nominal, "xnom")
            acc.n_neurons = n
            psi_sum = b2.Synapses(group, acc, eq.PSI_SUM, clock=dt, name=f"psi_sum{l}")
            psi_sum.connect()
            _schedule(psi_sum.summed_updaters["psi_sum_post"], base + 8)
            _schedule(acc.state_updater, base + 10)
            _schedule(group.resetter["spike"], base + 11)
            if hasattr(m, "delivered_gain"):  # the dendritic delivery's learning phase (after the reset)
                for k, code in enumerate((eq.DENDRITE_SUM, eq.DENDRITE_DECAY)):
                    obj = group.run_regularly(code, clock=dt, name=f"dendrite_phase{l}_{k}")
                    _schedule(obj, base + 12 + k)
                    objects.append(obj)
                    self.learning_phase.append(obj)
            objects += [group, trace, jump, syn, spike_mon, acc, psi_sum, accumulate, decay]
            objects += [v_mon] if v_mon is not None else []
            self.forward_only += [trace.state_updater, jump.pre, syn.state_updater, psi_sum.summed_updaters[
                "psi_sum_post"], acc.state_updater]
            self.modulation += [accumulate, decay]
            self.layers.append((group, syn, spike_mon, v_mon, acc, (P, H, K), rec, widx))
            pre_group = group
        self.net = b2.Network(*objects)
        self._prepared = False
        for obj in [*self.modulation, *self.learning_phase]:
            obj.active = False
        self.net.store("initial")

    def _stim(self, spikes: np.ndarray) -> None:
        """Write the window into the input ``TimedArray``'s values in place (the code objects read that array;
        one extra silent step: Brian2 holds a TimedArray's last value after it ends)."""
        T = spikes.shape[0]
        if "stim" not in self.namespace:
            self.namespace["stim"] = b2.TimedArray(np.zeros((T + 1, self.n_input)), dt=self.dt * b2.second,
                                                   name="stim_values")
        values = self.namespace["stim"].values
        values[:T] = spikes.transpose(0, 1, 3, 2).reshape(T, -1)
        values[T:] = 0.0

    def _run(self, steps: int) -> None:
        """``steps`` steps: the first call through ``Network.run`` (code generation), later ones through the same
        code objects in Brian2's single-clock loop without its per-run preparation (garbage collection, code
        objects made again: ~0.3 s each, 10x a window)."""
        if not self._prepared:
            previous = b2.prefs.codegen.target
            b2.prefs.codegen.target = self.target
            try:
                self.net.run(steps * self.dt * b2.second, namespace=self.namespace)
                # Network.run makes code objects only for the active objects: make them for the others too
                # (the modulator, and the plastic objects when the first run was a plain presentation)
                for obj in self.net.sorted_objects:
                    if not obj.active:
                        obj.before_run(self.namespace)
            finally:
                b2.prefs.codegen.target = previous
            self._prepared = True
            return
        clock, net = self.clock, self.net
        t0 = net.t_
        clock.set_interval(t0 * b2.second, (t0 + steps * self.dt) * b2.second)
        timestep, t, dt = (clock.variables[k].get_value() for k in ("timestep", "t", "dt"))
        active = [obj for obj in net.sorted_objects if obj.active]
        for _ in range(steps):
            for obj in active:
                obj.run()
            timestep[0] += 1
            t[0] = timestep[0] * dt[0]
        net.t_ = float(t[0])

    def run(self, weights: Sequence, input_spikes, plastic: bool = True) -> "Brian2Result":
        """One window of ``input_spikes`` ``[T, n <= N, C, d]`` from rest (samples beyond ``n`` are silent and
        dropped from the result); ``plastic=False``: a plain presentation (no traces, eligibility zero)."""
        n = self.start(weights, input_spikes, plastic)
        self._run(self.T)
        result = self._collect(n, plastic)
        if plastic and self.modulator.active:
            result = result._replace(eligibility=self._modulate(result.eligibility, n))
        return result

    # ----------------------------------------------------------------- a window in pieces (online plasticity)
    def start(self, weights: Sequence, input_spikes, plastic: bool = True) -> int:
        """Restore the initial state, write the weights and the window's input; the number of samples ``n``.
        Then :meth:`advance` runs it on (:meth:`run` runs the whole window)."""
        hidden = list(getattr(weights, "hidden", weights))
        spikes = _numpy(input_spikes)
        _check_inputs(self.spec, hidden, spikes)
        T, n = spikes.shape[:2]
        if T != self.T or n > self.N:
            raise ConfigError(f"this network runs windows of {self.T} steps for at most {self.N} samples, got "
                              f"[{T}, {n}, ...]")
        if n < self.N:
            spikes = np.concatenate([spikes, np.zeros((T, self.N - n, *spikes.shape[2:]))], 1)
        self.net.restore("initial")
        for obj in self.forward_only:
            obj.active = plastic
        self.set_weights(hidden)
        for l, (group, syn, *rest) in enumerate(self.layers):
            syn.plastic = 1.0
            for var in self.model.state:
                setattr(group, var, self.v_init if var in ("v", "u") else 0.0)
        self._stim(spikes)
        return n

    def advance(self, steps: int) -> None:
        """Run ``steps`` more steps (after the window's ``T`` the input is silent)."""
        if steps > 0:
            self._run(int(steps))

    def set_weights(self, weights: Sequence) -> None:
        """Copy the hidden weights into the synapses (in place, also within a window)."""
        for l, (group, syn, *rest) in enumerate(self.layers):
            syn.w = _numpy(weights[l]).ravel()[rest[-1]]

    def stop_plasticity(self) -> None:
        """From the next step on the eligibility only decays and ``ebar`` stays (the Norse trace's non-plastic
        steps)."""
        for group, syn, spike_mon, v_mon, acc, *_ in self.layers:
            syn.plastic = 0.0
            acc.state_updater.active = False

    def counts(self, n: int) -> list[np.ndarray]:
        """Every layer's spike counts since :meth:`start`, ``[n, P, H]``."""
        return [np.asarray(spike_mon.count[:], dtype=np.float64).reshape(self.N, P, H)[:n]
                for group, syn, spike_mon, v_mon, acc, (P, H, K), *_ in self.layers]

    def eligibility(self, n: int, active: Sequence[float] | None = None, plastic: bool = True
                    ) -> list["LayerEligibility"]:
        """Every layer's per-synapse eligibility now (``active``: the layers' active fractions to store)."""
        out = []
        for l, (group, syn, spike_mon, v_mon, acc, (P, H, K), rec, widx) in enumerate(self.layers):
            shape = self.spec.weight_shapes()[l]
            out.append(LayerEligibility(np.asarray(syn.elig[:]).reshape(self.N, P, H, K)[:n],
                                        widx.reshape(self.N, P, H, K)[:n], tuple(shape), K,
                                        float(acc.ebar[0]) if plastic else float("nan"),
                                        float("nan") if active is None else float(active[l])))
        return out

    def deliver(self, currents: Sequence[np.ndarray]) -> list[np.ndarray]:
        r"""The dendritic delivery's learning phase after a window (:meth:`run`; the model's ``delivered_gain``):
        from the window's end state, ``S`` silent steps without plasticity, once without and once with the current
        ``currents[l]`` (``[n, P, H]`` per layer) held in every dendrite; per neuron
        ``D - D0 = sum_{t=1}^S a_e^t (v_d(T + t) - v_d^0(T + t))`` (``a_e^t``: the eligibility's decay since the
        window's end), ``[n, P, H]`` per layer.  The model's ``phase_spikes = 0`` silences the somata in the phase."""
        if not self.learning_phase:
            raise ConfigError(f"the neuron {self.model.name!r} has no dendrite to deliver a signal to")
        S = self.model.phase_steps(self.dt)
        shapes = [layer[5] for layer in self.layers]
        n = None
        flat = []
        for (P, H, K), I in zip(shapes, currents):
            I = np.asarray(I, dtype=np.float64)
            n = I.shape[0]
            if I.shape != (n, P, H) or n > self.N:
                raise ConfigError(f"delivered currents must be [n <= {self.N}, {P}, {H}] per layer, got {I.shape}")
            flat.append(np.concatenate([I, np.zeros((self.N - n, P, H))]).ravel())
        self.net.store("window_end")
        for obj in self.forward_only:  # no traces, no eligibility, no ebar: plasticity is off in the phase
            obj.active = False
        silent = [] if self.model.options["phase_spikes"] else [
            obj for group, *_ in self.layers for obj in (group.thresholder["spike"], group.resetter["spike"])]
        for obj in [*self.learning_phase, *silent]:
            obj.active = obj not in silent
        sums = []
        try:
            for inject in (False, True):
                if inject:
                    self.net.restore("window_end")
                for (group, *_), I in zip(self.layers, flat):
                    group.dsum = 0.0
                    group.wdec = self.namespace["a_elig"]
                    group.inj = I if inject else 0.0
                self._run(S)
                sums.append([np.asarray(group.dsum[:]).copy() for group, *_ in self.layers])
                # the monitored neurons' variables over the phase (``spiking-rhm dynamics``): per layer, or None
                self.phase_record["delivered" if inject else "reference"] = [
                    None if v_mon is None else {var: np.asarray(getattr(v_mon, var))[:, -S:].copy()
                                                for var in v_mon.record_variables}
                    for group, syn, spike_mon, v_mon, *_ in self.layers]
        finally:
            for obj in [*self.learning_phase, *silent]:
                obj.active = obj in silent
            for group, *_ in self.layers:
                group.inj = 0.0
        return [(d1 - d0).reshape(self.N, P, H)[:n] for d0, d1, (P, H, K) in zip(*sums, shapes)]

    def _modulate(self, eligibility, n: int) -> list:
        """Run the delay (plastic off, the eligibility decays) and the modulator's arrival; the modulated
        eligibility ``sum_k (1 - a_mod) a_mod^k e(T + D + k)`` (the tail past M steps in closed form)."""
        for group, syn, *_ in self.layers:
            syn.plastic = 0.0
        for obj in self.forward_only:
            obj.active = True
        if self.D:
            self._run(self.D)
        for group, syn, *_ in self.layers:
            group.mod = 1.0
        for obj in self.modulation:
            obj.active = True
        try:
            self._run(self.M)
        finally:
            for obj in self.modulation:
                obj.active = False
        a = self.namespace["a_mod"]
        ae = math.exp(-self.dt * float(self.params.elig.tau_elig_inv))
        out = []
        for (group, syn, *_), layer in zip(self.layers, eligibility):
            tail = (1 - a) * float(group.mod[:]) * np.asarray(syn.elig[:]) / (1 - a * ae)
            e = (np.asarray(syn.wacc[:]) + tail).reshape(self.N, *layer.e.shape[1:])[:n]
            out.append(layer._replace(e=e))
        return out

    def _collect(self, n: int, plastic: bool) -> "Brian2Result":
        T, dt_s, N = self.T, self.dt, self.N
        out_spikes, out_v = [], []
        for l, (group, syn, spike_mon, v_mon, acc, (P, H, K), rec, widx) in enumerate(self.layers, start=1):
            z = np.zeros((T, N * P * H))
            steps = np.rint(np.asarray(spike_mon.t / b2.second) / dt_s).astype(np.int64)
            z[steps, np.asarray(spike_mon.i)] = 1.0
            z = z.reshape(T, N, P, H)[:, :n]
            out_spikes.append(z)
            if v_mon is None:
                out_v.append(None)
            else:
                v = np.asarray(getattr(v_mon, "v")).T  # [T, n]
                if v.shape[0] != T:
                    raise RuntimeError(f"brian2 ran {v.shape[0]} steps instead of {T}")  # pragma: no cover
                out_v.append(v.reshape(T, N, P, H)[:, :n] if rec is True else v)
        active = [float((z.sum(0) > 0).mean()) for z in out_spikes]
        return Brian2Result(out_spikes, out_v, self.eligibility(n, active, plastic), T)

    def monitor(self, l: int):
        """The StateMonitor of layer ``l`` (1-based; None when not recorded)."""
        return self.layers[l - 1][3]


def simulate(spec, params, weights: Sequence, input_spikes, record: bool | Mapping[int, Sequence[int]] = True,
             plastic: bool = True, target: str = "numpy", model=None, modulator: Modulator | None = None
             ) -> Brian2Result:
    """Simulate ``input_spikes`` ``[T, N, C, d]`` from rest through the hierarchy, in Brian2 (one window;
    :class:`Brian2Network` builds once and runs many).

    ``spec``/``params`` are the Norse back end's :class:`NetworkSpec` / :class:`NorseParameters`,
    ``weights`` the hidden weights ``W^1..W^L`` (tensors or arrays, or a ``Weights``).
    ``record``: pre-reset potentials of all neurons (True), none (False) or ``{layer (1-based):
    flat indices b P H + p H + h}``.  ``plastic=False`` leaves the eligibility zero (ebar = nan).
    ``target``: Brian2 code generation (``numpy`` needs no compiler; ``cython`` compiles once).
    ``model``: an :class:`~.equations.NeuronModel` (default: the LIF mirror).
    """
    if target not in CODEGEN_TARGETS:
        raise ConfigError(f"unknown codegen target {target!r}; valid: {', '.join(CODEGEN_TARGETS)}")
    spikes = _numpy(input_spikes)
    hidden = list(getattr(weights, "hidden", weights))
    _check_inputs(spec, hidden, spikes)
    net = Brian2Network(spec, params, spikes.shape[1], spikes.shape[0], model, record, target, modulator)
    return net.run(hidden, spikes, plastic)
