r"""Positive pairs and site layouts of the layer-wise self-supervised rules.

A **pair mode** splits the activity ``h^l`` ([B, H_l, P_l]) of a hidden layer into
*targets* ``t_k`` (differentiable selections of ``h^l``) and gives each target a
*context* ``c_k`` (always detached) from which a predictor ``B`` must recognise it::

    resample  t = h^l(x),                c = h^l(R_{L-l}(x))          (second view, grammar oracle)
    mask      t_1 = h^l_A(x), t_2 = h^l_A'(x);  c_1 = h^l_A'(x), c_2 = h^l_A(x)
              (A: fixed random half of the channels, A' its complement)
    sibling   t_j = h^l at child j of every parent (positions j, j+s, ...),
              c_j = the other s-1 children of the same parent, stacked over channels

Negatives are built by the rule from the same targets with the contexts of other
batch items (same position, same part).  Every unit of ``h^l`` belongs to exactly one
target, so :meth:`PairMode.assemble` (the adjoint of the target selection) puts the
gradients of the targets back into the layout of ``h^l``.

A **scoring** maps a (target, context) pair of shape ``[B, D, N]`` / ``[B, Dc, N or 1]``
to the *sites* that the rule scores independently with one shared predictor::

    position  one score per position (parent for sibling), B shared over positions
    flat      one score per sample on channels x positions flattened (CLAPP++ spatial B)
    pooled    one score per sample on the position-averaged activity (global pooling)
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.registry import lookup

Tensor = torch.Tensor


# --------------------------------------------------------------------------- pair modes
class PairMode:
    """How a layer's targets and their (detached) contexts are formed."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_second_view: ClassVar[bool] = False  # ctx.positive must be filled by the back end
    uses_grammar: ClassVar[bool] = False  # extra information beyond the P training inputs

    def layer_info(self, layer_shapes: Sequence[tuple[int, int]], l: int, generator: torch.Generator,
                   options: Mapping[str, Any]) -> dict:
        """Static description of layer ``l`` (1-based) kept in the rule state (masks, group size)."""
        return {}

    def positive_view_levels(self, L: int, level: int | None) -> list[int] | None:
        """Resampling level R_l of the positive view of each hidden layer, or None (no second view)."""
        return None

    def targets(self, h: Tensor, info: dict) -> list[Tensor]:
        raise NotImplementedError

    def assemble(self, parts: Sequence[Tensor], info: dict, shape: torch.Size) -> Tensor:
        """Adjoint of :meth:`targets`: place per-target gradients back into the layout of h."""
        raise NotImplementedError

    def contexts(self, layers: Sequence[Tensor], positive: Sequence[Tensor] | None, l: int,
                 info: dict) -> list[Tensor]:
        """Same-layer (lateral) context of each target, detached."""
        raise NotImplementedError

    def top_context(self, layers: Sequence[Tensor], positive: Sequence[Tensor] | None) -> Tensor:
        """Top-layer context (CLAPP-DFB) as one site ``[B, H_L * P_L, 1]``, detached."""
        top = layers[-1].detach()
        return top.reshape(top.shape[0], -1, 1)


class ResamplePairs(PairMode):
    """Positive = layer activity on a synonym-resampled input R_{L-l}(x) (grammar as augmentation oracle)."""

    name = "resample"
    summary = "positive view R_{L-l}(x) from the grammar (extra information beyond the P inputs)"
    needs_second_view = True
    uses_grammar = True

    def positive_view_levels(self, L: int, level: int | None) -> list[int]:
        if level is None:
            return [L - l for l in range(1, L + 1)]
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= L:
            raise ConfigError(f"resample_level must be None or an integer in [0, {L}], got {level!r}")
        return [level] * L

    def targets(self, h, info):
        return [h]

    def assemble(self, parts, info, shape):
        return parts[0]

    def contexts(self, layers, positive, l, info):
        return [_positive(positive, len(layers))[l - 1].detach()]

    def top_context(self, layers, positive):
        top = _positive(positive, len(layers))[-1].detach()
        return top.reshape(top.shape[0], -1, 1)


class MaskPairs(PairMode):
    """Predict a fixed random part A of the channels from the complement A', and A' from A."""

    name = "mask"
    summary = "predict a fixed random half of the channels from the other half (same input)"

    def layer_info(self, layer_shapes, l, generator, options):
        H = layer_shapes[l - 1][0]
        n_a = int(round(options["mask_fraction"] * H))
        if not 0 < n_a < H:
            raise ConfigError(f"pairs='mask' needs both parts non-empty; layer {l} has {H} channel(s) "
                              f"and mask_fraction={options['mask_fraction']}")
        perm = torch.randperm(H, generator=generator)
        return {"channels": (perm[:n_a].sort().values, perm[n_a:].sort().values)}

    def targets(self, h, info):
        a, b = (idx.to(h.device) for idx in info["channels"])
        return [h[:, a], h[:, b]]

    def assemble(self, parts, info, shape):
        a, b = (idx.to(parts[0].device) for idx in info["channels"])
        order = torch.cat([a, b])  # out[:, order] = cat(parts): a gather, so that vmap batches it
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return torch.cat([parts[0], parts[1]], 1)[:, inverse]

    def contexts(self, layers, positive, l, info):
        t_a, t_b = self.targets(layers[l - 1].detach(), info)
        return [t_b, t_a]


class SiblingPairs(PairMode):
    """CPC-like: predict the activity at child j of a parent from its s-1 siblings (same input).

    The group size of layer l is P_l / P_{l+1} (the filter size s of the next layer).  A layer
    with a single position (the top layer of the hierarchical CNN) has no siblings and falls
    back to :class:`MaskPairs`.
    """

    name = "sibling"
    summary = "predict the activity at one child position from its siblings under the same parent"

    def layer_info(self, layer_shapes, l, generator, options):
        positions = [p for _, p in layer_shapes]
        group = _group_size(positions, l)
        if group is None:
            return {"group": None, **MaskPairs().layer_info(layer_shapes, l, generator, options)}
        return {"group": group}

    def targets(self, h, info):
        s = info["group"]
        if s is None:
            return MaskPairs().targets(h, info)
        return [h[..., j::s] for j in range(s)]

    def assemble(self, parts, info, shape):
        s = info["group"]
        if s is None:
            return MaskPairs().assemble(parts, info, shape)
        out = parts[0].new_zeros(shape)
        for j, part in enumerate(parts):
            out[..., j::s] = part
        return out

    def contexts(self, layers, positive, l, info):
        s = info["group"]
        if s is None:
            return MaskPairs().contexts(layers, positive, l, info)
        children = self.targets(layers[l - 1].detach(), info)
        return [torch.cat([c for k, c in enumerate(children) if k != j], dim=1) for j in range(s)]


def _group_size(positions: Sequence[int], l: int) -> int | None:
    """Children per parent at layer l (1-based): P_l / P_{l+1}, else P_{l-1} / P_l; None if no siblings."""
    P = positions[l - 1]
    candidates = []
    if l < len(positions) and positions[l] > 0 and P % positions[l] == 0:
        candidates.append(P // positions[l])
    if l > 1 and P > 0 and positions[l - 2] % P == 0:
        candidates.append(positions[l - 2] // P)
    return next((g for g in candidates if 2 <= g <= P and P % g == 0), None)


def _positive(positive: Sequence[Tensor] | None, L: int) -> Sequence[Tensor]:
    if positive is None or len(positive) != L:
        raise ConfigError("pairs='resample' needs the positive view of every hidden layer in ctx.positive "
                          "(the back end builds it from positive_view_levels)")
    return positive


PAIR_MODES: dict[str, type[PairMode]] = {cls.name: cls for cls in (ResamplePairs, MaskPairs, SiblingPairs)}


def get_pair_mode(name: str) -> PairMode:
    return lookup(PAIR_MODES, name, "pair mode", ConfigError)()


# --------------------------------------------------------------------------- scorings
class Scoring:
    """Maps target ``[B, D, N]`` and context ``[B, Dc, N or 1]`` to scored sites ``[B, D', N']``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def sites(self, t: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def adjoint(self, g: Tensor, shape: torch.Size) -> Tensor:
        """Gradient w.r.t. the target from the gradient w.r.t. its sites."""
        raise NotImplementedError


class PositionScoring(Scoring):
    name = "position"
    summary = "one score per position (per parent for sibling), predictor shared over positions"

    def sites(self, t, c):
        return t, c.expand(-1, -1, t.shape[2]) if c.shape[2] == 1 else c

    def adjoint(self, g, shape):
        return g


class FlatScoring(Scoring):
    name = "flat"
    summary = "one score per sample on channels x positions (CLAPP++ spatial predictor)"

    def sites(self, t, c):
        return t.reshape(t.shape[0], -1, 1), c.reshape(c.shape[0], -1, 1)

    def adjoint(self, g, shape):
        return g.reshape(shape)


class PooledScoring(Scoring):
    name = "pooled"
    summary = "one score per sample on the position-averaged activity (global pooling)"

    def sites(self, t, c):
        return t.mean(2, keepdim=True), c.mean(2, keepdim=True)

    def adjoint(self, g, shape):
        return g.expand(shape) / shape[2]


SCORINGS: dict[str, type[Scoring]] = {cls.name: cls for cls in (PositionScoring, FlatScoring, PooledScoring)}


def get_scoring(name: str) -> Scoring:
    return lookup(SCORINGS, name, "scoring", ConfigError)()
