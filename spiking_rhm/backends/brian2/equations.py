r"""The spiking hierarchy as Brian2 equation strings (one place; :mod:`.network` assembles them).

Every hidden layer is a :class:`NeuronGroup` of current-based LIF neurons integrated with
``method="euler"``; the synaptic input of step t is added to ``isyn`` *before* the state
update of that step (the pathways are scheduled first), so Brian2's Euler step reproduces
Norse's ``lif_feed_forward_step`` exactly::

    isyn <- isyn + I(t)                                       (on_pre: isyn_post += gain * w)
    v    <- v + dt (v_leak - v + isyn) / tau_mem               (Euler, from the old v and the new isyn)
    isyn <- isyn - dt isyn / tau_syn
    z    =  v > v_th ;  psi = 1 / (1 + beta |v - v_th|)^2 on the pre-reset v
    reset "zero": v <- v_reset if z ;  reset "subtract": v <- v - (v_th - v_reset) if z

Traces (exact exponential decay, ``method="exact"``)::

    xbar:  dxbar/dt = -xbar / tau_pre, and xbar += 1 - a on a spike    (a = exp(-dt / tau_pre))
           => xbar(t) = a xbar(t-1) + (1 - a) z(t)
    elig:  delig/dt = (plastic psi_post xbar_pre / rho_in - elig) / tau_elig      (clock-driven)
           exact for an input held over the step => elig(t) = k elig(t-1) + (1 - k) g psi xbar / rho

The pre trace lives in its own ``exact`` group per layer (the LIF group needs ``euler``) and is
read by the plastic synapses through a linked variable.  ``ebar`` (the expected eligibility that
the Norse learner's ``expected`` scale divides by) is a one-neuron accumulator per layer fed by a
summed variable ``psi_sum`` (population sum of psi) and by a nominal pre trace ``xnom``
(``dxnom/dt = (1 - xnom) / tau_pre`` from 0: ``xnom(t) = 1 - a^(t+1)``).
"""

# input layer: spikes come from a TimedArray ``stim(t, i)`` (channel-last neuron index)
INPUT_MODEL = """
dxbar/dt = -xbar / tau_pre : 1
"""
INPUT_THRESHOLD = "stim(t, i) > 0.5"
TRACE_JUMP = "xbar += 1 - a_trace"

# hidden LIF layer (``i`` is reserved in Brian2: the synaptic current is ``isyn``)
LIF_MODEL = """
dv/dt = (v_leak - v + isyn) / tau_mem : 1
disyn/dt = -isyn / tau_syn : 1
psi = 1 / (1 + psi_beta * abs(v - v_th))**2 : 1
xbar : 1 (linked)
"""
LIF_THRESHOLD = "v > v_th"
LIF_RESET = "v = v_reset"
LIF_RESETS = {"zero": LIF_RESET, "subtract": "v = v - (v_th - v_reset)"}  # Norse neurons.RESETS

# the pre trace of a hidden layer (one per neuron; incremented through a one-to-one pathway)
TRACE_MODEL = """
dxbar/dt = -xbar / tau_pre : 1
"""
TRACE_ON_PRE = "xbar_post += 1 - a_trace"

# plastic synapses: current on a pre spike, clock-driven eligibility; ``widx`` = flat index into
# the weight table (shared: [H, K]; untied: [P, H, K]); ``w`` = per-synapse copy of that entry
SYNAPSE_MODEL = """
w : 1 (constant)
widx : integer (constant)
gain : 1 (shared, constant)
rho_in : 1 (shared, constant)
plastic : 1 (shared, constant)
delig/dt = (plastic * psi_post * xbar_pre / rho_in - elig) / tau_elig : 1 (clock-driven)
"""
SYNAPSE_ON_PRE = "isyn_post += gain * w"

# expected eligibility ebar of a layer (Norse ``Eligibility.expected_value``)
NOMINAL_MODEL = """
dxnom/dt = (1 - xnom) / tau_pre : 1
"""
ACCUMULATOR_MODEL = """
debar/dt = (psi_sum / n_neurons * xnom - ebar) / tau_elig : 1
psi_sum : 1
xnom : 1 (linked)
n_neurons : 1 (constant)
"""
PSI_SUM = "psi_sum_post = psi_pre : 1 (summed)"
