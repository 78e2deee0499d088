r"""Foreign NIR graphs in: a float64 step-by-step simulation of a feed-forward NIR chain.

:func:`load_chain` accepts a chain ``Input -> ... -> Output`` of ``Linear``, ``Affine``, ``Conv1d``,
``Flatten``, ``CubaLIF``, ``LIF``, ``IF``, ``LI`` and ``I`` nodes written by any tool (no spiking-rhm
metadata needed); any other node is refused with one line naming it.  :func:`run_chain` integrates
it with forward Euler, step ``dt``, in the discretisation of this package (``docs/hardware.md``)::

    CubaLIF   i' = i + k (w_in / tau_syn) x,   v' = v + dt/tau_mem (v_leak - v + r i'),
              z = v' > v_threshold,  v <- v_reset where z,   i <- (1 - dt/tau_syn) i'
    LIF       v' = v + dt/tau (v_leak - v) + k (r / tau) x,  then threshold and reset
    IF        v' = v + k r x,  then threshold and reset;     LI: the LIF without spikes;   I: v' = v + k r x

from ``v = v_leak`` (0 for IF and I), ``i = 0``.  The input ``x`` of a step enters by the area ``k``
its ``convention`` gives it: ``dirac`` (``k = 1``: a spike is a Dirac delta of unit area, NIR's
definition and spiking-rhm's graphs) or ``step`` (``k = dt``: each step's value is a current held
for ``dt``, how Norse's and snnTorch's importers read their graphs).  The logits are the last
node's value at the end divided by the window (an ``I`` readout) or its mean over the steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from spiking_rhm.errors import ConfigError

CONVENTIONS = {"dirac": "a spike is a Dirac delta of unit area (NIR, spiking-rhm): an input x adds k x with k = 1",
               "step": "each step's input is a current held for dt (Norse, snnTorch importers): k = dt"}


class ChainNode(NamedTuple):
    name: str
    kind: str  # the nir class name
    node: object


def _kinds():
    import nir

    return {nir.Input: "Input", nir.Output: "Output", nir.Linear: "Linear", nir.Affine: "Affine",
            nir.Conv1d: "Conv1d", nir.Flatten: "Flatten", nir.CubaLIF: "CubaLIF", nir.LIF: "LIF", nir.IF: "IF",
            nir.LI: "LI", nir.I: "I"}


SPIKING = ("CubaLIF", "LIF", "IF")


def load_chain(graph) -> list[ChainNode]:
    """The graph's nodes in chain order (:func:`hardware.nir_graph.chain`), each one checked as supported."""
    from hardware.nir_graph import chain

    kinds = _kinds()
    for name, node in graph.nodes.items():
        if type(node) not in kinds:
            raise ConfigError(f"node {name!r} ({type(node).__name__}) is not supported; foreign graphs may hold "
                              f"{', '.join(sorted(set(kinds.values())))}")
    out = [ChainNode(name, kinds[type(graph.nodes[name])], graph.nodes[name]) for name in chain(graph)]
    if out[-1].kind != "Output":
        raise ConfigError(f"the chain ends at {out[-1].name!r} ({out[-1].kind}), not at an Output node")
    return out


def input_shape(nodes: list[ChainNode]) -> tuple[int, ...]:
    """The Input node's shape without leading 1s (tools that trace a sample write its batch of 1)."""
    shape = [int(s) for s in np.asarray(next(iter(nodes[0].node.input_type.values()))).ravel()]
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return tuple(shape)


def _f(value, dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype)


def run_chain(nodes: list[ChainNode], x: torch.Tensor, dt: float, convention: str = "dirac"
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Simulate ``x [T, N, *input_shape]``: ``(logits [N, n_out], spikes {node: [T, N, ...]})``.

    Signals between nodes are areas per step: the input's ``k x``, a spiking node's ``k z``, a weight
    node's ``W u + dt b`` (a bias is a constant current), an LI or I node's ``dt v``.
    """
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown input convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
    if not dt > 0:
        raise ConfigError(f"dt must be positive, got {dt!r}")
    if len(nodes) < 3 or x.shape[0] == 0:
        raise ConfigError("nothing to run: the window is empty or the graph has no nodes between Input and Output")
    k = 1.0 if convention == "dirac" else float(dt)
    dtype = torch.float64
    T = x.shape[0]
    state: dict[str, dict[str, torch.Tensor]] = {}
    spikes: dict[str, list[torch.Tensor]] = {n.name: [] for n in nodes if n.kind in SPIKING}
    total = 0.0
    last = nodes[-2]
    for t in range(T):
        u = k * x[t].to(dtype)
        for n in nodes[1:-1]:
            u, value = _step(n, u, state, dt, k, dtype)
            if n.kind in SPIKING:
                spikes[n.name].append(value)
        total = total + value
    if last.kind == "I":
        logits = value / (T * dt)  # the integral of the readout over the window, per unit time
    else:
        logits = total / T  # spike counts / T, or the mean of a current
    return logits.reshape(logits.shape[0], -1), {name: torch.stack(z) for name, z in spikes.items()}


def _step(n: ChainNode, u: torch.Tensor, state: dict, dt: float, k: float, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of node ``n`` on the input area ``u``: ``(output area, output value)``."""
    node = n.node
    if n.kind in ("Linear", "Affine", "Conv1d", "Flatten"):
        if n.kind == "Linear":
            out = u @ _f(node.weight, dtype).T
        elif n.kind == "Affine":
            out = u @ _f(node.weight, dtype).T + dt * _f(node.bias, dtype)
        elif n.kind == "Flatten":
            end = node.end_dim + 1 if node.end_dim >= 0 else node.end_dim
            out = u.flatten(node.start_dim + 1, end)
        else:
            pad = np.asarray(node.padding)
            if pad.dtype.kind not in "iuf":
                raise ConfigError(f"node {n.name!r}: Conv1d padding {node.padding!r} is not supported (numbers only)")
            out = torch.nn.functional.conv1d(u, _f(node.weight, dtype), dt * _f(node.bias, dtype),
                                             stride=int(np.asarray(node.stride).ravel()[0]),
                                             padding=int(pad.ravel()[0]), dilation=int(np.asarray(node.dilation).ravel()[0]),
                                             groups=int(node.groups))
        return out, out / dt
    s = state.setdefault(n.name, {})
    if n.kind in ("I", "IF"):
        v = s.get("v", torch.zeros_like(u)) + _f(node.r, dtype) * u
    elif n.kind == "CubaLIF":
        i = s.get("i", torch.zeros_like(u)) + _f(node.w_in, dtype) / _f(node.tau_syn, dtype) * u
        v0 = s.get("v", torch.zeros_like(u) + _f(node.v_leak, dtype))
        v = v0 + dt / _f(node.tau_mem, dtype) * (_f(node.v_leak, dtype) - v0 + _f(node.r, dtype) * i)
        s["i"] = (1 - dt / _f(node.tau_syn, dtype)) * i
    else:  # LIF, LI
        tau = _f(node.tau, dtype)
        v0 = s.get("v", torch.zeros_like(u) + _f(node.v_leak, dtype))
        v = v0 + dt / tau * (_f(node.v_leak, dtype) - v0) + _f(node.r, dtype) / tau * u
    if n.kind in ("I", "LI"):
        s["v"] = v
        return dt * v, v
    z = (v > _f(node.v_threshold, dtype)).to(dtype)
    v_reset = getattr(node, "v_reset", None)
    s["v"] = torch.where(z > 0, _f(0.0 if v_reset is None else v_reset, dtype) + torch.zeros_like(v), v)
    return k * z, z


__all__ = ["CONVENTIONS", "ChainNode", "input_shape", "load_chain", "run_chain"]
