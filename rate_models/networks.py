r"""Rate networks of the RHM literature as pure functions of explicit parameters.

Three architectures share one layer equation (``l = 1..depth``, ``h^0 = x``)::

    a^l_{p,j} = sum_k W^l_{j,k} patch^l_{p,k} / sqrt(fan_in_l)  (+ 0.1 b^l_{p,j})
    h^l       = relu(a^l)
    y         = mean_p(h^depth_p) . beta / H                      (mean-field readout)

* ``cnn`` -- hierarchical CNN: filter = stride = s, weights shared over positions,
  ``W^l: [H, s*C_in]``; ``patch^l_p`` = the s consecutive input positions s*p..s*p+s-1,
  flattened tap-major (``k = tap*C_in + channel``).  Patches are *views* of the
  channel-last activity ``[B, P, C]``, so no unfold temporary is built.
* ``lcn`` -- locally connected: the same patches, untied weights ``W^l: [P_l, H, s*C_in]``.
* ``fcn`` -- dense: one "patch" = the whole flattened input ``[B, 1, d*v]``, then ``[B, 1, H]``.

Weights and readout are standard normal; the optional bias is position dependent like
the reference CNN.  ``fan_in = C_in * s`` (``d*v`` or ``H`` for dense layers).  Activity
is exposed in the ``[B, H, P_l]`` layout of :class:`spiking_rhm.rules.LearningContext`.

The rate eligibility of layer ``l`` is ``e = rho'(a^l) x patch^l / sqrt(fan_in)``, so a
learning signal ``L^l`` (on ``h^l``) gives the explicit update :func:`explicit_update`.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from spiking_rhm.errors import ConfigError
from spiking_rhm.registry import lookup
from spiking_rhm.rules.branch import branch_pre_activations as from_taps, taps_of

Tensor = torch.Tensor
BIAS_SCALE = 0.1  # a += 0.1 b, as in the reference NonOverlappingConv1d


class NetSpec(NamedTuple):
    """Shape of a network: architecture, input ``[v, d]``, patch size ``s``, depth, width, classes."""

    arch: str
    v: int
    d: int
    s: int
    depth: int
    width: int
    n_out: int
    bias: bool = False

    def positions(self) -> list[int]:
        """``P_l`` for l = 1..depth."""
        return architecture(self.arch).positions(self)

    def fan_ins(self) -> list[int]:
        return architecture(self.arch).fan_ins(self)

    def taps(self) -> int:
        """Input taps per unit: s for the hierarchical networks, 1 for dense layers (one patch)."""
        return architecture(self.arch).taps(self)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(H_l, P_l)`` of every hidden layer (what rules get in ``init_state``)."""
        return [(self.width, p) for p in self.positions()]


class NetParams(NamedTuple):
    """Trainable tensors: per-layer weights and biases (``None`` without bias), readout ``beta [H, n_out]``."""

    spec: NetSpec
    weights: tuple[Tensor, ...]
    biases: tuple[Tensor | None, ...]
    readout: Tensor


class Activity(NamedTuple):
    """Per-layer quantities of one forward pass.

    ``inputs[l-1]``: the layer input, channel-last ``[B, P_{l-1}, C]`` (a detached leaf
    when the forward pass cut the graph at layer boundaries); ``patches[l-1]``:
    ``[B, P_l, fan_in]`` (view of the input); ``pre``/``post``: ``a^l``/``h^l`` as ``[B, H, P_l]``;
    ``readout_input``: what the readout saw, ``[B, P_L, H]``.
    """

    inputs: list[Tensor]
    patches: list[Tensor]
    pre: list[Tensor]
    post: list[Tensor]
    readout_input: Tensor


# --------------------------------------------------------------------------- architectures
class Architecture:
    """How patches are formed and weights applied; one small class per architecture."""

    name: ClassVar[str] = ""

    def positions(self, spec: NetSpec) -> list[int]:
        return [spec.d // spec.s**l for l in range(1, spec.depth + 1)]

    def fan_ins(self, spec: NetSpec) -> list[int]:
        return [spec.s * (spec.v if l == 1 else spec.width) for l in range(1, spec.depth + 1)]

    def taps(self, spec: NetSpec) -> int:
        return spec.s

    def check(self, spec: NetSpec) -> None:
        if spec.d != spec.s**spec.depth:
            raise ConfigError(f"{self.name}: depth {spec.depth} with filter = stride = s = {spec.s} needs "
                              f"d = s**depth = {spec.s**spec.depth} input positions, got d = {spec.d}")

    def weight_shape(self, spec: NetSpec, l: int) -> tuple[int, ...]:
        return (spec.width, self.fan_ins(spec)[l - 1])

    def patches(self, x: Tensor, spec: NetSpec, l: int) -> Tensor:
        """``[B, P_{l-1}, C]`` -> ``[B, P_l, s*C]`` (a view when ``x`` is contiguous)."""
        B, P, C = x.shape
        return x.reshape(B, P // spec.s, spec.s * C)

    def apply(self, W: Tensor, patches: Tensor) -> Tensor:
        """``sum_k W_jk patch_pk`` -> ``[B, P_l, H]`` (no scaling)."""
        return patches @ W.t()

    def weight_update(self, g: Tensor, patches: Tensor) -> Tensor:
        """``sum_{b,p} g_{bpj} patch_{bpk}`` in the weight layout (``g``: ``[B, P_l, H]``)."""
        return torch.einsum("bph,bpk->hk", g, patches)


class CNN(Architecture):
    name = "cnn"


class LCN(Architecture):
    name = "lcn"

    def weight_shape(self, spec, l):
        return (self.positions(spec)[l - 1], spec.width, self.fan_ins(spec)[l - 1])

    def apply(self, W, patches):
        # [P, B, k] x [P, k, H] -> [P, B, H]
        return torch.bmm(patches.transpose(0, 1), W.transpose(1, 2)).transpose(0, 1)

    def weight_update(self, g, patches):
        return torch.einsum("bph,bpk->phk", g, patches)


class FCN(Architecture):
    name = "fcn"

    def positions(self, spec):
        return [1] * spec.depth

    def fan_ins(self, spec):
        return [spec.v * spec.d if l == 1 else spec.width for l in range(1, spec.depth + 1)]

    def taps(self, spec):
        return 1

    def check(self, spec):
        pass

    def patches(self, x, spec, l):
        return x.reshape(x.shape[0], 1, -1)


ARCHITECTURES: dict[str, Architecture] = {cls.name: cls() for cls in (CNN, LCN, FCN)}


def architecture(name: str) -> Architecture:
    return lookup(ARCHITECTURES, name, "architecture")


# --------------------------------------------------------------------------- parameters
def make_spec(arch: str, v: int, d: int, s: int, depth: int, width: int, n_out: int, bias: bool = False) -> NetSpec:
    spec = NetSpec(arch, int(v), int(d), int(s), int(depth), int(width), int(n_out), bool(bias))
    if min(spec.v, spec.d, spec.s, spec.depth, spec.width, spec.n_out) < 1:
        raise ConfigError(f"network sizes must be positive, got {spec}")
    architecture(arch).check(spec)
    return spec


def init_params(spec: NetSpec, generator: torch.Generator, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> NetParams:
    """Standard-normal weights, biases and readout (drawn on CPU from ``generator``, then moved)."""
    arch = architecture(spec.arch)
    weights, biases = [], []
    for l, P in enumerate(spec.positions(), 1):
        weights.append(torch.randn(arch.weight_shape(spec, l), generator=generator, dtype=dtype).to(device))
        biases.append(torch.randn(P, spec.width, generator=generator, dtype=dtype).to(device) if spec.bias else None)
    readout = torch.randn(spec.width, spec.n_out, generator=generator, dtype=dtype).to(device)
    return NetParams(spec, tuple(weights), tuple(biases), readout)


def trainable(params: NetParams) -> list[Tensor]:
    """All tensors of ``params`` (hidden weights, biases, readout)."""
    return [*params.weights, *(b for b in params.biases if b is not None), params.readout]


# --------------------------------------------------------------------------- forward
def layer_forward(params: NetParams, x: Tensor, l: int) -> tuple[Tensor, Tensor]:
    """Layer ``l`` on channel-last input ``[B, P_{l-1}, C]`` -> (patches, a^l ``[B, P_l, H]``)."""
    spec = params.spec
    arch = architecture(spec.arch)
    patches = arch.patches(x, spec, l)
    a = arch.apply(params.weights[l - 1], patches) * (1.0 / math.sqrt(patches.shape[-1]))
    b = params.biases[l - 1]
    if b is not None:
        a = a + BIAS_SCALE * b
    return patches, a


def readout(params: NetParams, top: Tensor) -> Tensor:
    """Mean-field readout ``y = mean_p(h^L) . beta / H`` of channel-last ``[B, P_L, H]``."""
    return top.mean(1) @ params.readout * (1.0 / params.readout.shape[0])


def forward(params: NetParams, x: Tensor, cut: bool = False) -> tuple[Tensor, Activity]:
    """``x [B, v, d]`` -> (logits ``[B, n_out]``, :class:`Activity`).

    ``cut=True`` detaches the input of every layer and of the readout and makes it a
    leaf that requires grad: the graph then holds one piece per layer, so a local loss on
    ``h^l`` reaches only ``W^l``, and backprop can be run piece by piece (:func:`bp_signals`).
    """
    h = x.transpose(1, 2)  # channel-last [B, d, v]
    if h.shape[1:] != (params.spec.d, params.spec.v):
        raise ConfigError(f"input of shape {tuple(x.shape)} does not match [B, v={params.spec.v}, d={params.spec.d}]")
    inputs, patches, pre, post = [], [], [], []
    for l in range(1, params.spec.depth + 1):
        if cut and l > 1:
            h = h.detach().requires_grad_(True)
        inputs.append(h)
        p, a = layer_forward(params, h, l)
        h = torch.relu(a)
        patches.append(p)
        pre.append(a)
        post.append(h)
    top = h.detach().requires_grad_(True) if cut else h
    out = readout(params, top)
    return out, Activity(inputs, patches, [a.transpose(1, 2) for a in pre], [z.transpose(1, 2) for z in post], top)


# --------------------------------------------------------------------------- the rate eligibility
def relu_derivative(a: Tensor) -> Tensor:
    """``psi = rho'(a)`` for rho = ReLU (0 at a = 0, like torch's autograd)."""
    return (a > 0).to(a.dtype)


def explicit_update(signal: Tensor, activity: Activity, layer: int, params: NetParams) -> Tensor:
    r"""``dW^l = -sum_{b,p} (L^l rho'(a^l))_{bpj} patch^l_{bpk} / sqrt(fan_in)`` in the layout of ``W^l``.

    ``signal``: ``L^l = d ell / d h^l``, ``[B, H, P_l]``.  For the CNN the sum runs over
    positions (weight sharing); for the LCN each position keeps its own update.
    """
    from spiking_rhm.plasticity import RateEligibility, combine

    patches = activity.patches[layer - 1].detach()
    e = RateEligibility(relu_derivative(activity.pre[layer - 1].detach()).transpose(1, 2), patches)
    return -combine([signal], [e], [patches.shape[-1]], shared=params.spec.arch != "lcn")[0]


def explicit_bias_update(signal: Tensor, activity: Activity, layer: int) -> Tensor:
    """``db^l = -0.1 sum_b (L^l rho'(a^l))`` as ``[P_l, H]``."""
    g = signal * relu_derivative(activity.pre[layer - 1].detach())
    return -BIAS_SCALE * g.sum(0).t()


def bp_signals(loss: Tensor, activity: Activity) -> list[Tensor]:
    """``dLoss/dh^l`` (``[B, H, P_l]``) for every layer, by backprop piece by piece through a cut graph."""
    depth = len(activity.post)
    (g,) = torch.autograd.grad(loss, activity.readout_input, retain_graph=True)
    out = [g]
    for l in range(depth, 1, -1):
        (g,) = torch.autograd.grad(activity.post[l - 1].transpose(1, 2), activity.inputs[l - 1], g, retain_graph=True)
        out.append(g)
    return [s.transpose(1, 2) for s in reversed(out)]


def layer_vjp(activity: Activity, layer: int, grad_pre: Tensor) -> Tensor:
    """``dLoss/dh^{l-1}`` from ``dLoss/da^l`` (both ``[B, H, P]``) through the true forward weights."""
    if layer < 2:
        raise ConfigError("layer_vjp needs a hidden layer below (layer >= 2)")
    (g,) = torch.autograd.grad(activity.pre[layer - 1], activity.inputs[layer - 1], grad_pre, retain_graph=True)
    return g.transpose(1, 2)


def feedback_vjp(params: NetParams, activity: Activity, layer: int, grad_pre: Tensor, B: Tensor) -> Tensor:
    r"""``g^{l-1}_{b,p',c} = sum_{p,j} B_{j,k(p',c)} grad_pre_{b,j,p} / sqrt(fan_in)``: the transpose of layer
    ``l``'s map with feedback weights ``B`` (in the layout of ``W^l``) in place of ``W^l``.

    The layer's structure is kept: a lower position receives only from the upper positions whose patch
    holds it (its ancestors in the tree), shared (cnn) or untied (lcn) as the forward weights.  With
    ``B = W^l`` this is :func:`layer_vjp`.  ``grad_pre``: ``[B, H, P_l]``; returns ``[B, C, P_{l-1}]``.
    """
    if layer < 2:
        raise ConfigError("feedback_vjp needs a hidden layer below (layer >= 2)")
    spec = params.spec
    arch = architecture(spec.arch)
    x = torch.zeros_like(activity.inputs[layer - 1]).requires_grad_(True)  # the map is linear: any point
    with torch.enable_grad():
        patches = arch.patches(x, spec, layer)
        a = arch.apply(B, patches) * (1.0 / math.sqrt(patches.shape[-1]))
        (g,) = torch.autograd.grad(a, x, grad_pre.transpose(1, 2))
    return g.transpose(1, 2)


# --------------------------------------------------------------------------- tap branches
def branch_inputs(activity: Activity, spec: NetSpec) -> list[Tensor]:
    """Per layer the input of every tap, ``x^l [B, C, s, P_l]`` (detached), for branch-local rules."""
    if spec.taps() < 2:
        raise ConfigError(f"branch-local rules need input taps: arch = cnn or lcn with s >= 2, got arch = "
                          f"{spec.arch!r}, s = {spec.s}")
    return [taps_of(x.detach().transpose(1, 2), spec.s) for x in activity.inputs]


def branch_pre_activations(params: NetParams, activity: Activity) -> list[Tensor]:
    r"""``z^l_jkp = sum_i W^l_{j,(k,i)} x^l_{ikp} / sqrt(fan_in)`` as ``[B, H, s, P_l]``.

    ``sum_k z^l = a^l`` minus the bias; the layer input is detached, so a loss on ``z^l`` reaches
    only ``W^l`` (the branch-local rules' autograd path).
    """
    spec = params.spec
    return [from_taps(x, W, spec.arch != "lcn") for W, x in zip(params.weights, branch_inputs(activity, spec))]


# --------------------------------------------------------------------------- thin modules
class RateNetwork(nn.Module):
    """``nn.Module`` wrapper around :func:`forward` (parameters registered for optimisers)."""

    def __init__(self, spec: NetSpec, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.spec = spec
        p = init_params(spec, generator or torch.Generator().manual_seed(0), dtype, device)
        self.weights = nn.ParameterList([nn.Parameter(w) for w in p.weights])
        self.biases = nn.ParameterList([nn.Parameter(b) for b in p.biases if b is not None])
        self.readout = nn.Parameter(p.readout)

    def params(self) -> NetParams:
        biases = iter(self.biases)
        return NetParams(self.spec, tuple(self.weights), tuple(next(biases) if self.spec.bias else None
                                                               for _ in self.weights), self.readout)

    def forward(self, x: Tensor, cut: bool = False) -> tuple[Tensor, Activity]:
        return forward(self.params(), x, cut)


def HierarchicalCNN(v, d, s, depth, width, n_out, bias=False, **kw) -> RateNetwork:
    return RateNetwork(make_spec("cnn", v, d, s, depth, width, n_out, bias), **kw)


def LocallyConnectedNetwork(v, d, s, depth, width, n_out, bias=False, **kw) -> RateNetwork:
    return RateNetwork(make_spec("lcn", v, d, s, depth, width, n_out, bias), **kw)


def DenseNetwork(v, d, depth, width, n_out, bias=False, **kw) -> RateNetwork:
    return RateNetwork(make_spec("fcn", v, d, 1, depth, width, n_out, bias), **kw)


def spec_from_config(cfg) -> NetSpec:
    """The :class:`NetSpec` of a :class:`~spiking_rhm.config.RunConfig`."""
    r = cfg.rhm
    depth = cfg.net.depth if cfg.net.depth is not None else r.L
    return make_spec(cfg.net.arch, r.v, r.s**r.L, r.s, depth, cfg.net.width, r.n_c, cfg.net.bias)


__all__ = ["ARCHITECTURES", "Activity", "DenseNetwork", "HierarchicalCNN", "LocallyConnectedNetwork", "NetParams",
           "NetSpec", "RateNetwork", "bp_signals", "branch_inputs", "branch_pre_activations", "explicit_bias_update",
           "explicit_update", "feedback_vjp", "forward", "init_params", "layer_forward", "layer_vjp", "make_spec", "readout",
           "relu_derivative", "spec_from_config", "trainable"]
