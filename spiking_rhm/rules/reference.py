r"""Reference, control and diagnostic rules: ``bp``, ``random-features``, ``bp-unmasked``, ``dfa-masked``.

Learning signals ``L^l = d ell^l / d h^l`` (``[B, H_l, P_l]``); the back end multiplies by
the eligibility ``rho'(a^l) x pre`` and sums.  Every local loss is ``ell^l = <L^l, h^l>`` with
``L^l`` detached, so its autograd gradient is the explicit update by construction; the
content of each rule is how ``L^l`` is formed::

    bp            L^l = dLoss/dh^l                      (true backprop, non-local)
    bp-unmasked   L^L = dLoss/dh^L,  L^l = W^{l+1 T} (Dbar^{l+1} * L^{l+1})
                  Dbar = an input-independent constant in place of the ReLU mask rho'(a^{l+1})
    dfa-masked    L^L = G^out e / (H B),  L^l = G^{l+1} (D^{l+1}(x) * L^{l+1})
                  G fixed random (a product-form DFA matrix B^l = G^{l+1}...G^out) routed through
                  the true input-specific upper masks D(x); masked=false drops the masks (product DFA)
    random-features  L^l = 0 (hidden layers frozen; the back end trains the readout only)

``Loss`` is the batch-mean cross-entropy of the mean-field readout, ``e = softmax(y) - y*``.
Equations, defaults and deviations: ``docs/rules.md``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Mapping

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.rules.base import LearningContext, Rule, inner_product_losses, register

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
        """``Dbar``: the batch mean of rho'(a) per unit and position, 1/2, or 1 -- the same for every input."""
        kind = self.options["mask_constant"]
        if kind == "batch-mean":
            return (a.detach() > 0).to(a.dtype).mean(0, keepdim=True)
        return torch.full_like(a[:1], 0.5 if kind == "half" else 1.0)

    def learning_signals(self, ctx, state):
        top = _require(ctx, "bp_signals", self.name)[-1].detach()
        pre = _require(ctx, "pre_activations", self.name)
        vjp = _require(ctx, "layer_vjp", self.name)
        signals = [top]
        for l in range(len(ctx.layers) - 1, 0, -1):  # L^l from L^{l+1}
            signals.append(vjp(l + 1, signals[-1] * self.constant_mask(pre[l])).detach())
        return signals[::-1]

@register
class MaskedDFA(Rule):
    name = "dfa-masked"
    summary = "diagnostic oracle: product-form DFA feedback routed through the true upper ReLU masks (non-local)"
    family = "diagnostic"
    supervised = True
    local = False
    default_lr = 1.0
    width_scaled_lr = True
    needs = frozenset({"pre_activations"})
    option_defaults: ClassVar[Mapping[str, Any]] = {"masked": True}

    def __init__(self, **options):
        super().__init__(**options)
        if not isinstance(self.options["masked"], bool):
            raise ConfigError(f"dfa-masked: masked must be true or false, got {self.options['masked']!r}")

    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu"):
        """``G^out [H_L P_L, n_out]`` ~ N(0, 1); ``G^{l+1} [H_l P_l, H_{l+1} P_{l+1}]`` ~ N(0, 2 / (H_{l+1} P_{l+1}))."""
        sizes = [H * P for H, P in layer_shapes]
        top = torch.randn(sizes[-1], n_out, generator=generator, dtype=dtype).to(device)
        down = [(torch.randn(sizes[l], sizes[l + 1], generator=generator, dtype=dtype)
                 * math.sqrt(2.0 / sizes[l + 1])).to(device) for l in range(len(sizes) - 1)]
        return {"G_out": top, "G": down, "layer_shapes": [tuple(s) for s in layer_shapes]}

    def learning_signals(self, ctx, state):
        pre = _require(ctx, "pre_activations", self.name)
        e = ctx.error.detach()
        batch = e.shape[0]
        shapes = state["layer_shapes"]
        H_top = shapes[-1][0]
        flat = e @ state["G_out"].t() / (H_top * batch)  # [B, H_L P_L]
        signals = [flat]
        for l in range(len(shapes) - 1, 0, -1):  # from layer l+1 (index l) down to layer l
            gate = (pre[l].detach() > 0).to(flat.dtype).reshape(batch, -1) if self.options["masked"] else 1.0
            signals.append((signals[-1] * gate) @ state["G"][l - 1].t())
        return [s.reshape(batch, H, P) for s, (H, P) in zip(signals[::-1], shapes)]

__all__ = ["Backprop", "MASK_CONSTANTS", "MaskedDFA", "RandomFeatures", "UnmaskedBackprop", "inner_product_losses"]
