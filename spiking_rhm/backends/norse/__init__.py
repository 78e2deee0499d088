r"""Norse back end: a hierarchical LIF network trained by ``Delta W = -eta * L * e``.

* :mod:`.neurons`  -- LIF step (Norse functional API) and the filter = stride = s connectivity;
* :mod:`.traces`   -- pure step functions of the pre-synaptic trace, the surrogate derivative
  psi and the eligibility low-pass filter;
* :mod:`.network`  -- weights, the simulation of one presentation window, the learners
  (three-factor for every registered rule, BPTT surrogate gradient for ``bp``);
* :mod:`.train`    -- ``train_norse(cfg)``, the entry point used by :func:`spiking_rhm.api.train`;
* :mod:`.dynamics` -- recording and figures of spikes, potentials, traces, modulator, weights.

Importing this package does not import norse; the sub-modules do.
"""
