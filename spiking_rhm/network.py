r"""The network every back end simulates: shapes, patch and tap layout, weight layouts, initialisation.

One simulator-neutral description, :class:`NetworkSpec`, read by the rate network (``rate_models``), the
Norse back end and everything built on it (Brian2 mirror, NIR export, Lava).  Layer ``l = 1..L`` of an
``arch`` network (:data:`ARCHITECTURES`) sees *patches* of its channel-last input ``[B, P_{l-1}, C_{l-1}]``::

    patch^l_p = (x_{s p}, ..., x_{s p + s - 1})  flattened tap-major,  k = tap * C_{l-1} + channel
    a^l_{p,j} = sum_k W^l_{j,k} patch^l_{p,k} / sqrt(K_l)          (K_l = s C_{l-1}: the fan-in)

* ``cnn``: filter = stride = s, one weight matrix ``[H, K]`` for every position (:class:`Shared`);
* ``lcn``: the same patches, untied weights ``[P_l, H, K]`` (:class:`Local`);
* ``fcn``: one patch of everything (``P_l = 1``, ``K_1 = C_0 d``), shared weights.

Positions ``P_0..P_L`` (``P_0 = d``, the input), widths ``H_1..H_L``, fan-ins ``K_1..K_L``.  The rate
network computes ``a^l`` as written; the spiking back ends inject ``gain_l * W^l . patch`` with
``gain_l = g / (ss rho_{l-1} sqrt(K_l))`` (``backends.norse.neurons``), the same weights at another scale.

Initialisation (:func:`init_weights`): standard-normal ``W^l`` (the ``1/sqrt(K_l)`` is in the layer
equation, not in the weights), then -- with ``bias`` -- a standard-normal bias ``[P_l, H]`` after each
layer's weights, and a standard-normal readout ``beta [H_L, n_out]`` (read as ``mean_p(h^L) . beta / H``).
A rate and a spiking run with the same seed therefore start from the same tensors.

The module imports torch only inside the functions that compute (the config validates architectures
without it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from spiking_rhm.errors import ConfigError
from spiking_rhm.registry import lookup

if TYPE_CHECKING:
    import torch

    Tensor = torch.Tensor


# --------------------------------------------------------------------------- weight layouts
class Connectivity:
    """How a layer's weights act on its patches ``[N, P, K]`` -> ``[N, P, H]`` (no ``1/sqrt(K)``)."""

    name: ClassVar[str] = ""
    shared: ClassVar[bool] = True

    @staticmethod
    def weight_shape(P: int, H: int, K: int) -> tuple[int, ...]:
        raise NotImplementedError

    @staticmethod
    def apply(pat: Tensor, W: Tensor) -> Tensor:
        raise NotImplementedError


class Shared(Connectivity):
    """One weight matrix ``[H, K]`` for every position (CNN filter; dense layer when P = 1)."""

    name = "shared"
    shared = True

    @staticmethod
    def weight_shape(P, H, K):
        return (H, K)

    @staticmethod
    def apply(pat, W):
        return pat @ W.T


class Local(Connectivity):
    """Untied weights ``[P, H, K]``, one matrix per position (LCN)."""

    name = "local"
    shared = False

    @staticmethod
    def weight_shape(P, H, K):
        return (P, H, K)

    @staticmethod
    def apply(pat, W):
        import torch

        return torch.einsum("npk,phk->nph", pat, W)


def patches(x: Tensor, size: int | None) -> Tensor:
    """Channel-last ``[N, P_in, C] -> [N, P_in / size, size * C]`` (tap-major; a view when ``x`` is
    contiguous); ``size=None``: one patch of everything."""
    N, P, C = x.shape
    if size is None:
        return x.reshape(N, 1, P * C)
    if P % size:
        raise ConfigError(f"{P} positions are not divisible by the filter size {size}")
    return x.reshape(N, P // size, size * C)


# --------------------------------------------------------------------------- tap branches
def taps_of(layer_input: Tensor, s: int) -> Tensor:
    """Layer input ``[B, C, P_in]`` -> tap inputs ``[B, C, s, P_in / s]`` (tap k of patch p = position s p + k)."""
    B, C, P_in = layer_input.shape
    return layer_input.reshape(B, C, P_in // s, s).transpose(2, 3)


def branch_pre_activations(tap_inputs: Tensor, W: Tensor, shared: bool) -> Tensor:
    """``z_jkp = sum_i W_{j,(k,i)} x_{ikp} / sqrt(K)``: ``x [B, C, s, P]``, ``W [H, s*C]`` (shared) or
    ``[P, H, s*C]`` -> ``[B, H, s, P]``; ``sum_k z = a`` (the tap-major weight layout above)."""
    import torch

    B, C, s, P = tap_inputs.shape
    Wt = W.reshape(*W.shape[:-1], s, C)
    z = torch.einsum("bckp,hkc->bhkp" if shared else "bckp,phkc->bhkp", tap_inputs, Wt)
    return z / math.sqrt(s * C)


# --------------------------------------------------------------------------- architectures
class Architecture:
    """Patch size and weight tying of a network (registry :data:`ARCHITECTURES`)."""

    name: ClassVar[str] = ""
    connectivity: ClassVar[type[Connectivity]] = Shared
    hierarchical: ClassVar[bool] = True  # filter = stride = s; otherwise one dense patch


class CNN(Architecture):
    name = "cnn"
    connectivity = Shared


class LCN(Architecture):
    name = "lcn"
    connectivity = Local


class FCN(Architecture):
    name = "fcn"
    connectivity = Shared
    hierarchical = False


ARCHITECTURES: dict[str, type[Architecture]] = {c.name: c for c in (CNN, LCN, FCN)}
"""Architectures by name (``net.arch``)."""


def architecture(name: str) -> type[Architecture]:
    return lookup(ARCHITECTURES, name, "architecture", ConfigError)


# --------------------------------------------------------------------------- the spec
class NetworkSpec(NamedTuple):
    """Static description of a network (:func:`make_spec` validates it); shapes are derived from the fields.

    ``in_channels``: channels of the input (the RHM's ``v`` one-hot symbols, or a spike code's channels),
    ``d``: input positions, ``s``: patch size (filter = stride), ``width``: units ``H`` of every hidden layer.
    """

    arch: str
    in_channels: int
    d: int
    s: int
    depth: int
    width: int
    n_out: int
    bias: bool = False

    @property
    def v(self) -> int:
        """``in_channels`` (the rate network's name: the one-hot input has ``v`` channels)."""
        return self.in_channels

    @property
    def architecture(self) -> type[Architecture]:
        return architecture(self.arch)

    @property
    def connectivity(self) -> type[Connectivity]:
        return self.architecture.connectivity

    @property
    def patch(self) -> int | None:
        """Patch size of every layer: ``s``, or ``None`` for one dense patch (fcn)."""
        return self.s if self.architecture.hierarchical else None

    @property
    def widths(self) -> tuple[int, ...]:
        """``H_1..H_L``."""
        return (self.width,) * self.depth

    @property
    def positions(self) -> tuple[int, ...]:
        """``P_0..P_L`` (``P_0 = d``; ``P_l = P_{l-1} / s``, or 1 for dense layers)."""
        out = [self.d]
        for _ in range(self.depth):
            out.append(out[-1] // self.s if self.patch else 1)
        return tuple(out)

    @property
    def channels(self) -> tuple[int, ...]:
        """``C_0..C_L``: each layer's input channels (``C_0 = in_channels``), then the top width."""
        return (self.in_channels, *self.widths)

    @property
    def fan_in(self) -> tuple[int, ...]:
        """``K_1..K_L``: ``s C_{l-1}`` (``C_0 P_0``, then ``H`` for dense layers)."""
        return tuple(C * (self.patch or P) for C, P in zip(self.channels[:-1], self.positions[:-1]))

    def fan_ins(self) -> list[int]:
        """:attr:`fan_in` as a list."""
        return list(self.fan_in)

    def taps(self) -> int:
        """Input taps per unit: ``s`` for the hierarchical networks, 1 for dense layers (one patch)."""
        return self.patch or 1

    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(H_l, P_l)`` of every hidden layer (the rules' ``init_state`` argument)."""
        return list(zip(self.widths, self.positions[1:]))

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Shape of ``W^1..W^L``: ``[H, K]`` shared, ``[P_l, H, K]`` untied."""
        return [self.connectivity.weight_shape(P, H, K) for P, H, K in zip(self.positions[1:], self.widths,
                                                                               self.fan_in)]


def make_spec(arch: str, in_channels: int, d: int, s: int, depth: int, width: int, n_out: int,
              bias: bool = False) -> NetworkSpec:
    """A validated :class:`NetworkSpec` (sizes positive; ``d`` divisible by ``s**depth`` unless dense)."""
    spec = NetworkSpec(str(arch), int(in_channels), int(d), int(s), int(depth), int(width), int(n_out), bool(bias))
    a = architecture(spec.arch)
    if min(spec.in_channels, spec.d, spec.s, spec.depth, spec.width, spec.n_out) < 1:
        raise ConfigError(f"network sizes must be positive, got {spec}")
    if a.hierarchical and spec.d % spec.s**spec.depth:
        raise ConfigError(f"{arch}: depth {spec.depth} with filter = stride = s = {spec.s} needs d divisible by "
                          f"s**depth = {spec.s**spec.depth} input positions, got d = {spec.d}")
    return spec


def spec_from_config(cfg, in_channels: int | None = None) -> NetworkSpec:
    """The :class:`NetworkSpec` of a :class:`~spiking_rhm.config.RunConfig`: ``d = s**L`` positions, depth
    ``net.depth`` (default ``L``), ``n_c`` outputs; ``in_channels`` defaults to the RHM's ``v``
    (a spike code may give more channels)."""
    r = cfg.rhm
    depth = cfg.net.depth if cfg.net.depth is not None else r.L
    return make_spec(cfg.net.arch, r.v if in_channels is None else in_channels, r.s**r.L, r.s, depth,
                     cfg.net.width, r.n_c, cfg.net.bias)


# --------------------------------------------------------------------------- initialisation
class InitialWeights(NamedTuple):
    """Hidden weights ``W^l`` (:meth:`NetworkSpec.weight_shapes`), biases ``[P_l, H]`` (``None`` without
    bias) and readout ``beta [H_L, n_out]``."""

    hidden: tuple[Tensor, ...]
    biases: tuple[Tensor | None, ...]
    readout: Tensor


def init_weights(spec: NetworkSpec, generator, dtype=None, device="cpu") -> InitialWeights:
    """Standard-normal weights (and biases), then readout, drawn on CPU from ``generator`` in the order of
    the module docstring, then moved to ``device``; ``dtype`` defaults to float32."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=dtype).to(device)  # noqa: E731
    hidden, biases = [], []
    for shape, (H, P) in zip(spec.weight_shapes(), spec.layer_shapes()):
        hidden.append(draw(shape))
        biases.append(draw(P, H) if spec.bias else None)
    return InitialWeights(tuple(hidden), tuple(biases), draw(spec.widths[-1], spec.n_out))


__all__ = ["ARCHITECTURES", "Architecture", "CNN", "Connectivity", "FCN", "InitialWeights", "LCN", "Local",
           "NetworkSpec", "Shared", "architecture", "branch_pre_activations", "init_weights", "make_spec",
           "patches", "spec_from_config", "taps_of"]
