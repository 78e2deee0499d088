r"""Rate networks of the RHM literature as pure functions of explicit parameters.

Three architectures share one layer equation (``l = 1..depth``, ``h^0 = x``); their shapes, patch
layout, weight layouts and initialisation are :mod:`spiking_rhm.network`'s, which the spiking back
ends read too::

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
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spiking_rhm.errors import ConfigError
from spiking_rhm.network import (
    ARCHITECTURES,
    NetworkSpec,
    architecture,
    branch_pre_activations as from_taps,
    init_weights,
    make_spec as _make_spec,
    patches as layer_patches,
    spec_from_config as _spec_from_config,
    taps_of,
)

Tensor = torch.Tensor
BIAS_SCALE = 0.1  # a += 0.1 b, as in the reference NonOverlappingConv1d

NetSpec = NetworkSpec
"""The rate network's name of :class:`spiking_rhm.network.NetworkSpec` (hidden positions ``positions[1:]``)."""


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


# --------------------------------------------------------------------------- parameters
def make_spec(arch: str, v: int, d: int, s: int, depth: int, width: int, n_out: int, bias: bool = False) -> NetSpec:
    """:func:`spiking_rhm.network.make_spec` with ``v`` input channels."""
    return _make_spec(arch, v, d, s, depth, width, n_out, bias)


def init_params(spec: NetSpec, generator: torch.Generator, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> NetParams:
    """The weights, biases and readout of :func:`spiking_rhm.network.init_weights`."""
    w = init_weights(spec, generator, dtype, device)
    return NetParams(spec, w.hidden, w.biases, w.readout)


def trainable(params: NetParams) -> list[Tensor]:
    """All tensors of ``params`` (hidden weights, biases, readout)."""
    return [*params.weights, *(b for b in params.biases if b is not None), params.readout]


# --------------------------------------------------------------------------- forward
def layer_forward(params: NetParams, x: Tensor, l: int) -> tuple[Tensor, Tensor]:
    """Layer ``l`` on channel-last input ``[B, P_{l-1}, C]`` -> (patches, a^l ``[B, P_l, H]``)."""
    spec = params.spec
    patches = layer_patches(x, spec.patch)
    a = spec.connectivity.apply(patches, params.weights[l - 1]).mul_(1.0 / math.sqrt(patches.shape[-1]))
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


# --------------------------------------------------------------------------- R networks at once (bp)
class Workspace:
    """Output buffers of :func:`batched_forward` / :func:`batched_gradients`, kept and reused across calls.

    A training loop calls them with the same shapes every step; a fresh tensor per product would be freed
    and allocated again each step, and the allocator hands such blocks (hundreds of kB) back to the
    operating system, so every step pays page faults on cold memory.  With a workspace every output is
    written in place (``out=``) into the buffer kept for its (name, shape): the same operations and floats.
    The returned tensors are these buffers, overwritten by the next call with the same workspace.
    """

    def __init__(self):
        self.buffers: dict[tuple, Tensor] = {}

    def take(self, name: str, shape: Sequence[int], like: Tensor) -> Tensor:
        """The buffer of ``name`` and ``shape`` (dtype and device of ``like``), allocated at its first use."""
        key = (name, *shape)
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = like.new_empty(tuple(shape))
        return buf

    def swap(self, taken: Sequence[Tensor], given: Sequence[Tensor]) -> None:
        """The caller keeps the buffers ``taken`` (e.g. as momentum buffers) and gives ``given`` (same shapes)
        in their place; tensors of ``taken`` that are not this workspace's are ignored."""
        where = {id(buf): key for key, buf in self.buffers.items()}
        for t, g in zip(taken, given):
            key = where.get(id(t))
            if key is not None and g.shape == t.shape and g.is_contiguous():
                self.buffers[key] = g


def _take(work: Workspace | None, name: str, shape: Sequence[int], like: Tensor) -> Tensor | None:
    """``work``'s buffer (None without a workspace: the operation allocates its output)."""
    return None if work is None else work.take(name, shape, like)


def _bmm(a: Tensor, b: Tensor, alpha: float, out: Tensor | None = None) -> Tensor:
    """``alpha a b`` as one batched matmul (``alpha`` applied inside the product, no pass of its own)."""
    return torch.baddbmm(a.new_empty(()), a, b, beta=0.0, alpha=alpha, out=out)


def _apply(shared: bool, pat: Tensor, W: Tensor, scale: float, out: Tensor | None = None) -> Tensor:
    """``a [R, B, P, H] = scale patch W^T``: ``pat [R, B, P, K]``, ``W [R, H, K]`` (shared) or ``[R, P, H, K]``;
    ``out``: a ``[R, B P, H]`` buffer (shared weights)."""
    R, B, P, K = pat.shape
    if shared:
        return _bmm(pat.reshape(R, B * P, K), W.transpose(1, 2), scale, out).reshape(R, B, P, -1)
    return torch.einsum("rnpk,rphk->rnph", pat, W).mul_(scale)


def _apply_grad_weight(shared: bool, da: Tensor, pat: Tensor, scale: float, out: Tensor | None = None) -> Tensor:
    """``scale sum_{b,p} da pat`` in the layout of ``W`` (``da [R, B, P, H]``)."""
    R, B, P, K = pat.shape
    if shared:
        return _bmm(da.reshape(R, B * P, -1).transpose(1, 2), pat.reshape(R, B * P, K), scale, out)
    return torch.einsum("rnph,rnpk->rphk", da, pat).mul_(scale)


def _apply_grad_input(shared: bool, da: Tensor, W: Tensor, scale: float, out: Tensor | None = None) -> Tensor:
    """``scale da W``: the gradient on the patches, ``[R, B, P, K]``; ``out``: a ``[R, B P, K]`` buffer."""
    R, B, P, H = da.shape
    if shared:
        return _bmm(da.reshape(R, B * P, H), W, scale, out).reshape(R, B, P, -1)
    return torch.einsum("rnph,rphk->rnpk", da, W).mul_(scale)


def batched_forward(spec: NetSpec, trainables: Sequence[Tensor], x: Tensor, work: Workspace | None = None
                    ) -> tuple[Tensor, list]:
    r"""``x [R, B, v, d]`` -> (logits ``[R, B, n_out]``, per layer ``(patches, h^l)``): :func:`forward` of ``R``
    networks at once (``trainables`` = :func:`trainable` of each, stacked on a leading axis; readout = beta),
    each layer's ``a^l = patch^l W^l / sqrt(K)`` one batched matmul (``[R, B P_l, K] x [R, K, H]`` for
    shared weights) with the ``1/sqrt(K)`` inside the product; no autograd.  ``work``: write the outputs (and
    the channel-last copy of ``x``) into its buffers (:class:`Workspace`)."""
    return _batched_forward(spec, trainables, x, work)[:2]


def _position_mean(h: Tensor) -> Tensor:
    """``mean_p h`` of ``[R, B, P, H]`` (a view when ``P = 1``, as every RHM network's top layer: the same floats)."""
    return h[:, :, 0] if h.shape[2] == 1 else h.mean(2)


def _batched_forward(spec: NetSpec, trainables: Sequence[Tensor], x: Tensor, work: Workspace | None
                     ) -> tuple[Tensor, list, Tensor]:
    """:func:`batched_forward` and the readout's input ``mean_p h^L`` ``[R, B, H]``."""
    n_w = spec.depth
    weights, biases, beta = trainables[:n_w], iter(trainables[n_w:-1]), trainables[-1]
    R, B = x.shape[:2]
    h = x.transpose(-1, -2)  # channel-last [R, B, d, v]
    if work is not None and not h.is_contiguous():  # the copy the first patches would make, into a kept buffer
        h = work.take("x", h.shape, x).copy_(h)
    tape = []
    shared = spec.connectivity.shared
    for l, W in enumerate(weights):
        pat = layer_patches(h.reshape(R * B, *h.shape[2:]), spec.patch)  # [R B, P_l, K]
        P_l, K = pat.shape[1:]
        pat = pat.reshape(R, B, P_l, K)
        a = _apply(shared, pat, W, 1.0 / math.sqrt(K), _take(work, f"a{l}", (R, B * P_l, W.shape[-2]), x)
                   if shared else None)
        if spec.bias:
            a.add_(BIAS_SCALE * next(biases)[:, None])
        h = torch.relu_(a)  # a^l is not kept: rho'(a) = [h > 0]
        tape.append((pat, h))
    feats = _position_mean(h)
    return _bmm(feats, beta, 1.0 / beta.shape[1]), tape, feats


def batched_gradients(spec: NetSpec, trainables: Sequence[Tensor], x: Tensor, y: Tensor,
                      work: Workspace | None = None) -> tuple[list[Tensor], Tensor, Tensor]:
    r"""Every network's ``dLoss_r/dtheta_r`` (``Loss_r`` its batch's mean cross-entropy), ``[R]`` losses and
    wrong counts, for :func:`batched_forward`: backprop written out (what autograd of :func:`forward`
    computes; ``rho'(a) = [h > 0]`` as torch's ReLU), every scale inside a matmul::

        dz = (softmax(z) - y*) / B;   grad beta = mean_p(h^L)^T dz / H;   dh^L_p = dz beta^T / (H P_L)
        da^l = dh^l [h^l > 0];  grad W^l = da^T patch^l / sqrt(K);  grad b^l = 0.1 sum_b da;
        d patch^l = da W^l / sqrt(K)  (reshaped: dh^{l-1})

    ``work``: write the activities, their gradients and the weight gradients into its buffers
    (:class:`Workspace`; the returned gradients are overwritten by the next call with it)."""
    n_w = spec.depth
    weights, beta = trainables[:n_w], trainables[-1]
    shared = spec.connectivity.shared
    with torch.no_grad():
        out, tape, feats = _batched_forward(spec, trainables, x, work)
        R, B, n_out = out.shape
        loss = F.cross_entropy(out.reshape(R * B, n_out), y.reshape(R * B), reduction="none").reshape(R, B).mean(1)
        dz = torch.softmax(out, -1)  # - y*, without one_hot's range check (two syncs):
        dz.scatter_add_(-1, y[..., None], dz.new_full((1, 1, 1), -1.0).expand(R, B, 1)).div_(B)
        H = beta.shape[1]
        top = tape[-1][1]
        grad_beta = _bmm(feats.transpose(1, 2), dz, 1.0 / H)
        dh = _bmm(dz, beta.transpose(1, 2), 1.0 / (H * top.shape[2]))[:, :, None, :]  # [R, B, 1, H]
        grads_w, grads_b = [None] * n_w, []
        for l in range(n_w - 1, -1, -1):
            pat, h = tape[l]
            # dh [h > 0], as ReLU's backward; below the top layer in place (dh is this function's own tensor)
            da = dh if l < n_w - 1 and dh.shape == h.shape else _take(work, f"da{l}", h.shape, h)
            into = {} if da is None else {"grad_input": da}
            da = torch.ops.aten.threshold_backward(dh.expand_as(h), h, 0.0, **into)
            scale = 1.0 / math.sqrt(pat.shape[-1])
            grads_w[l] = _apply_grad_weight(shared, da, pat, scale,
                                            _take(work, f"gw{l}", weights[l].shape, h) if shared else None)
            if spec.bias:
                grads_b.append(BIAS_SCALE * da.sum(1))
            if l > 0:
                prev = tape[l - 1][1]
                Rb, Bb, P_l, K = pat.shape
                dh = _apply_grad_input(shared, da, weights[l], scale, _take(work, f"dp{l}", (Rb, Bb * P_l, K), h)
                                       if shared else None).reshape(prev.shape)
    return [*grads_w, *grads_b[::-1], grad_beta], loss, (out.argmax(-1) != y).sum(1)


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
    return -combine([signal], [e], [patches.shape[-1]], shared=params.spec.connectivity.shared)[0]


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
    x = torch.zeros_like(activity.inputs[layer - 1]).requires_grad_(True)  # the map is linear: any point
    with torch.enable_grad():
        patches = layer_patches(x, spec.patch)
        a = spec.connectivity.apply(patches, B) * (1.0 / math.sqrt(patches.shape[-1]))
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
    return [from_taps(x, W, spec.connectivity.shared) for W, x in zip(params.weights, branch_inputs(activity, spec))]


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
    """The :class:`NetSpec` of a :class:`~spiking_rhm.config.RunConfig` (:func:`spiking_rhm.network.spec_from_config`)."""
    return _spec_from_config(cfg)


__all__ = ["ARCHITECTURES", "Activity", "DenseNetwork", "HierarchicalCNN", "LocallyConnectedNetwork", "NetParams",
           "Workspace", "batched_forward", "batched_gradients",
           "NetSpec", "RateNetwork", "bp_signals", "branch_inputs", "branch_pre_activations", "explicit_bias_update",
           "explicit_update", "feedback_vjp", "forward", "init_params", "layer_forward", "layer_vjp", "make_spec", "readout",
           "relu_derivative", "spec_from_config", "trainable"]
