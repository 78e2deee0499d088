r"""Brian2 mirror of the Norse spiking hierarchy: the same equations, a second implementation.

* :mod:`.equations`  -- the model as Brian2 equation strings (no brian2 import);
* :mod:`.network`    -- :func:`~.network.simulate`: one presentation window of the hierarchical
  LIF network (NeuronGroup / Synapses, explicit ``dt``, ``numpy`` code generation by default)
  returning spikes, pre-reset potentials and the eligibility traces of every synapse;
* :mod:`.learning`   -- :func:`~.learning.three_factor_update`: ``grad W = c sum L e / sqrt(K)``,
  the algebra of the Norse learner, from a rule's learning signals; :func:`~.learning.branch_update`:
  the same for branch-local rules (``sibling-cca``: signal on the tap branches, eligibility = pre counts).

For cross-checks and detailed dynamics of small networks, not for training (too slow).
Importing this package does not import brian2; :mod:`.network` does.
"""
