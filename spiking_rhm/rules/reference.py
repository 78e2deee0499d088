r"""Reference, control and diagnostic rules: ``bp``, ``random-features``, the masking 2x2 (``bp``,
``bp-unmasked``, ``fa``, ``fa-unmasked``) and ``dfa-masked``.

Learning signals ``L^l = d ell^l / d h^l`` (``[B, H_l, P_l]``); the back end multiplies by
the eligibility ``rho'(a^l) x pre`` and sums.  Every local loss is ``ell^l = <L^l, h^l>`` with
``L^l`` detached, so its autograd gradient is the explicit update by construction; the
content of each rule is how ``L^l`` is formed::

    bp            L^l = dLoss/dh^l                      (true backprop, non-local)
    bp-unmasked   L^L = dLoss/dh^L,  L^l = W^{l+1 T} (Dbar^{l+1} * L^{l+1})
                  Dbar = an input-independent constant in place of the ReLU mask rho'(a^{l+1})
    fa            L^L = dLoss/dh^L,  L^l = B^{l+1 T} (D^{l+1}(x) * L^{l+1})
    fa-unmasked   L^L = dLoss/dh^L,  L^l = B^{l+1 T} (Dbar^{l+1} * L^{l+1})
                  B^l fixed random in the layout of W^l (the forward layer's sparsity and weight
                  tying: feedback alignment along the tree), B ~ N(0, 1) like W at initialisation;
                  B^T applied as the layer's transposed map (ctx.feedback_vjp, 1/sqrt(fan_in) included)
    dfa-masked    L^L = G^out e / (H B),  L^l = G^{l+1 T} (D^{l+1}(x) * L^{l+1})
                  G^out [H P_L, n_out] ~ N(0, 1) and G^l ~ N(0, 1) in the layout of W^l: DFA's top
                  projection routed down the tree through the true input-specific masks, each lower
                  position receiving only from its ancestors; masked=false drops the masks
    random-features  L^l = 0 (hidden layers frozen; the back end trains the readout only)

Masking 2x2 (feedback weights x masks): bp (W, D(x)), bp-unmasked (W, Dbar), fa (B, D(x)),
fa-unmasked (B, Dbar).  The tree-routed feedback needs ``ctx.feedback_vjp`` (rate back end only).

``Loss`` is the batch-mean cross-entropy of the mean-field readout, ``e = softmax(y) - y*``.
Equations, defaults and deviations: ``docs/rules.md``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, NamedTuple

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.rules.base import LearningContext, Rule, field_by_name, inner_product_losses, register

Tensor = torch.Tensor


def _require(ctx: LearningContext, field: str, rule: str):
    value = getattr(ctx, field)
    if value is None:
        raise ConfigError(f"rule {rule!r} needs ctx.{field}, which the back end did not provide")
    return value


@register
class Backprop(Rule):
    name = "bp"
    summary = "end-to-end backprop of the cross-entropy (reference; needs a symmetric error network)"
    family = "reference"
    supervised = True
    local = False
    default_lr = 1.0
    width_scaled_lr = True
    needs = frozenset({"bp_signals"})
    gradient_signal = True

    def learning_signals(self, ctx, state):
        return [g.detach() for g in _require(ctx, "bp_signals", self.name)]

@register
class RandomFeatures(Rule):
    name = "random-features"
    summary = "control: hidden layers frozen at their random init, only the readout is trained"
    family = "control"
    supervised = False  # hidden layers never see labels (they never change)
    local = True
    default_lr = 1.0
    width_scaled_lr = True

    def learning_signals(self, ctx, state):
        return [torch.zeros_like(h) for h in ctx.layers]

MASK_CONSTANTS = ("batch-mean", "half", "one")


def constant_mask(a: Tensor, kind: str) -> Tensor:
    """``Dbar``: the batch mean of rho'(a) per unit and position, 1/2, or 1 -- the same for every input."""
    if kind == "batch-mean":
        return (a.detach() > 0).to(a.dtype).mean(0, keepdim=True)
    return torch.full_like(a[:1], 0.5 if kind == "half" else 1.0)


class TreeFeedbackState(NamedTuple):
    """The seed of the tree feedback ``B^2..B^L`` and the matrices once drawn: ``B_tree`` is filled at the
    first step (:func:`tree_feedback`; their shapes come from the weights)."""

    feedback_seed: int
    B_tree: list[Tensor]
    __getitem__ = field_by_name


class MaskedDFAState(NamedTuple):
    """``dfa-masked``: the top projection ``G^out [H_L P_L, n_out]``, the tree feedback as in
    :class:`TreeFeedbackState`, and the layer shapes ``(H_l, P_l)``."""

    G_out: Tensor
    feedback_seed: int
    B_tree: list[Tensor]
    layer_shapes: list[tuple[int, int]]
    __getitem__ = field_by_name


def tree_feedback(state: TreeFeedbackState | MaskedDFAState, ctx: LearningContext) -> list[Tensor]:
    """The fixed random feedback weights ``B^2..B^L`` in the layouts of ``W^2..W^L``, ~ N(0, 1), drawn at the
    first call from ``state.feedback_seed`` (the shapes come from ``ctx.weights``) into ``state.B_tree``."""
    if not state.B_tree:
        weights = _require(ctx, "weights", "tree feedback")
        gen = torch.Generator().manual_seed(int(state.feedback_seed))
        state.B_tree.extend(torch.randn(tuple(W.shape), generator=gen, dtype=W.dtype).to(W.device)
                            for W in weights[1:])
    return state.B_tree


def route_down(top: Tensor, ctx: LearningContext, feedback: list[Tensor], masks) -> list[Tensor]:
    """``L^l = B^{l+1 T} (M^{l+1} * L^{l+1})`` from ``L^L = top`` down to layer 1 along the tree
    (``masks(a^{l+1})`` gives ``M^{l+1}``; ``feedback[l-1] = B^{l+1}``)."""
    pre = _require(ctx, "pre_activations", "tree feedback")
    vjp = _require(ctx, "feedback_vjp", "tree feedback")
    signals = [top]
    for l in range(len(ctx.layers) - 1, 0, -1):  # L^l from L^{l+1}
        signals.append(vjp(l + 1, signals[-1] * masks(pre[l]), feedback[l - 1]).detach())
    return signals[::-1]


def _seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


@register
class UnmaskedBackprop(Rule):
    name = "bp-unmasked"
    summary = "diagnostic: backprop with the upper ReLU masks replaced by input-independent constants"
    family = "diagnostic"
    supervised = True
    local = False
    default_lr = 1.0
    width_scaled_lr = True
    needs = frozenset({"bp_signals", "pre_activations", "layer_vjp"})
    option_defaults: ClassVar[Mapping[str, Any]] = {"mask_constant": "batch-mean"}
    option_choices: ClassVar[Mapping[str, tuple]] = {"mask_constant": MASK_CONSTANTS}

    def constant_mask(self, a: Tensor) -> Tensor:
        """``Dbar`` of the ``mask_constant`` option (:func:`constant_mask`)."""
        return constant_mask(a, self.options["mask_constant"])

    def learning_signals(self, ctx, state):
        top = _require(ctx, "bp_signals", self.name)[-1].detach()
        pre = _require(ctx, "pre_activations", self.name)
        vjp = _require(ctx, "layer_vjp", self.name)
        signals = [top]
        for l in range(len(ctx.layers) - 1, 0, -1):  # L^l from L^{l+1}
            signals.append(vjp(l + 1, signals[-1] * self.constant_mask(pre[l])).detach())
        return signals[::-1]

@register
class FeedbackAlignment(Rule):
    name = "fa"
    summary = "diagnostic: feedback alignment along the tree, fixed random B^l shaped like W^l, true masks D(x)"
    family = "diagnostic"
    supervised = True
    local = False  # an error network along the tree (random weights, the true masks)
    default_lr = 1.0
    width_scaled_lr = True
    needs = frozenset({"bp_signals", "pre_activations", "feedback_vjp", "weights"})
    masked: ClassVar[bool] = True

    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu"):
        return TreeFeedbackState(_seed(generator), [])

    def masks(self, a: Tensor) -> Tensor:
        return (a.detach() > 0).to(a.dtype)

    def learning_signals(self, ctx, state):
        top = _require(ctx, "bp_signals", self.name)[-1].detach()
        return route_down(top, ctx, tree_feedback(state, ctx), self.masks)


@register
class UnmaskedFeedbackAlignment(FeedbackAlignment):
    name = "fa-unmasked"
    summary = "diagnostic: feedback alignment along the tree with input-independent constant masks"
    option_defaults: ClassVar[Mapping[str, Any]] = {"mask_constant": "batch-mean"}
    option_choices: ClassVar[Mapping[str, tuple]] = {"mask_constant": MASK_CONSTANTS}
    masked = False

    def masks(self, a: Tensor) -> Tensor:
        return constant_mask(a, self.options["mask_constant"])


@register
class MaskedDFA(Rule):
    name = "dfa-masked"
    summary = "diagnostic oracle: DFA's top projection routed down the tree through the true ReLU masks (non-local)"
    family = "diagnostic"
    supervised = True
    local = False
    default_lr = 1.0
    width_scaled_lr = True
    needs = frozenset({"pre_activations", "feedback_vjp", "weights"})
    option_defaults: ClassVar[Mapping[str, Any]] = {"masked": True}

    def __init__(self, **options):
        super().__init__(**options)
        if not isinstance(self.options["masked"], bool):
            raise ConfigError(f"dfa-masked: masked must be true or false, got {self.options['masked']!r}")

    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu"):
        """``G^out [H_L P_L, n_out]`` ~ N(0, 1); ``G^l`` ~ N(0, 1) in the layout of ``W^l`` (drawn at the first step)."""
        H, P = layer_shapes[-1]
        top = torch.randn(H * P, n_out, generator=generator, dtype=dtype).to(device)
        return MaskedDFAState(top, _seed(generator), [], [tuple(s) for s in layer_shapes])

    def learning_signals(self, ctx, state):
        e = ctx.error.detach()
        batch = e.shape[0]
        H, P = state.layer_shapes[-1]
        top = (e @ state.G_out.t() / (H * batch)).reshape(batch, H, P)
        masks = (lambda a: (a.detach() > 0).to(a.dtype)) if self.options["masked"] else (lambda a: 1.0)
        return route_down(top, ctx, tree_feedback(state, ctx), masks)


__all__ = ["Backprop", "FeedbackAlignment", "MASK_CONSTANTS", "MaskedDFA", "MaskedDFAState", "TreeFeedbackState", "RandomFeatures", "UnmaskedBackprop",
           "UnmaskedFeedbackAlignment", "constant_mask", "inner_product_losses", "route_down", "tree_feedback"]
