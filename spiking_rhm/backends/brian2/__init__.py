r"""Brian2 back end: the Norse spiking hierarchy as Brian2 equations, and detailed neurons (docs/brian2.md).

* :mod:`.equations`  -- the model as Brian2 equation strings and the neuron-model registry
  (``lif`` = the Norse mirror, ``cond``, ``adex``, ``two-compartment``; no brian2 import);
* :mod:`.network`    -- :class:`~.network.Brian2Network`: the hierarchy built once and run per window
  (spikes, pre-reset potentials, per-synapse eligibility; a delayed modulator); :func:`~.network.simulate`
  for one window;
* :mod:`.learning`   -- :func:`~.learning.three_factor_update`: ``grad W = c sum L e / sqrt(K)``,
  the algebra of the Norse learner, from a rule's learning signals; :func:`~.learning.branch_update`:
  the same for branch-local rules (``sibling-cca``: signal on the tap branches, eligibility = pre counts);
* :mod:`.train`      -- :class:`~.train.Brian2Backend`: ``--backend brian2`` through the shared training loop.

Importing this package does not import brian2; :mod:`.network` does.
"""
