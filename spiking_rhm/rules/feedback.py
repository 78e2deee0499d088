r"""Direct-feedback family (Type 1 of arXiv 2605.18557): ``dfa``, ``sdfa``, ``drtp``, ``dkp``.

Each hidden layer receives a fixed (or, for ``dkp``, learned) projection of one output
vector ``u`` through its own feedback matrix ``B^l``; no symmetric error network::

    L^l = (B^l u) / (H B)          u = e = softmax(y) - y*   (dfa, dkp)
                                   u = sign(e)               (sdfa)
                                   u = y*                    (drtp: the target in the error slot)
    Delta W^l = -lr sum_{b,p} L^l rho'(a^l) pre / sqrt(fan_in)     (the back end's eligibility)
    dkp:  Delta B^l = -(lr / H) (h^l)^T e / B - lr * decay * B^l  (local outer product, Webster et al.)

``feedback_shape``: ``per-position`` -- ``B^l [H P_l, n_out]``, one row per channel and
position; ``shared`` -- ``B^l [H, n_out]``, the same projection at every position.
``B^l ~ N(0, 1)``; the ``1/H`` matches the mean-field readout ``beta / H`` of BP's top signal,
so every rule of the family takes BP's learning rate (``lr x H``).  The local loss
``ell^l = <L^l, h^l>`` (``L^l`` detached) gives the same update by autograd.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, NamedTuple

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.rules.base import LearningContext, Rule, field_by_name, register

Tensor = torch.Tensor
FEEDBACK_SHAPES = ("per-position", "shared")


class FeedbackState(NamedTuple):
    """Feedback matrices ``B^l`` (``[H P, n_out]``; ``[H, n_out]`` shared) and the layers' ``(H_l, P_l)``."""

    B: list[Tensor]
    layer_shapes: list[tuple[int, int]]
    __getitem__ = field_by_name


class DirectFeedback(Rule):
    """Shared machinery: ``L^l = B^l u / (H B)`` with the broadcast vector ``u`` of :meth:`broadcast`."""

    family = "direct-feedback"
    supervised = True
    local = True
    default_lr = 1.0
    width_scaled_lr = True
    needs = frozenset({"output", "target"})
    option_defaults: ClassVar[Mapping[str, Any]] = {"feedback_shape": "per-position"}
    option_choices: ClassVar[Mapping[str, tuple]] = {"feedback_shape": FEEDBACK_SHAPES}

    def broadcast(self, ctx: LearningContext) -> Tensor:
        """The vector ``u [B, n_out]`` every layer receives."""
        raise NotImplementedError

    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu") -> FeedbackState:
        shared = self.options["feedback_shape"] == "shared"
        B = [torch.randn(H if shared else H * P, n_out, generator=generator, dtype=dtype).to(device)
             for H, P in layer_shapes]
        return FeedbackState(B, [tuple(s) for s in layer_shapes])

    def project(self, u: Tensor, B: Tensor, H: int, P: int) -> Tensor:
        """``B u`` laid out as ``[batch, H, P]`` (shared: the same at every position)."""
        flat = u @ B.t()
        if self.options["feedback_shape"] == "shared":
            return flat.unsqueeze(-1).expand(-1, H, P)
        return flat.reshape(u.shape[0], H, P)

    def learning_signals(self, ctx, state):
        u = self.broadcast(ctx).detach()
        batch = u.shape[0]
        return [self.project(u, B, H, P) / (H * batch) for B, (H, P) in zip(state.B, state.layer_shapes)]

@register
class DFA(DirectFeedback):
    name = "dfa"
    summary = "direct feedback alignment: L^l = B^l e, fixed random B^l (Nokland 2016)"

    def broadcast(self, ctx):
        return ctx.error


@register
class SignDFA(DirectFeedback):
    name = "sdfa"
    summary = "sign-DFA: L^l = B^l sign(e), fixed random B^l"
    default_lr = 0.1  # sign(e) never shrinks: at the family's 1.0 x H the weights blow up (docs/rules.md)

    def broadcast(self, ctx):
        return torch.sign(ctx.error)


@register
class DRTP(DirectFeedback):
    name = "drtp"
    summary = "direct random target projection: L^l = B^l y*, the target in the error slot (Frenkel 2021)"
    needs = frozenset({"target"})

    def broadcast(self, ctx):
        if ctx.target is None:
            raise ConfigError("drtp needs the target")
        return ctx.target


@register
class DirectKolenPollack(DirectFeedback):
    name = "dkp"
    summary = "direct Kolen-Pollack: L^l = B^l e, B^l learned by the local outer product -h^l e^T"
    option_defaults: ClassVar[Mapping[str, Any]] = {"feedback_shape": "per-position", "feedback_decay": 0.0,
                                                    "feedback_lr_scale": 1.0}

    def __init__(self, **options):
        super().__init__(**options)
        for key in ("feedback_decay", "feedback_lr_scale"):
            if not (isinstance(self.options[key], (int, float)) and self.options[key] >= 0):
                raise ConfigError(f"dkp: {key} must be a number >= 0, got {self.options[key]!r}")

    def broadcast(self, ctx):
        return ctx.error

    def feedback_gradients(self, ctx: LearningContext, state: FeedbackState) -> list[Tensor]:
        """``(h^l)^T e / (H B)`` in the layout of ``B^l`` (shared: summed over positions)."""
        e = ctx.error.detach()
        batch = e.shape[0]
        out = []
        for h, (H, P) in zip(ctx.layers, state.layer_shapes):
            h = h.detach()
            flat = h.sum(-1) if self.options["feedback_shape"] == "shared" else h.reshape(batch, H * P)
            out.append(flat.t() @ e / (H * batch))
        return out

    def update_state(self, ctx, state, lr):
        """``B^l <- B^l - lr_B ((h^l)^T e / (H B) + decay B^l)``, ``lr_B = feedback_lr_scale x lr``."""
        lr_B = float(self.options["feedback_lr_scale"]) * lr
        decay = float(self.options["feedback_decay"])
        with torch.no_grad():
            B = [b - lr_B * (g + decay * b) for b, g in zip(state.B, self.feedback_gradients(ctx, state))]
        return state._replace(B=B)


__all__ = ["DFA", "DRTP", "DirectFeedback", "DirectKolenPollack", "FEEDBACK_SHAPES", "FeedbackState", "SignDFA"]
