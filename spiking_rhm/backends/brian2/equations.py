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

import math

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
wacc : 1
"""
SYNAPSE_ON_PRE = "isyn_post += gain * w"

# the modulator (a broadcast factor M with its own time course, one per layer): after the window and a delay
# it arrives as M = 1 and decays, M <- a_mod M; the synapse accumulates the modulated eligibility
# wacc += (1 - a_mod) M elig every step (before the eligibility's own decay), so a_mod = 0 and no delay
# give the eligibility at the end of the window
MODULATOR_MODEL = "mod : 1 (shared)"
MODULATOR_DECAY = "mod = a_mod * mod"
MODULATED_ELIGIBILITY = "wacc += (1 - a_mod) * mod_post * elig"

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


# --------------------------------------------------------------------------- neuron models (registry)
# Every model is a hidden-layer NeuronGroup integrated with Euler from the synaptic input of the step,
# in the LIF mirror's units (rest v_leak, threshold v_th, drive in units of the LIF current ``isyn``).
# ``psi`` (the surrogate derivative the eligibility reads) is always taken on the somatic potential ``v``.
PSI = "psi = 1 / (1 + psi_beta * abs(v - v_th))**2 : 1\nxbar : 1 (linked)\n"

COND_MODEL = """
dv/dt = (v_leak - v + ge * (e_exc - v) + gi * (e_inh - v)) / tau_mem : 1{unless}
dge/dt = -ge / tau_syn : 1
dgi/dt = -gi / tau_syn : 1
"""
# a weight w enters as a conductance jump normalised so that at rest it injects the LIF current gain w
COND_ON_PRE = ("ge_post += gain * w * int(w > 0) / (e_exc - v_leak)\n"
               "gi_post += gain * w * int(w < 0) / (e_inh - v_leak)")

ADEX_MODEL = """
dv/dt = (v_leak - v + delta_t * exp(clip((v - v_t) / delta_t, -inf, (v_th - v_t) / delta_t)) - wad + isyn) / tau_mem : 1{unless}
dwad/dt = (a * (v - v_leak) - wad) / tau_w : 1
disyn/dt = -isyn / tau_syn : 1
"""

# two compartments in the variables u = (1 - kappa) v + kappa v_d (mean) and delta = v_d - v:
# tau u' = v_leak - u + isyn (the LIF), delta relaxes to delta_inf (exact step, any coupling)
TWO_COMPARTMENT_MODEL = """
du/dt = (v_leak - u + isyn + inj) / tau_mem : 1{unless}
disyn/dt = -isyn / tau_syn : 1
delta : 1
inj : 1
dsum : 1
wdec : 1 (shared)
v = u - kappa * delta : 1
v_dend = u + (1 - kappa) * delta : 1
"""
TWO_COMPARTMENT_DELTA = ("delta = a_delta * delta + (1 - a_delta) * (isyn + inj) * (1 - kappa) / "
                         "(kappa * (1 - kappa) + g_c)")

# the dendritic delivery's learning phase (TwoCompartmentModel.delivered_gain): a current ``inj`` held in the
# dendrite; each neuron sums its dendritic potential weighted by the eligibility's decay since the window's end,
# dsum = sum_t a_e^t v_dend(T + t) (after the step's reset), wdec = a_e^t
DENDRITE_SUM = "dsum += wdec * v_dend"
DENDRITE_DECAY = "wdec = wdec * a_elig"


class NeuronModel:
    """A hidden-layer neuron of the Brian2 back end (registry :data:`NEURON_MODELS`).

    ``options`` (``spiking.neuron_options``) are checked against :attr:`defaults` (plus the options of
    every model, :data:`COMMON_OPTIONS`); :meth:`namespace` gives the constants the equations read.
    """

    name = ""
    defaults: dict = {}
    state: tuple = ("v", "isyn")  # variables reset at the start of a window (v-like first)
    recorded: tuple = ("v",)  # what ``dynamics`` can draw

    def __init__(self, options=None, reset: str = "subtract"):
        from spiking_rhm.errors import ConfigError

        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults) - set(COMMON_OPTIONS))
        if unknown:
            raise ConfigError(f"neuron {self.name!r} has no option(s) {', '.join(unknown)}; valid: "
                              f"{', '.join([*self.defaults, *COMMON_OPTIONS])}")
        values = {**COMMON_OPTIONS, **self.defaults, **options}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ConfigError(f"spiking.neuron_options.{key} must be a number, got {value!r}")
        self.options = {k: float(v) for k, v in values.items()}
        if reset not in LIF_RESETS:
            raise ConfigError(f"unknown reset {reset!r}; valid: {', '.join(LIF_RESETS)}")
        self.reset_rule = reset
        for key in ("refractory", "synapse_delay"):
            if self.options[key] < 0:
                raise ConfigError(f"spiking.neuron_options.{key} must be >= 0 seconds, got {self.options[key]}")
        self.check()

    def check(self) -> None:
        """Model-specific checks (ConfigError)."""

    @property
    def refractory(self) -> float:
        return self.options["refractory"]

    @property
    def synapse_delay(self) -> float:
        return self.options["synapse_delay"]

    def _unless(self) -> str:
        return " (unless refractory)" if self.refractory > 0 else ""

    def model(self) -> str:
        raise NotImplementedError

    on_pre = SYNAPSE_ON_PRE
    threshold = LIF_THRESHOLD

    def reset(self) -> str:
        return LIF_RESETS[self.reset_rule]

    def namespace(self, dt: float) -> dict:
        return {k: v for k, v in self.options.items() if k not in COMMON_OPTIONS}

    def describe(self) -> dict:
        return {"neuron": self.name, **self.options}


COMMON_OPTIONS = {"refractory": 0.0, "synapse_delay": 0.0}  # seconds; every model


class LIFModel(NeuronModel):
    """Current-based LIF, the Norse mirror: ``tau_mem v' = v_leak - v + isyn``, ``tau_syn isyn' = -isyn``."""

    name = "lif"

    def model(self):
        return LIF_MODEL.replace("/ tau_mem : 1\n", "/ tau_mem : 1" + self._unless() + "\n", 1)


class CondModel(NeuronModel):
    """Conductance-based synapses with reversal potentials: ``tau_mem v' = v_leak - v + ge (e_exc - v) +
    gi (e_inh - v)``; a weight ``w > 0`` adds ``gain w / (e_exc - v_leak)`` to ``ge``, ``w < 0`` adds
    ``gain w / (e_inh - v_leak)`` to ``gi`` (the LIF current at rest; reversal potentials far from rest
    give the LIF)."""

    name = "cond"
    defaults = {"e_exc": 8 / 3, "e_inh": 0.0}  # 0 mV and -80 mV if rest -65 mV = 0.5, threshold -50 mV = 1
    state = ("v", "ge", "gi")
    recorded = ("v", "ge", "gi")

    def check(self):
        from spiking_rhm.errors import ConfigError

        o = self.options
        if not o["e_inh"] < o["e_exc"]:
            raise ConfigError(f"cond: need e_inh < e_exc, got e_inh = {o['e_inh']}, e_exc = {o['e_exc']}")

    def check_rest(self, v_leak: float, v_th: float) -> None:
        from spiking_rhm.errors import ConfigError

        o = self.options
        if not (o["e_exc"] > v_th and o["e_inh"] < v_leak):
            raise ConfigError(f"cond: need e_inh < v_rest = {v_leak} and e_exc > v_th = {v_th}, got "
                              f"e_inh = {o['e_inh']}, e_exc = {o['e_exc']}")

    def model(self):
        return COND_MODEL.format(unless=self._unless()) + PSI

    on_pre = COND_ON_PRE


class AdExModel(NeuronModel):
    """Adaptive exponential integrate-and-fire: ``tau_mem v' = v_leak - v + delta_t exp((v - v_t) / delta_t)
    - wad + isyn`` (the exponential's argument clipped at the spike-detection threshold v_th),
    ``tau_w wad' = a (v - v_leak) - wad``, ``wad += b`` on a spike.  ``a = b = 0``, ``v_t = v_th``,
    ``delta_t -> 0`` give the LIF."""

    name = "adex"
    defaults = {"a": 0.05, "b": 0.05, "tau_w": 0.1, "delta_t": 0.05, "v_t": 0.8}
    state = ("v", "wad", "isyn")
    recorded = ("v", "wad")

    def check(self):
        from spiking_rhm.errors import ConfigError

        o = self.options
        if not (o["delta_t"] > 0 and o["tau_w"] > 0):
            raise ConfigError(f"adex: delta_t and tau_w must be > 0, got delta_t = {o['delta_t']}, "
                              f"tau_w = {o['tau_w']}")
        if o["a"] < 0 or o["b"] < 0:
            raise ConfigError(f"adex: a and b must be >= 0, got a = {o['a']}, b = {o['b']}")

    def model(self):
        return ADEX_MODEL.format(unless=self._unless()) + PSI

    def reset(self):
        return LIF_RESETS[self.reset_rule] + "\nwad += b"


class TwoCompartmentModel(NeuronModel):
    r"""Soma ``v`` and dendrite ``v_d`` (capacitance fractions ``1 - kappa``, ``kappa``; coupling ``g_c`` in
    units of the leak); the synaptic current enters the dendrite, the soma spikes and the spike resets both
    compartments.  Integrated as the mean ``u = (1 - kappa) v + kappa v_d`` (the LIF equation) and the
    difference ``delta = v_d - v`` (exact exponential step towards
    ``delta_inf = isyn (1 - kappa) / (kappa (1 - kappa) + g_c)``, rate ``(1 + g_c / (kappa (1 - kappa))) / tau_mem``);
    ``g_c -> inf`` gives the LIF.

    Dendritic delivery (``delivery = 1``, rules with a dendritic signal: the CLAPP family, sibling-cca; docs/brian2.md
    "Dendritic delivery"): after the window a learning phase of ``S = learning_phase / dt`` silent steps holds the
    current ``inj_j = -inject L_j / sigma`` (``sigma`` the layer's rms of ``L``) in every dendrite, and the third
    factor is read from the dendrite: ``L~_j = -sigma (D_j - D0_j) / (inject G)``, ``D = sum_t a_e^t v_d(T + t)``
    with and ``D0`` without the current, ``G`` = :meth:`delivered_gain` (``L~ = L`` while the current changes no
    spike, always with ``phase_spikes = 0``: the soma is silent in the phase)."""

    name = "two-compartment"
    defaults = {"kappa": 0.5, "g_c": 1.0, "delivery": 1.0, "inject": 0.25, "learning_phase": 0.01,
                "phase_spikes": 1.0}
    state = ("u", "isyn", "delta", "inj", "dsum")
    recorded = ("v", "v_dend")
    # read by the back end, not the equations; phase_spikes = 0: the soma does not spike in the learning phase
    delivery_options = ("delivery", "inject", "learning_phase", "phase_spikes")

    def check(self):
        from spiking_rhm.errors import ConfigError

        o = self.options
        if not 0 < o["kappa"] < 1:
            raise ConfigError(f"two-compartment: kappa (the dendrite's share of the capacitance) must be in (0, 1), "
                              f"got {o['kappa']}")
        if not o["g_c"] > 0:
            raise ConfigError(f"two-compartment: g_c (the coupling) must be > 0, got {o['g_c']}")
        if o["delivery"] not in (0.0, 1.0):
            raise ConfigError(f"two-compartment: delivery must be 1 (a dendritic rule's signal enters the dendrite) or "
                              f"0 (the point-neuron update), got {o['delivery']}")
        if o["phase_spikes"] not in (0.0, 1.0):
            raise ConfigError(f"two-compartment: phase_spikes must be 1 (the soma spikes in the learning phase) or 0 "
                              f"(it is silent), got {o['phase_spikes']}")
        if not (o["inject"] > 0 and math.isfinite(o["inject"])):
            raise ConfigError(f"two-compartment: inject (the delivered current per rms signal) must be > 0, "
                              f"got {o['inject']}")
        if not o["learning_phase"] > 0:
            raise ConfigError(f"two-compartment: learning_phase must be > 0 seconds, got {o['learning_phase']}")

    @property
    def delivers(self) -> bool:
        """True when a dendritic rule's signal is delivered to the dendrite (``delivery = 1``)."""
        return self.options["delivery"] == 1.0

    def model(self):
        return TWO_COMPARTMENT_MODEL.format(unless=self._unless()) + PSI

    threshold = "u - kappa * delta > v_th"

    def reset(self):
        return {"zero": "u = v_reset + kappa * delta", "subtract": "u = u - (v_th - v_reset)"}[self.reset_rule]

    def namespace(self, dt: float) -> dict:
        return {k: v for k, v in super().namespace(dt).items() if k not in self.delivery_options}

    def a_delta(self, dt: float, tau_mem: float) -> float:
        o = self.options
        return math.exp(-dt * (1 + o["g_c"] / (o["kappa"] * (1 - o["kappa"]))) / tau_mem)

    def phase_steps(self, dt: float) -> int:
        return int(round(self.options["learning_phase"] / dt))

    def delivered_gain(self, dt: float, tau_mem: float, tau_elig: float) -> float:
        r"""``G = sum_{t=1}^S a_e^t dv_d(t)``: the eligibility-weighted deviation of the dendrite under a unit
        current held from the window's end, in the linear regime (no spike changed)::

            dv_d(t) = (1 - r^t) + (1 - kappa) c_d (1 - a_delta^t),   r = 1 - dt / tau_mem (Euler),
            c_d = (1 - kappa) / (kappa (1 - kappa) + g_c),        a_e = exp(-dt / tau_elig)
        """
        o, S = self.options, self.phase_steps(dt)
        r, ad, ae = 1 - dt / tau_mem, self.a_delta(dt, tau_mem), math.exp(-dt / tau_elig)
        c_d = (1 - o["kappa"]) / (o["kappa"] * (1 - o["kappa"]) + o["g_c"])

        def geometric(x):  # sum_{t=1}^S x^t
            return S * x if x == 1 else x * (1 - x ** S) / (1 - x)

        return geometric(ae) - geometric(ae * r) + (1 - o["kappa"]) * c_d * (geometric(ae) - geometric(ae * ad))


NEURON_MODELS: dict[str, type[NeuronModel]] = {c.name: c for c in (LIFModel, CondModel, AdExModel,
                                                                   TwoCompartmentModel)}


def check_whole_steps(model: NeuronModel, modulator_delay: float, dt: float) -> None:
    """Delays and the refractory period as whole time steps (Brian2 and the modulator would round them silently)."""
    from spiking_rhm.errors import ConfigError

    times = {f"spiking.neuron_options.{k}": model.options[k] for k in ("synapse_delay", "refractory",
                                                                        "learning_phase") if k in model.options}
    for key, value in {**times, "spiking.modulator_delay": modulator_delay}.items():
        steps = value / dt
        if abs(steps - round(steps)) > 1e-6:
            raise ConfigError(f"{key} = {value} s is not a whole number of time steps dt = {dt} s")


def neuron_model(name: str, options=None, reset: str = "subtract") -> NeuronModel:
    """The registered model ``name`` with ``options`` (ConfigError naming what is valid)."""
    from spiking_rhm.errors import ConfigError

    if name not in NEURON_MODELS:
        raise ConfigError(f"unknown neuron {name!r}; valid: {', '.join(NEURON_MODELS)}")
    return NEURON_MODELS[name](options, reset)
