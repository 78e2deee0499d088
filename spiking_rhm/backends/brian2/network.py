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

__all__ = ["LayerEligibility", "Brian2Result", "simulate", "CODEGEN_TARGETS"]

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


def simulate(spec, params, weights: Sequence, input_spikes, record: bool | Mapping[int, Sequence[int]] = True,
             plastic: bool = True, target: str = "numpy") -> Brian2Result:
    """Simulate ``input_spikes`` ``[T, N, C, d]`` from rest through the hierarchy, in Brian2.

    ``spec``/``params`` are the Norse back end's :class:`NetworkSpec` / :class:`NorseParameters`,
    ``weights`` the hidden weights ``W^1..W^L`` (tensors or arrays, or a ``Weights``).
    ``record``: pre-reset potentials of all neurons (True), none (False) or ``{layer (1-based):
    flat indices b P H + p H + h}``.  ``plastic=False`` lets the eligibility only decay (ebar = nan).
    ``target``: Brian2 code generation (``numpy`` needs no compiler; ``cython`` compiles once).
    """
    if target not in CODEGEN_TARGETS:
        raise ConfigError(f"unknown codegen target {target!r}; valid: {', '.join(CODEGEN_TARGETS)}")
    hidden = list(getattr(weights, "hidden", weights))
    spikes = _numpy(input_spikes)
    _check_inputs(spec, hidden, spikes)
    T, N, C0, d = spikes.shape
    dt_s = float(params.dt)
    dt = dt_s * b2.second
    lif = params.lif
    a_trace = math.exp(-dt_s * params.pre.tau_pre_inv)
    namespace = {
        "tau_mem": 1 / float(lif.tau_mem_inv) * b2.second, "tau_syn": 1 / float(lif.tau_syn_inv) * b2.second,
        "v_leak": float(lif.v_leak), "v_th": float(lif.v_th), "v_reset": float(lif.v_reset),
        "psi_beta": float(params.psi.beta), "tau_pre": 1 / params.pre.tau_pre_inv * b2.second,
        "tau_elig": 1 / params.elig.tau_elig_inv * b2.second, "a_trace": a_trace,
        "stim": b2.TimedArray(spikes.transpose(0, 1, 3, 2).reshape(T, -1), dt=dt),
    }
    if abs(float(params.psi.v_th) - float(lif.v_th)) > 0:
        raise ConfigError("the surrogate's v_th must equal the LIF threshold")
    reset = getattr(params, "reset", "zero")
    if reset not in eq.LIF_RESETS:
        raise ConfigError(f"unknown reset {reset!r}; valid: {', '.join(eq.LIF_RESETS)}")
    v_init = float(lif.v_leak) if getattr(params, "v_init", None) is None else float(params.v_init)

    objects: list = []
    nominal = b2.NeuronGroup(1, eq.NOMINAL_MODEL, method="exact", dt=dt, name="nominal_pre")
    _schedule(nominal.state_updater, 0)
    inputs = b2.NeuronGroup(N * d * C0, eq.INPUT_MODEL, threshold=eq.INPUT_THRESHOLD, reset=eq.TRACE_JUMP,
                            method="exact", dt=dt, name="layer0")
    _schedule(inputs.state_updater, 1)
    _schedule(inputs.thresholder["spike"], 2)
    _schedule(inputs.resetter["spike"], 4)
    objects += [nominal, inputs]

    pre_group, layers = inputs, []
    for l in range(1, spec.depth + 1):
        base = 10 * l
        P_in, P, H, K = spec.positions[l - 1], spec.positions[l], spec.widths[l - 1], spec.fan_in[l - 1]
        C = spec.in_channels if l == 1 else spec.widths[l - 2]
        n = N * P * H
        group = b2.NeuronGroup(n, eq.LIF_MODEL, threshold=eq.LIF_THRESHOLD, reset=eq.LIF_RESETS[reset],
                               method="euler", dt=dt, name=f"layer{l}")
        trace = b2.NeuronGroup(n, eq.TRACE_MODEL, method="exact", dt=dt, name=f"trace{l}")
        group.xbar = b2.linked_var(trace, "xbar")
        group.v, group.isyn = v_init, 0.0
        jump = b2.Synapses(group, trace, on_pre=eq.TRACE_ON_PRE, dt=dt, name=f"trace_jump{l}")
        jump.connect(j="i")

        syn = b2.Synapses(pre_group, group, eq.SYNAPSE_MODEL, on_pre=eq.SYNAPSE_ON_PRE, method="exact", dt=dt,
                          name=f"synapses{l}")
        pre, post, widx = _synapse_indices(N, P_in, C, P, H, K, spec.connectivity.shared)
        syn.connect(i=pre, j=post)
        if not (np.array_equal(syn.i[:], pre) and np.array_equal(syn.j[:], post)):
            raise RuntimeError("brian2 reordered the synapses")  # pragma: no cover - internal invariant
        syn.widx = widx
        syn.w = _numpy(hidden[l - 1]).ravel()[widx]
        syn.gain, syn.rho_in, syn.plastic = float(params.gains[l - 1]), float(params.rho_in[l - 1]), float(plastic)

        _schedule(syn.pre, base + 0)
        _schedule(group.state_updater, base + 1)
        _schedule(group.thresholder["spike"], base + 2)
        spike_mon = b2.SpikeMonitor(group, name=f"spikes{l}")
        _schedule(spike_mon, base + 3)
        rec = _record_indices(record, l, n)
        v_mon = None
        if rec is not None:
            v_mon = b2.StateMonitor(group, "v", record=rec, dt=dt, name=f"v{l}")
            _schedule(v_mon, base + 3)
        _schedule(trace.state_updater, base + 4)
        _schedule(jump.pre, base + 5)
        _schedule(syn.state_updater, base + 6)
        acc = None
        if plastic:
            acc = b2.NeuronGroup(1, eq.ACCUMULATOR_MODEL, method="exact", dt=dt, name=f"ebar{l}")
            acc.xnom = b2.linked_var(nominal, "xnom")
            acc.n_neurons = n
            psi_sum = b2.Synapses(group, acc, eq.PSI_SUM, dt=dt, name=f"psi_sum{l}")
            psi_sum.connect()
            _schedule(psi_sum.summed_updaters["psi_sum_post"], base + 6)
            _schedule(acc.state_updater, base + 7)
            objects += [acc, psi_sum]
        _schedule(group.resetter["spike"], base + 8)
        objects += [group, trace, jump, syn, spike_mon] + ([v_mon] if v_mon is not None else [])
        layers.append((group, syn, spike_mon, v_mon, acc, (P, H, K), rec))
        pre_group = group

    previous = b2.prefs.codegen.target
    b2.prefs.codegen.target = target
    try:
        net = b2.Network(*objects)
        net.run(T * dt, namespace=namespace)
    finally:
        b2.prefs.codegen.target = previous

    out_spikes, out_v, out_e = [], [], []
    for l, (group, syn, spike_mon, v_mon, acc, (P, H, K), rec) in enumerate(layers, start=1):
        z = np.zeros((T, N * P * H))
        steps = np.rint(np.asarray(spike_mon.t / b2.second) / dt_s).astype(np.int64)
        z[steps, np.asarray(spike_mon.i)] = 1.0
        z = z.reshape(T, N, P, H)
        out_spikes.append(z)
        if v_mon is None:
            out_v.append(None)
        else:
            v = np.asarray(v_mon.v).T  # [T, n]
            if v.shape[0] != T:
                raise RuntimeError(f"brian2 ran {v.shape[0]} steps instead of {T}")  # pragma: no cover
            out_v.append(v.reshape(T, N, P, H) if rec is True else v)
        shape = spec.weight_shapes()[l - 1]
        out_e.append(LayerEligibility(np.asarray(syn.elig[:]).reshape(N, P, H, K),
                                      np.asarray(syn.widx[:]).reshape(N, P, H, K), tuple(shape), K,
                                      float(acc.ebar[0]) if acc is not None else float("nan"),
                                      float((z.sum(0) > 0).mean())))
    return Brian2Result(out_spikes, out_v, out_e, T)
