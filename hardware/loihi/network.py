r"""NIR graph -> Lava processes (Loihi 2 simulation, float or bit-accurate fixed point).

A chain ``Input -> [Flatten] -> (Conv1d | Linear | Affine) -> CubaLIF -> ... -> readout`` becomes
one Lava ``Sparse`` + ``LIF`` pair per layer, fed by a ``RingBuffer`` source and recorded by
``Extractor`` taps (one message per step; a ``RingBuffer`` sink is read back one element at a time).  CubaLIF (``tau_syn dI/dt = -I + w_in S``, ``tau_mem dv/dt = v_leak - v + r I``,
spikes as unit-area Dirac deltas, step ``dt``) maps onto Lava's LIF
(``u = (1 - du) u + a``, ``v = (1 - dv) v + u + bias``) by::

    du = dt / tau_syn,   dv = dt / tau_mem,   a = (dt / tau_mem) r (w_in / tau_syn) W z,
    bias = (dt / tau_mem) (v_leak - v_reset),  vth = v_threshold - v_reset   (potentials shifted by v_reset)

which is the Norse step of :mod:`spiking_rhm.backends.norse.neurons` exactly (float64: the same
spikes, ``tests/hardware/test_loihi_network.py``).  Every Lava synapse delays by one step, so
layer l (1-based) of Lava step ``tau`` is the Norse step ``tau - l - 1``; the runs are ``T + depth + 1``
steps long and the trains are re-aligned.  Batches are simulated as ``N`` copies of the network
side by side (block-diagonal sparse weights), as a chip would run them in parallel.

The nodes after the last CubaLIF (``Flatten``, ``Affine``/``Linear``, ``I``) form the readout, which
runs on the host from the recorded spike counts: ``logits = (W counts + b t_end) / t_end``.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple, Sequence

import numpy as np

from hardware.loihi.fixed_point import FixedLIF, FloatLIF, quantise, simulate_fixed
from spiking_rhm.errors import BackendUnavailableError, ConfigError

PRECISIONS = ("float", "fixed")
# Spikes enter the Sparse synapses as 0/1 "graded" payloads: Lava then computes ``W . s`` as one
# sparse mat-vec instead of slicing the spiking columns out of the CSR matrix (the same numbers,
# bit for bit in fixed point; 2.2x faster for 256 copies of a width-128 network).
GRADED = 1


class Readout(NamedTuple):
    weight: np.ndarray  # [n_out, n_last]
    bias: np.ndarray  # [n_out]


class LoihiNetwork(NamedTuple):
    """Layers of a NIR chain in Lava's terms (float), the host readout, the input shape and ``dt``."""

    layers: list[FloatLIF]
    readout: Readout | None
    input_shape: tuple[int, ...]
    dt: float

    def fixed(self) -> list[FixedLIF]:
        """The layers in Loihi integers (:func:`hardware.loihi.fixed_point.quantise`)."""
        return [quantise(layer) for layer in self.layers]


# --------------------------------------------------------------------------- NIR -> layers
def _conv1d_matrix(node) -> np.ndarray:
    """A NIR Conv1d (no padding/dilation/groups) as a matrix on flattened ``(C_in, L_in)``."""
    W = np.asarray(node.weight, dtype=np.float64)
    H, C, k = W.shape
    stride, L_in = int(np.asarray(node.stride).ravel()[0]), int(np.asarray(node.input_shape).ravel()[0])
    for field, ok in (("padding", 0), ("dilation", 1), ("groups", 1)):
        value = np.asarray(getattr(node, field)).ravel()
        if value.size and int(value[0]) != ok:
            raise ConfigError(f"Conv1d with {field} = {value[0]} is not supported (only {field} = {ok})")
    if np.any(np.asarray(node.bias) != 0):
        raise ConfigError("Conv1d bias is not supported on the Loihi path (biases live in the neurons)")
    L_out = (L_in - k) // stride + 1
    M = np.zeros((H, L_out, C, L_in))
    for p in range(L_out):
        M[:, p, :, p * stride:p * stride + k] = W
    return M.reshape(H * L_out, C * L_in)


def _weights(node) -> np.ndarray:
    import nir

    if isinstance(node, nir.Conv1d):
        return _conv1d_matrix(node)
    if isinstance(node, nir.Affine):
        if np.any(np.asarray(node.bias) != 0):
            raise ConfigError("an Affine bias before a neuron is not supported on the Loihi path")
    return np.asarray(node.weight, dtype=np.float64)


def _uniform(node, field: str, name: str) -> float:
    value = np.asarray(getattr(node, field), dtype=np.float64)
    if not np.allclose(value, value.ravel()[0], rtol=1e-12, atol=0):
        raise ConfigError(f"{name}.{field} differs between neurons; Lava's LIF shares it per process")
    return float(value.ravel()[0])


def _cuba_lif(name: str, node, W: np.ndarray, dt: float) -> FloatLIF:
    tau_syn, tau_mem = _uniform(node, "tau_syn", name), _uniform(node, "tau_mem", name)
    if not (dt < tau_syn and dt < tau_mem):
        raise ConfigError(f"{name}: dt = {dt} s must be below tau_syn = {tau_syn} and tau_mem = {tau_mem} s")
    n = W.shape[0]
    flat = lambda field: np.broadcast_to(np.asarray(getattr(node, field), dtype=np.float64).ravel(), (n,))  # noqa: E731
    v_reset, v_th = _uniform(node, "v_reset", name), _uniform(node, "v_threshold", name)
    dv = dt / tau_mem
    weight = (dv * flat("r") * flat("w_in") / tau_syn)[:, None] * W
    return FloatLIF(weight, dt / tau_syn, dv, dv * (flat("v_leak") - v_reset), v_th - v_reset,
                    flat("v_leak") - v_reset)


def from_nir(graph, dt: float | None = None) -> LoihiNetwork:
    """The Lava layers of a NIR chain; ``dt`` (s) defaults to the graph's ``dt`` metadata."""
    import nir

    from hardware.nir_graph import chain

    if dt is None:
        dt = (graph.metadata or {}).get("dt")
        if dt is None:
            raise ConfigError("the graph has no 'dt' metadata; give the simulation step dt (seconds)")
    dt = float(np.asarray(dt).ravel()[0]) if np.ndim(dt) else float(dt)
    if not dt > 0:
        raise ConfigError(f"dt must be positive, got {dt}")
    order = chain(graph)
    input_shape = tuple(int(x) for x in np.asarray(graph.nodes[order[0]].input_type["input"]).ravel())
    layers, pending, readout = [], None, None
    for name in order[1:]:
        node = graph.nodes[name]
        if isinstance(node, (nir.Flatten, nir.Output)):
            continue
        if isinstance(node, (nir.Conv1d, nir.Linear, nir.Affine)):
            if pending is not None:
                raise ConfigError(f"two weight nodes in a row before {name!r}")
            pending = (name, node)
        elif isinstance(node, nir.CubaLIF):
            if pending is None:
                raise ConfigError(f"CubaLIF {name!r} has no weight node before it")
            layers.append(_cuba_lif(name, node, _weights(pending[1]), dt))
            pending = None
        elif isinstance(node, nir.I) and pending is not None and not isinstance(pending[1], nir.Conv1d):
            r = np.asarray(node.r, dtype=np.float64).ravel()
            W = np.asarray(pending[1].weight, dtype=np.float64)
            bias = np.asarray(getattr(pending[1], "bias", np.zeros(W.shape[0])), dtype=np.float64)
            readout = Readout(W * r[:, None], bias * r)
            pending = None
        else:
            raise ConfigError(f"node {name!r} ({type(node).__name__}) is not supported on the Loihi path "
                              "(Input, Flatten, Conv1d, Linear, Affine, CubaLIF, and a final Affine -> I readout)")
    if pending is not None:
        raise ConfigError(f"weight node {pending[0]!r} leads to no neuron or integrator")
    if not layers:
        raise ConfigError("the graph has no CubaLIF layer")
    n_in = int(np.prod(input_shape))
    for l, layer in enumerate(layers):
        expect = n_in if l == 0 else layers[l - 1].weight.shape[0]
        if layer.weight.shape[1] != expect:
            raise ConfigError(f"layer {l + 1} expects {layer.weight.shape[1]} inputs, gets {expect}")
    return LoihiNetwork(layers, readout, input_shape, dt)


# --------------------------------------------------------------------------- running
class LoihiRun(NamedTuple):
    trains: list[np.ndarray]  # per layer [T, N, n_l] (0/1), aligned with the input frames
    counts: list[np.ndarray]  # per layer [N, n_l]
    logits: np.ndarray | None  # [N, n_out]


def run(net: LoihiNetwork, spikes, precision: str = "float", engine: str = "lava") -> LoihiRun:
    """Simulate input ``spikes [T, N, *input_shape]`` (numpy or torch, 0/1) from rest.

    ``precision``: ``float`` (Lava ``floating_pt`` models) or ``fixed`` (``fixed_pt``, bit-accurate
    Loihi integers).  ``engine``: ``lava`` (the processes) or ``reference`` (fixed point only:
    :func:`~hardware.loihi.fixed_point.simulate_fixed`, the same integers in numpy).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if engine not in ("lava", "reference"):
        raise ConfigError(f"engine must be 'lava' or 'reference', got {engine!r}")
    spikes = np.asarray(spikes.detach().cpu().numpy() if hasattr(spikes, "detach") else spikes)
    T, N = spikes.shape[:2]
    if tuple(spikes.shape[2:]) != tuple(net.input_shape):
        raise ConfigError(f"input spikes must be [T, N, {', '.join(map(str, net.input_shape))}], "
                          f"got {tuple(spikes.shape)}")
    depth = len(net.layers)
    steps = T + depth + 1
    x = np.zeros((steps, N, int(np.prod(net.input_shape))), dtype=np.int8)
    x[:T] = spikes.reshape(T, N, -1)
    if engine == "reference":
        if precision != "fixed":
            raise ConfigError("the reference engine is the fixed-point integer model (precision = 'fixed')")
        raw = simulate_fixed(net.fixed(), x)
    else:
        raw = _run_lava(net, x, precision)
    trains = [z[l + 1:l + 1 + T] for l, z in enumerate(raw)]  # layer l lags the input by l + 1 steps
    counts = [z.sum(0, dtype=np.int64) for z in trains]
    logits = None
    if net.readout is not None:
        t_end = T * net.dt
        logits = (counts[-1] @ net.readout.weight.T + net.readout.bias * t_end) / t_end
    return LoihiRun(trains, counts, logits)


def lava():
    """The Lava classes the Loihi path uses (after the Python 3.11 shim), as one namespace, or a clear
    error when the optional extra is missing.  ``run_cfg(precision)`` is the simulation config."""
    import types

    from hardware import lava_shim

    lava_shim.install()
    try:
        from lava.magma.core.learning.learning_rule import Loihi3FLearningRule
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.dense.process import LearningDense
        from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIF
        from lava.proc.sparse.process import Sparse
        from lava.utils.weightutils import SignMode
    except ImportError as err:
        raise BackendUnavailableError(f"the Lava path needs lava-nc ({err}); install it with "
                                      "`bash scripts/install_lava.sh`") from None

    def run_cfg(precision: str):
        # the Extractor's model carries no precision tag: name it explicitly
        return Loihi2SimCfg(select_tag="fixed_pt" if precision == "fixed" else "floating_pt",
                            exception_proc_model_map={Extractor: PyLoihiExtractorModel})

    return types.SimpleNamespace(RunSteps=RunSteps, run_cfg=run_cfg, Extractor=Extractor, Source=Source, LIF=LIF,
                                 Sparse=Sparse, SignMode=SignMode, LearningDense=LearningDense,
                                 Loihi3FLearningRule=Loihi3FLearningRule)


@contextlib.contextmanager
def lava_session(source):
    """Stop the Lava runtime of ``source`` afterwards; after a failure, end its subprocesses instead
    (``Runtime.stop`` waits forever for a ProcessModel that has died)."""
    try:
        yield source
    except BaseException:
        runtime = getattr(source, "_runtime", None)
        infrastructure = getattr(runtime, "_messaging_infrastructure", None)
        for actor in getattr(infrastructure, "actors", []):
            with contextlib.suppress(ValueError, AttributeError):
                if actor.is_alive():
                    actor.terminate()
        with contextlib.suppress(Exception):
            infrastructure._smm.shutdown()
        raise
    else:
        source.stop()


def run_steps(source, steps: int, run_cfg) -> None:
    """``source.run(RunSteps(steps))``; when a ProcessModel fails in its subprocess, the error raised
    here carries that process's traceback (Lava only logs it at INFO level)."""
    try:
        source.run(condition=lava().RunSteps(num_steps=steps), run_cfg=run_cfg)
    except RuntimeError as err:
        runtime = getattr(source, "_runtime", None)
        actors = getattr(getattr(runtime, "_messaging_infrastructure", None), "actors", [])
        details = [a.exception[1] for a in actors if getattr(a, "exception", None)]
        if not details:
            raise
        raise RuntimeError(f"{err}\n" + "\n".join(details)) from None


def _run_lava(net: LoihiNetwork, x: np.ndarray, precision: str) -> list[np.ndarray]:
    """Run ``x [steps, N, n_in]`` through Lava processes; returns every layer's train ``[steps, N, n_l]``."""
    import scipy.sparse as sp

    lv = lava()
    fixed = precision == "fixed"
    steps, N = x.shape[:2]
    data = np.ascontiguousarray(x.reshape(steps, -1).T)  # [N * n_in, steps], sample-major
    source = lv.Source(data=data.astype(np.int32) if fixed else data.astype(np.float64))
    prev, sinks = source.s_out, []
    layers: Sequence = net.fixed() if fixed else net.layers
    for layer in layers:
        block = sp.kron(sp.identity(N, format="csr"), sp.csr_matrix(layer.weight), format="csr")
        n = block.shape[0]
        if fixed:
            syn = lv.Sparse(weights=block.astype(np.int32), weight_exp=layer.weight_exp, num_weight_bits=8,
                            sign_mode=lv.SignMode.MIXED, num_message_bits=GRADED)
            lif = lv.LIF(shape=(n,), u=0, v=np.tile(layer.v_init, N), du=layer.du, dv=layer.dv,
                      bias_mant=np.tile(layer.bias_mant, N), bias_exp=np.tile(layer.bias_exp, N), vth=layer.vth)
        else:
            syn = lv.Sparse(weights=block, num_message_bits=GRADED)
            lif = lv.LIF(shape=(n,), u=0.0, v=np.tile(layer.v_init, N), du=layer.du, dv=layer.dv,
                      bias_mant=np.tile(layer.bias, N), vth=layer.vth)
        prev.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
        sink = lv.Extractor(shape=(n,), buffer_size=steps)  # one message per step, read after the run
        lif.s_out.connect(sink.in_port)
        sinks.append(sink)
        prev = lif.s_out
    with lava_session(source):
        run_steps(source, steps, lv.run_cfg(precision))
        raw = [np.stack([sink.receive() for _ in range(steps)]) for sink in sinks]  # [steps, N * n_l]
    return [z.reshape(steps, N, -1).astype(np.int8) for z in raw]


__all__ = ["LoihiNetwork", "LoihiRun", "PRECISIONS", "Readout", "from_nir", "run"]
