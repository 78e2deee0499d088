r"""Trained spiking networks as NIR graphs (Neuromorphic Intermediate Representation, nir 1.0.8).

:func:`to_nir` writes a :class:`~spiking_rhm.backends.norse.deployed.TrainedNetwork` as a chain
of NIR primitives; :func:`from_nir` reads such a graph back (exactly: same weights, same spikes).
Tensors keep the ``(channels, positions)`` layout of the spike input ``[C, d]``; flattened
vectors are row-major, index ``c * P + p``::

    input (C, d)
      cnn, conv=True : conv<l>  Conv1d(weight [H, C_in, s], stride s, bias 0)   -> (H, P_l)
      otherwise      : flatten0 (C*d), linear<l>  Linear([H*P_l, C_in*P_{l-1}])  -> (H*P_l,)
      lif<l>  CubaLIF(tau_syn, tau_mem, r = 1, v_leak, v_threshold, v_reset = 0, w_in = tau_syn)
    flatten (H*P_L)  ->  readout  Affine(W [n_out, H*P_L], b = c)  ->  integrator  I(r = 1)  ->  output

Conventions (NIR is declarative; these are the choices of this package, ``docs/hardware.md``):

* **Spikes are Dirac deltas of unit area; times are in seconds.**  With ``w_in = tau_syn`` a
  spike through weight ``w`` makes the synaptic current jump by ``w``, which is the Norse step
  ``i <- i + I_in`` (``spiking_rhm.backends.norse.neurons``).  The weights are the effective
  per-spike jumps ``gain_l W^l`` (the gains of the Norse back end folded in).
* **Readout = time average of the integrated Affine output**: ``logits = v_I(t_end) / t_end``
  ``= W counts / t_end + c``; with ``W[o, j P + p] = R[j, o] / (P nu_h)`` (``nu_h`` = the nominal
  hidden rate in Hz) this is the checkpoint's ``hbar . R + c``.
* Discretisation (metadata, not needed to read the graph): forward Euler with step ``dt``, the
  current jump applied before the voltage update, strict threshold ``v > v_threshold``.

The graph's metadata also carries the package's own description of the network
(``spiking_rhm``: the run config as JSON), which :func:`from_nir` needs to rebuild the Norse
network; any other NIR consumer can ignore it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from spiking_rhm import __version__
from spiking_rhm.atomic import atomic_path
from spiking_rhm.errors import ConfigError

METADATA_KEY = "spiking_rhm"
DISCRETISATION = ("forward Euler, step dt; synaptic current jump before the voltage update; "
                  "spike if v > v_threshold, then v = v_reset")


# --------------------------------------------------------------------------- weights <-> NIR layout
def conv_weight(W: np.ndarray, s: int) -> np.ndarray:
    """Norse/rate shared weights ``[H, s*C]`` (tap-major ``k = tap*C + c``) -> Conv1d ``[H, C, s]``."""
    H, K = W.shape
    return W.reshape(H, s, K // s).transpose(0, 2, 1).copy()


def unconv_weight(weight: np.ndarray) -> np.ndarray:
    """Conv1d ``[H, C, s]`` -> ``[H, s*C]`` (inverse of :func:`conv_weight`)."""
    H, C, s = weight.shape
    return weight.transpose(0, 2, 1).reshape(H, s * C).copy()


def dense_weight(W: np.ndarray, P_in: int, patch: int | None) -> np.ndarray:
    """Shared ``[H, K]`` or untied ``[P, H, K]`` layer weights as one matrix on flattened ``(C, P_in)``.

    Output index ``j * P + p``, input index ``c * P_in + q``; ``patch = None`` is the dense layer
    (one patch of everything, ``K = P_in * C`` channel-last: ``k = q * C + c``).
    """
    untied = W.ndim == 3
    H, K = W.shape[-2:]
    if patch is None:
        C = K // P_in
        Wp = W[0] if untied else W
        return Wp.reshape(H, P_in, C).transpose(0, 2, 1).reshape(H, C * P_in).copy()
    s = patch
    C, P = K // s, P_in // s
    M = np.zeros((H, P, C, P_in))
    for p in range(P):
        Wp = (W[p] if untied else W).reshape(H, s, C)  # [H, tap, c]
        M[:, p, :, p * s:(p + 1) * s] = Wp.transpose(0, 2, 1)
    return M.reshape(H * P, C * P_in)


def undense_weight(M: np.ndarray, P_in: int, patch: int | None, H: int, untied: bool) -> np.ndarray:
    """Inverse of :func:`dense_weight`; a matrix that is not of that form gives a ConfigError."""
    if patch is None:
        C = M.shape[1] // P_in
        W = M.reshape(H, C, P_in).transpose(0, 2, 1).reshape(H, P_in * C)
        return W[None].copy() if untied else W.copy()
    s = patch
    P = P_in // s
    C = M.shape[1] // P_in
    blocks = M.reshape(H, P, C, P_in)
    W = np.stack([blocks[:, p, :, p * s:(p + 1) * s].transpose(0, 2, 1).reshape(H, s * C) for p in range(P)])
    if not np.allclose(dense_weight(W, P_in, s), M, rtol=0, atol=0):
        raise ConfigError("the layer's weights connect outside their patches: not a hierarchical layer")
    if untied:
        return W
    if not np.all(W == W[:1]):
        raise ConfigError("the layer's weights differ between positions: not a shared (cnn) layer")
    return W[0].copy()


# --------------------------------------------------------------------------- export
def _flatten_top(nodes: dict, edges: list, prev: str, spec) -> str:
    """Append ``Flatten`` of the top layer's ``(H, P)`` to the chain; returns its name."""
    import nir

    nodes["flatten"] = nir.Flatten(input_type={"input": np.array([spec.widths[-1], spec.positions[-1]])},
                                   start_dim=0, end_dim=-1)
    edges.append((prev, "flatten"))
    return "flatten"


def _readout_affine(net, unit: float):
    """The readout ``Affine(W, c)`` on the flattened top layer: ``W[o, j P + p] = R[j, o] / (P unit)``."""
    import nir

    H, P = net.spec.widths[-1], net.spec.positions[-1]
    R = net.readout_weight.detach().cpu().double().numpy()
    W = np.repeat(R.T[:, :, None], P, axis=2).reshape(R.shape[1], H * P) / (P * unit)
    return nir.Affine(weight=W, bias=net.readout_bias.detach().cpu().double().numpy().copy())


def to_nir(net, conv: bool = True, profile: str = "native"):
    """The NIR graph of a trained network in the conventions of ``profile`` (:data:`PROFILES`).

    ``native``: the graph of the module docstring (``conv=False``: Linear layers also for the cnn);
    other profiles write every layer as an Affine on flattened vectors (:func:`_flat_graph`).
    """
    import nir

    if profile not in PROFILES:
        raise ConfigError(f"unknown export profile {profile!r}; valid: {', '.join(PROFILES)}")
    params = net.params
    wrong = [f"resets by {params.reset!r}"] if getattr(params, "reset", "zero") != "zero" else []
    v0, spread = getattr(params, "v_init", None), getattr(params, "v_spread", 0.0)
    if spread:
        wrong.append(f"starts at a random potential in [{float(v0):g}, {float(v0) + spread:g})")
    elif v0 is not None:
        wrong.append(f"starts at v = {float(v0):g}, not at rest")
    if wrong:
        raise ConfigError(f"a NIR CubaLIF resets to v_reset and starts at rest; this network {' and '.join(wrong)}: "
                          f"export it with --option spiking.reset=zero --option spiking.v_init=rest")
    if getattr(params, "readout", "counts") != "counts":
        raise ConfigError(f"the NIR readout integrates spike counts; this network uses the {params.readout!r} "
                          f"readout: export it with --option spiking.readout=counts")
    if PROFILES[profile].code is not None:
        return _flat_graph(net, profile, conv)

    spec, params = net.spec, net.params
    C, d = spec.in_channels, spec.positions[0]
    dt = params.dt
    tau_syn, tau_mem = 1 / float(params.lif.tau_syn_inv), 1 / float(params.lif.tau_mem_inv)
    use_conv = conv and spec.arch == "cnn"
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([C, d])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    if not use_conv:
        nodes["flatten0"] = nir.Flatten(input_type={"input": np.array([C, d])}, start_dim=0, end_dim=-1)
        edges.append((prev, "flatten0"))
        prev = "flatten0"
    for l in range(spec.depth):
        W = net.hidden[l].detach().cpu().double().numpy() * params.gains[l]
        H, P_in, P = spec.widths[l], spec.positions[l], spec.positions[l + 1]
        if use_conv:
            name = f"conv{l + 1}"
            nodes[name] = nir.Conv1d(input_shape=P_in, weight=conv_weight(W, spec.patch), stride=spec.patch,
                                     padding=0, dilation=1, groups=1, bias=np.zeros(H))
            shape = (H, P)
        else:
            name = f"linear{l + 1}"
            nodes[name] = nir.Linear(weight=dense_weight(W, P_in, spec.patch))
            shape = (H * P,)
        edges.append((prev, name))
        lif = f"lif{l + 1}"
        full = lambda value: np.full(shape, float(value))  # noqa: E731
        nodes[lif] = nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(1.0),
                                 v_leak=full(params.lif.v_leak), v_threshold=full(params.lif.v_th),
                                 v_reset=full(params.lif.v_reset), w_in=full(tau_syn))
        edges.append((name, lif))
        prev = lif
    prev = _flatten_top(nodes, edges, prev, spec) if use_conv else prev
    nodes["readout"] = _readout_affine(net, params.rho_hidden / dt)  # per spike: 1 / (P nu_h), nu_h in Hz
    n_out = net.readout_weight.shape[1]
    nodes["integrator"] = nir.I(r=np.ones(n_out))
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    edges += [(prev, "readout"), ("readout", "integrator"), ("integrator", "output")]
    meta = {"generator": f"spiking-rhm {__version__}", "dt": float(dt), "steps": int(net.steps),
            "time_unit": "s", "spikes": "Dirac deltas of unit area", "discretisation": DISCRETISATION,
            "readout": "logits = integrator state / window duration",
            METADATA_KEY: json.dumps({"config": net.config.to_dict(), "conv": bool(use_conv)})}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


# --------------------------------------------------------------------------- export profiles
class LIFConstants(NamedTuple):
    """The network's neuron constants (seconds, potentials), read from its parameters."""

    dt: float
    tau_syn: float
    tau_mem: float
    v_leak: float
    v_th: float
    v_reset: float


def lif_constants(params) -> LIFConstants:
    """:class:`LIFConstants` of a network's :class:`~spiking_rhm.backends.norse.network.NorseParameters`."""
    lif = params.lif
    return LIFConstants(float(params.dt), 1 / float(lif.tau_syn_inv), 1 / float(lif.tau_mem_inv),
                        float(lif.v_leak), float(lif.v_th), float(lif.v_reset))


class LayerCode(NamedTuple):
    """How a flat profile writes one layer: CubaLIF fields, the Affine bias, the graph's time step."""

    cuba: dict[str, float]
    bias: float
    dt: float


NORSE_R = 2.0 ** -24  # below float32 resolution: the initial-potential deficit v_leak r / (1 + r) is invisible


def norse_code(c: LIFConstants) -> LayerCode:
    r"""``norse.torch.from_nir`` (Norse 1.1.0): its CubaLIF is a leaky box synapse ``s`` that relaxes to
    the node's ``v_leak`` and starts there, feeding ``r s`` to a box LIF with the same ``v_leak``,
    reset to 0 (``v_reset`` is dropped), started at ``v_leak``, integrated with the ``dt`` it is given.

    Potentials are measured from ``v_reset`` (``L' = v_leak - v_reset``); with ``V = L' / (1 + r)``
    and ``w_in = tau_syn / (r dt)`` the synapse is ``s = V + i / r`` (``i`` the Norse current) and the
    neuron sees ``V + r s = L' + i``: the Norse step, for any ``r``; the only trace of ``r`` is the
    initial potential ``V = L' - L' r / (1 + r)`` instead of ``L'``, which ``r = 2^-24`` puts below
    float32 resolution (the importer computes in float32).
    """
    r = NORSE_R
    rest = c.v_leak - c.v_reset
    return LayerCode({"tau_syn": c.tau_syn, "tau_mem": c.tau_mem, "r": r, "v_leak": rest / (1 + r),
                      "v_threshold": c.v_th - c.v_reset, "v_reset": 0.0, "w_in": c.tau_syn / (r * c.dt)},
                     0.0, c.dt)


SNNTORCH_DT = 1e-4  # snntorch.import_nir fixes dt = 1e-4 s


def snntorch_code(c: LIFConstants) -> LayerCode:
    r"""``snntorch.import_nir.import_from_nir`` (snnTorch 1.0): ``snn.Synaptic`` with ``alpha = 1 - dt'/tau_syn``,
    ``beta = 1 - dt'/tau_mem`` (``dt' = 1e-4`` fixed), threshold ``v_threshold / (w_in dt'/tau_syn)``, reset
    to zero, state from 0; it requires ``v_leak = 0`` and ``r = tau_mem / dt'``.

    Time is rescaled by ``dt' / dt`` (taus written as ``tau dt' / dt``, so the decays are the Norse
    ones) and potentials are ``(v - v_reset) / b`` with ``b = dt / tau_mem`` (``w_in = b / a``,
    ``a = dt / tau_syn``); then ``mem <- beta mem + syn`` is the Norse voltage step and ``syn`` the
    Norse current plus the leak drive ``L' = v_leak - v_reset``, which the Affine bias ``L' a`` feeds
    (steady value ``L'``).  **Not exact**: snnTorch starts ``syn`` and ``mem`` at 0, so the leak drive
    rises as ``L' (1 - (1 - a)^t)`` and the potential starts at ``v_reset`` instead of ``v_leak``; the
    first ``~ tau_mem / dt`` steps differ (measured by ``deploy --target snntorch-nir``).
    """
    a, b = c.dt / c.tau_syn, c.dt / c.tau_mem
    k = SNNTORCH_DT / c.dt
    return LayerCode({"tau_syn": c.tau_syn * k, "tau_mem": c.tau_mem * k, "r": c.tau_mem / c.dt, "v_leak": 0.0,
                      "v_threshold": c.v_th - c.v_reset, "v_reset": 0.0, "w_in": b / a},
                     (c.v_leak - c.v_reset) * a, SNNTORCH_DT)


def spikingjelly_code(c: LIFConstants) -> LayerCode:
    r"""``spikingjelly.activation_based.nir_exchange.import_from_nir(graph, dt)`` (SpikingJelly 2.0): a
    ``CUBALIFNode`` with ``c <- (1 - dt/tau_syn) c + x``, ``v <- (1 - dt/tau_mem) v + c``, spike if
    ``v >= v_threshold``, reset to ``v_reset``, state from ``c = 0``, ``v = v_reset``; it requires uniform
    parameters, ``v_leak = 0``, ``r = tau_mem / dt`` and ``w_in = tau_syn / dt``, and has Conv1d.

    Potentials are measured from rest and in units of ``b = dt / tau_mem``: ``(v - v_leak) / b``; then
    the leak vanishes, ``c`` is the Norse current and ``v`` the Norse voltage step, the threshold is
    ``(v_th - v_leak) / b`` (written as the next float32 above it: SpikingJelly fires at ``>=``) and the
    reset ``(v_reset - v_leak) / b``.  **Not exact at the start**: SpikingJelly starts ``v`` at ``v_reset``
    (the state of a neuron that has just fired) instead of at rest; the leak drive is exact.
    """
    b = c.dt / c.tau_mem
    thr = np.float32((c.v_th - c.v_leak) / b)
    thr = np.finfo(np.float32).tiny if thr == 0 else np.nextafter(thr, np.float32(np.inf))
    return LayerCode({"tau_syn": c.tau_syn, "tau_mem": c.tau_mem, "r": c.tau_mem / c.dt, "v_leak": 0.0,
                      "v_threshold": float(thr), "v_reset": (c.v_reset - c.v_leak) / b,
                      "w_in": c.tau_syn / c.dt}, 0.0, c.dt)


class Profile(NamedTuple):
    """An export profile: the conventions of one NIR reader."""

    reader: str  # the importer the file is written for
    code: Callable[[LIFConstants], LayerCode] | None  # None: the native graph (Conv1d, I readout)
    exact: str  # what the reader reproduces
    conv: bool = False  # the reader has Conv1d (a cnn keeps it; else every layer is an Affine)


PROFILES: dict[str, Profile] = {
    "native": Profile("spiking-rhm (hardware.nir_graph.from_nir, hardware.loihi)", None, "exact"),
    "norse": Profile("norse.torch.from_nir (Norse 1.1.0)", norse_code,
                     "exact equations; initial potential off by v_leak 2^-24; float32"),
    "snntorch": Profile("snntorch.import_nir.import_from_nir (snnTorch 1.0)", snntorch_code,
                        "synaptic and membrane state start at 0 instead of the rest state; float32"),
    "spikingjelly": Profile("spikingjelly.activation_based.nir_exchange.import_from_nir (SpikingJelly 2.0)",
                            spikingjelly_code, "the potential starts at v_reset instead of the rest state; float32",
                            conv=True),
}


def _flat_graph(net, profile: str, conv: bool = True):
    """The graph of a foreign profile: ``Input (C d) -> [Affine -> CubaLIF] * L -> Affine -> Output``.

    Every layer is one Affine on the flattened ``(C, P)`` vector (no Flatten nodes: Norse and snnTorch
    apply ``Flatten(start_dim=0)`` to the batch dimension too); for a reader with Conv1d a cnn keeps
    ``Input (C, d) -> [Conv1d -> CubaLIF (H, P)] * L -> Flatten`` (unless ``conv=False``).  The readout
    Affine ``(W_out / dt, c)`` gives ``logits`` as the mean of its output over the window's steps.
    """
    import nir

    spec, params = net.spec, net.params
    c = lif_constants(params)
    code = PROFILES[profile].code(c)
    use_conv = conv and PROFILES[profile].conv and spec.arch == "cnn"
    C, d = spec.in_channels, spec.positions[0]
    shape_in = [C, d] if use_conv else [C * d]
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape_in)})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for l in range(spec.depth):
        W = net.hidden[l].detach().cpu().double().numpy() * params.gains[l]
        H, P = spec.widths[l], spec.positions[l + 1]
        if use_conv:
            name, shape = f"conv{l + 1}", (H, P)
            nodes[name] = nir.Conv1d(input_shape=spec.positions[l], weight=conv_weight(W, spec.patch),
                                     stride=spec.patch, padding=0, dilation=1, groups=1,
                                     bias=np.full(H, float(code.bias)))
        else:
            M = dense_weight(W, spec.positions[l], spec.patch)
            name, shape = f"affine{l + 1}", (M.shape[0],)
            nodes[name] = nir.Affine(weight=M, bias=np.full(M.shape[0], float(code.bias)))
        lif = f"lif{l + 1}"
        nodes[lif] = nir.CubaLIF(**{k: np.full(shape, float(v)) for k, v in code.cuba.items()})
        edges += [(prev, name), (name, lif)]
        prev = lif
    prev = _flatten_top(nodes, edges, prev, spec) if use_conv else prev
    nodes["readout"] = _readout_affine(net, params.rho_hidden)  # per step: 1 / (P rho_h)
    nodes["output"] = nir.Output(output_type={"output": np.array([net.readout_weight.shape[1]])})
    edges += [(prev, "readout"), ("readout", "output")]
    layout = "(C, d)" if use_conv else "the (C, d) spike code flattened row-major (c d + q)"
    meta = {"generator": f"spiking-rhm {__version__}", "profile": profile, "reader": PROFILES[profile].reader,
            "dt": float(code.dt), "steps": int(net.steps), "time_unit": "s",
            "input": f"one 0/1 tensor per step: {layout}",
            "readout": "logits = mean over the window's steps of the output",
            METADATA_KEY: json.dumps({"config": net.config.to_dict(), "conv": bool(use_conv), "profile": profile})}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(path: str | Path, graph) -> Path:
    """Write ``graph`` to ``path`` (HDF5, gzip) atomically."""
    import nir

    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return Path(path)


def read_nir(path: str | Path, type_check: bool = True):
    """Read a NIR file; a missing or malformed file gives a :class:`ConfigError` naming it.

    ``type_check=False`` skips NIR's check that neighbouring nodes' types match (other tools write
    graphs that fail it, e.g. Norse 1.1.0's ``to_nir`` keeps the batch dimension in the Input type).
    """
    import nir

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"NIR file {path} does not exist")
    try:
        return nir.read(path, type_check=type_check)
    except Exception as err:  # h5py / nir raise OSError, KeyError, ValueError, AssertionError
        raise ConfigError(f"{path} is not a readable NIR graph: {type(err).__name__}: {err}") from None


# --------------------------------------------------------------------------- import
def chain(graph) -> list[str]:
    """Node names from the Input to the Output of a single-path graph (else ConfigError)."""
    nxt: dict[str, str] = {}
    for src, dst in graph.edges:
        if src in nxt:
            raise ConfigError(f"node {src!r} has several successors: only chains are supported")
        nxt[src] = dst
    inputs = list(graph.inputs)
    if len(inputs) != 1:
        raise ConfigError(f"the graph needs exactly one Input node, has {len(inputs)}")
    order, seen = [inputs[0]], {inputs[0]}
    while order[-1] in nxt:
        node = nxt[order[-1]]
        if node in seen:
            raise ConfigError(f"the graph has a cycle through {node!r}: only feed-forward chains are supported")
        order.append(node)
        seen.add(node)
    if len(order) != len(graph.nodes):
        raise ConfigError("the graph has nodes outside the Input -> Output chain")
    return order


def package_metadata(graph) -> dict:
    """The ``spiking_rhm`` metadata of a graph written by :func:`to_nir` (else ConfigError)."""
    raw = (graph.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ConfigError("this NIR graph was not written by spiking-rhm (no 'spiking_rhm' metadata); "
                          "run it with `spiking-rhm run-nir GRAPH --v .. --m .. --nc .. --s .. --L ..` "
                          "(the RHM setting and spike code on the command line)")
    if isinstance(raw, bytes):
        raw = raw.decode("utf8")
    return json.loads(str(raw))


def from_nir(graph, dtype: torch.dtype = torch.float64):
    """The :class:`TrainedNetwork` of a graph written by :func:`to_nir` (weights recovered exactly).

    The neuron parameters of every CubaLIF node are checked against the ones the stored config
    gives (a graph edited by hand to other dynamics cannot be represented by the config).
    """
    import nir

    from spiking_rhm.backends.norse.deployed import TrainedNetwork
    from spiking_rhm.backends.norse.network import float64_parameters
    from spiking_rhm.backends.norse.build import build_network
    from spiking_rhm.config import RunConfig

    from spiking_rhm.config import with_legacy_operating_point

    meta = package_metadata(graph)
    profile = meta.get("profile", "native")
    if profile != "native":
        raise ConfigError(f"this graph was exported with --profile {profile} (for {PROFILES[profile].reader}); "
                          "spiking-rhm rebuilds and deploys the native export (spiking-rhm export --profile native)")
    cfg = RunConfig.from_dict(with_legacy_operating_point(meta["config"]))
    encoder, spec, params = build_network(cfg, cfg.rhm.v)
    if dtype == torch.float64:
        params = float64_parameters(params)
    order = chain(graph)
    weights = [n for n in order if isinstance(graph.nodes[n], (nir.Conv1d, nir.Linear))]
    lifs = [n for n in order if isinstance(graph.nodes[n], nir.CubaLIF)]
    if len(weights) != spec.depth or len(lifs) != spec.depth:
        raise ConfigError(f"expected {spec.depth} weight and CubaLIF nodes, found {len(weights)} and {len(lifs)}")
    tau_syn, tau_mem = 1 / float(params.lif.tau_syn_inv), 1 / float(params.lif.tau_mem_inv)
    expected = {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": 1.0, "v_leak": float(params.lif.v_leak),
                "v_threshold": float(params.lif.v_th), "v_reset": float(params.lif.v_reset), "w_in": tau_syn}
    hidden = []
    for l, (wname, lname) in enumerate(zip(weights, lifs)):
        node = graph.nodes[lname]
        for field, value in expected.items():
            got = np.asarray(getattr(node, field), dtype=float)
            if not np.allclose(got, value, rtol=1e-12, atol=0):
                raise ConfigError(f"{lname}.{field} = {got.ravel()[:3]}... differs from the config's {value}")
        wn = graph.nodes[wname]
        if isinstance(wn, nir.Conv1d):
            W = unconv_weight(np.asarray(wn.weight, dtype=np.float64))
        else:
            W = undense_weight(np.asarray(wn.weight, dtype=np.float64), spec.positions[l], spec.patch,
                               spec.widths[l], not spec.connectivity.shared)
        if W.shape != spec.weight_shapes()[l]:
            raise ConfigError(f"{wname}: weights {W.shape} do not fit the config's {spec.weight_shapes()[l]}")
        hidden.append(torch.as_tensor(W / params.gains[l], dtype=dtype))
    ro = graph.nodes["readout"] if "readout" in graph.nodes else None
    if not isinstance(ro, nir.Affine):
        raise ConfigError("the graph has no Affine node named 'readout'")
    H, P = spec.widths[-1], spec.positions[-1]
    nu_h = params.rho_hidden / params.dt
    blocks = np.asarray(ro.weight, dtype=np.float64).reshape(-1, H, P) * (P * nu_h)
    R = blocks.mean(2).T
    return TrainedNetwork(spec, params, hidden, torch.as_tensor(R, dtype=dtype),
                          torch.as_tensor(np.asarray(ro.bias, dtype=np.float64), dtype=dtype), encoder, cfg)


__all__ = ["PROFILES", "LIFConstants", "LayerCode", "Profile", "chain", "conv_weight", "dense_weight", "from_nir",
           "lif_constants", "norse_code", "spikingjelly_code", "package_metadata", "read_nir", "snntorch_code", "to_nir",
           "undense_weight", "unconv_weight", "write_nir"]
