r"""Weight gradients of the three-factor rule from Brian2's per-synapse eligibility.

For layer l with learning signal ``L^l [N, H, P]`` (any registered rule's ``learning_signals``)
and eligibility ``e`` of every synapse ``(b, p, h, k)``::

    grad W^l[w] = c^l / sqrt(K_l) * sum_{synapses (b, p, h, k) with widx = w} L^l_bhp e_bphk

(the gradient convention of the Norse learner: SGD applies ``Delta W = -eta grad W``).  For
shared weights the sum runs over every sample and position whose synapse copies the entry
``W[h, k]``; for untied weights over the samples only.  ``c^l`` is the eligibility scale
(:data:`spiking_rhm.plasticity.ELIGIBILITY_SCALES`): ``none`` -> 1, ``expected`` -> ``f_active / ebar``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.plasticity import ELIGIBILITY_SCALES as SCALES  # noqa: F401  (re-exported)
from spiking_rhm.plasticity import combine, eligibility_scale

__all__ = ["branch_update", "three_factor_update", "SCALES"]


class _IndexedEligibility:
    """A layer's per-synapse eligibility ``e [N, P, H, K]`` with the weight-table entry of every synapse:
    ``contract`` sums ``L_bph e_bphk`` over the synapses that copy each entry (``np.bincount``)."""

    def __init__(self, layer):
        self.layer = layer

    def contract(self, L, shared):
        layer = self.layer
        per_synapse = L.numpy().astype(np.float64)[..., None] * layer.e  # L_bph e_bphk
        size = math.prod(layer.weight_shape)
        total = np.bincount(layer.weight_index.ravel(), weights=per_synapse.ravel(), minlength=size)
        return torch.as_tensor(total.reshape(layer.weight_shape))

    def expected_value(self):
        return self.layer.expected


def three_factor_update(eligibility: Sequence, learning_signals: Sequence, scale: str = "expected"
                        ) -> list[np.ndarray]:
    """``grad W^l`` (shape of ``W^l``) for every layer from its :class:`LayerEligibility` and ``L^l [N, H, P]``
    (:func:`spiking_rhm.plasticity.combine` on the per-synapse traces)."""
    eligibility_scale(scale)
    if len(eligibility) != len(learning_signals):
        raise ConfigError(f"{len(eligibility)} eligibility layers but {len(learning_signals)} learning signals")
    signals = []
    for l, (layer, L) in enumerate(zip(eligibility, learning_signals), start=1):
        N, P, H, _ = layer.e.shape
        L = torch.as_tensor(L.detach().cpu().numpy() if hasattr(L, "detach") else np.asarray(L))
        if tuple(L.shape) != (N, H, P):
            raise ConfigError(f"L^{l} must have shape {(N, H, P)}, got {tuple(L.shape)}")
        signals.append(L)
    traces = [_IndexedEligibility(layer) for layer in eligibility]
    grads = combine(signals, traces, [layer.fan_in for layer in eligibility], shared=False, scale=scale,
                    active=[layer.active_fraction for layer in eligibility])
    return [np.asarray(g) for g in grads]


def branch_update(rule, state, result, input_spikes, spec, params, weights: Sequence, ctx=None
                  ) -> tuple[list[np.ndarray], list]:
    r"""``(grad W^l, L^l)`` of a branch-local rule (``rule.capabilities.branch``) from Brian2's spike counts.

    The Norse learner's branch step on Brian2's window: tap inputs ``x^l`` = pre-synaptic counts
    ``/ (T rho_in)`` (input spikes for layer 1, layer l-1's spikes above), branches
    ``z^l_k = W_k x^l_k / sqrt(K)``, the rule's signal on them, and
    ``grad W^l_(k) = sum_{b,p} L^l_bjkp (Q_k x^l_bkp) / sqrt(K)``.  ``ctx``: a
    :class:`~spiking_rhm.rules.base.LearningContext` to fill (branches, tap inputs) for the rule's
    ``update_state`` (default: a new one from the counts).
    """
    from spiking_rhm.backends.norse.network import rates, tap_inputs
    from spiking_rhm.rules.base import LearningContext
    from spiking_rhm.rules.branch import branch_step

    if not rule.capabilities.branch:
        raise ConfigError(f"rule {rule.name!r} is not branch-local; use three_factor_update")
    if spec.patch is None:
        raise ConfigError("branch-local rules need a hierarchical network (cnn or lcn)")
    T = result.steps
    spikes = torch.as_tensor(np.asarray(input_spikes), dtype=torch.float64)
    layers = [rates(torch.as_tensor(c, dtype=torch.float64), T, params) for c in result.counts]
    W = [torch.as_tensor(np.asarray(w.detach().cpu() if hasattr(w, "detach") else w), dtype=torch.float64)
         for w in weights]
    signals, grads = branch_step(rule, state, LearningContext(layers=layers) if ctx is None else ctx,
                                 tap_inputs(spikes, layers, T, params, spec.patch), W, spec.connectivity.shared)
    return [g.numpy() for g in grads], signals
