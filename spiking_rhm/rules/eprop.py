r"""e-prop (Bellec et al., Nat. Commun. 11:3625, 2020): eligibility propagation with random broadcast feedback.

For a LIF network with readout ``y_k(t) = kappa y_k(t-1) + sum_j W^out_kj z_j(t)`` the paper's update is::

    e_ji(t)   = psi_j(t) zbar_i(t)                   (pseudo-derivative x low-pass filtered pre spikes)
    L_j(t)    = sum_k B_jk (pi_k(t) - pi*_k(t))      (pi = softmax(y); B random, or W^out^T for symmetric e-prop)
    Delta W_ji = -eta sum_t L_j(t) ebar_ji(t),       ebar_ji(t) = kappa ebar_ji(t-1) + e_ji(t)

The rule here is the learning signal alone, ``L^l = B^l (softmax(y) - y*) / (H B)`` with a fixed random
``B^l`` for every hidden layer (the broadcast form of the paper's multi-layer experiments). What makes it
e-prop is *when* the Norse back end forms it (:class:`~spiking_rhm.backends.norse.learners.EpropLearner`):
at every ``update_every``-th step from a leaky readout, times the kappa-filtered eligibility of that step,
summed over the window (or applied as it arrives with ``spiking.plasticity = online``).

**Rate limit.** With rates instead of spikes there is one time step, ``psi -> rho'(a)``, ``zbar -> x`` and
``ebar -> rho'(a) x``: the update is DFA's, ``B^l e rho'(a) x``.  On the rate back end ``eprop`` therefore
trains exactly as ``dfa`` with the same feedback matrices (same generator draws); the two differ only on the
spiking back end (``docs/spiking.md``, "e-prop").
"""

from __future__ import annotations

from spiking_rhm.rules.base import register
from spiking_rhm.rules.feedback import DirectFeedback


@register
class Eprop(DirectFeedback):
    name = "eprop"
    summary = ("e-prop: L^l(t) = B^l (softmax(y(t)) - y*) from a leaky readout at every step, times the filtered "
               "eligibility (Bellec 2020); its rate limit is dfa")

    def broadcast(self, ctx):
        return ctx.error


__all__ = ["Eprop"]
