r"""The spiking hierarchy: parameters, weights, one presentation window, readout.

A window of T steps runs every layer once per step (input spikes -> patches -> current ->
LIF -> spikes of the next layer); optional eligibility accumulators (:mod:`.traces`) record
``psi x xbar`` at every synapse online.  Outputs are spike counts per layer ``[N, P, H]``.

Activities handed to the rules are firing rates in units of the nominal hidden rate,
``h^l = count / (T * rho_h)`` with ``rho_h = g dt / tau_mem`` (the slope of the LIF f-I curve
at large drive in the units of :mod:`.neurons`), laid out ``[N, H, P]``.  At the default operating point
(rest ``v_leak = v_th / 2``, reset by subtraction) the count follows ``T rho_h a`` within a spike above
a rheobase ``(v_th - v_leak) / g``, so ``h^l`` is close to the rate network's ``relu(a^l)`` (a thresholded
one); with ``v_leak = v_th`` (rest at threshold) the LIF rate is a smoothed, compressed ``relu``
(:mod:`.response`).

Readout (the mean-field readout of ``rate_models``): top-layer rates (spike counts, or a leaky
integrator of the spikes: :data:`READOUTS`) averaged over positions,
``y = hbar . beta / H`` with ``beta [H, n_out]``, trained by the delta rule
``grad beta = hbar^T (softmax(y) - y*) / (N H)``.  Shapes, patch layout, weight layouts and the
initial weights are :mod:`spiking_rhm.network`'s (the rate network's), so a rate and a spiking run
with the same seed start from the same weights.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import torch
from norse.torch.functional.lif import LIFParameters

from spiking_rhm.backends.norse.neurons import layer_gain as layer_gain_of
from spiking_rhm.backends.norse.neurons import (
    INITIAL_POTENTIALS,
    RESETS,
    LIFFeedForwardState,
    initial_lif_state,
    lif_layer_step,
)
from spiking_rhm.backends.norse.traces import (
    Eligibility,
    EligibilityParameters,
    PreTraceParameters,
    PreTraceState,
    SurrogateParameters,
    pre_trace_step,
    surrogate_derivative,
)
from spiking_rhm.errors import ConfigError
from spiking_rhm.network import ARCHITECTURES, NetworkSpec, make_spec, patches, taps_of  # noqa: F401 (re-exported)
from spiking_rhm.network import init_weights as initial_weights

Tensor = torch.Tensor


def build_spec(arch: str, in_channels: int, d: int, s: int, depth: int, width: int, n_out: int) -> NetworkSpec:
    """Shapes of an ``arch`` network on ``in_channels`` x ``d`` inputs (filter = stride = s), no bias:
    :func:`spiking_rhm.network.make_spec`."""
    return make_spec(arch, in_channels, d, s, depth, width, n_out)


# --------------------------------------------------------------------------- parameters
class NorseParameters(NamedTuple):
    """Everything the simulation needs besides weights and inputs."""

    lif: LIFParameters
    pre: PreTraceParameters
    psi: SurrogateParameters
    elig: EligibilityParameters
    dt: float
    drive: float  # g: mean potential above rest per unit of the rate network's pre-activation
    rho_in: tuple[float, ...]  # nominal rate (per step) of each layer's inputs; [0] is the spike code's
    gains: tuple[float, ...]
    reset: str = "zero"  # neurons.RESETS: "zero" (v <- v_reset, Norse) | "subtract" (v <- v - (v_th - v_reset))
    v_init: float | None = None  # membrane potential at the start of a window (None: rest, v_leak)
    readout: str = "counts"  # READOUTS: what the readout integrates -- spike "counts" | leaky "membrane"
    tau_readout_inv: float = 1 / 2e-2  # 1 / tau of the membrane readout (1/s)
    v_spread: float = 0.0  # > 0: each neuron starts each window at v_init + v_spread U, U ~ U[0, 1) (dither)

    @property
    def rho_hidden(self) -> float:
        return self.drive * self.dt * float(self.lif.tau_mem_inv)


def build_parameters(spec: NetworkSpec, input_rate: float, dt: float = 1e-3, tau_mem: float = 1e-2,
                     tau_syn: float = 5e-3, tau_pre: float = 1e-2, tau_elig: float = 2e-2, v_th: float = 1.0,
                     drive: float = 6.0, psi_beta: float = 5.0, v_leak: float | None = 0.5,
                     reset: str = "subtract", v_init: str = "rest", readout: str = "counts",
                     tau_readout: float = 2e-2, layer_gain: Sequence[float] | None = None) -> NorseParameters:
    """Parameters with the default choices of this back end (``docs/spiking.md``).

    Defaults = ``SpikingConfig``'s: rest ``v_leak = 0.5`` (half the default threshold; None: at ``v_th``),
    reset by subtraction, drive ``g = 6``.
    ``readout`` is one of :data:`READOUTS` (``tau_readout``: the membrane readout's time constant, s).
    ``layer_gain`` (threshold balancing): a factor ``c_l`` per hidden layer on the drive, ``gain_l`` of
    :func:`~.neurons.layer_gain` with ``g c_l``; the rates stay in units of ``rho_h = g dt / tau_mem``, so layer l
    reads as the rate layer ``c_l relu(a^l)`` (its rheobase ``(v_th - v_leak) / (g c_l)``).
    ``reset`` names a rule of :data:`~.neurons.RESETS`, ``v_init`` a start potential of
    :data:`~.neurons.INITIAL_POTENTIALS` (``rest``, ``half`` = v_th / 2, or ``uniform``: a draw in
    ``[v_reset, v_th)`` per neuron and window, from the generator handed to :func:`initial_state`).  The BPTT
    surrogate (Norse ``method="super"``) uses ``alpha = psi_beta``, the same function as the eligibility's psi.
    """
    for name, value in (("dt", dt), ("tau_mem", tau_mem), ("tau_syn", tau_syn), ("tau_pre", tau_pre),
                        ("tau_elig", tau_elig), ("v_th", v_th), ("drive", drive), ("psi_beta", psi_beta),
                        ("input_rate", input_rate)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if readout not in READOUTS:
        raise ConfigError(f"unknown readout {readout!r}; valid: {', '.join(READOUTS)}")
    if not (isinstance(tau_readout, (int, float)) and tau_readout > 0):
        raise ConfigError(f"tau_readout must be a positive number of seconds, got {tau_readout!r}")
    if reset not in RESETS:
        raise ConfigError(f"unknown reset {reset!r}; valid: {', '.join(RESETS)}")
    if v_init not in INITIAL_POTENTIALS:
        raise ConfigError(f"unknown v_init {v_init!r}; valid: {', '.join(INITIAL_POTENTIALS)}")
    if v_leak is not None and not (isinstance(v_leak, (int, float)) and math.isfinite(v_leak) and v_leak <= v_th):
        raise ConfigError(f"v_rest must be a number <= v_th = {v_th} (a neuron resting above threshold fires "
                          f"without input), got {v_leak!r}")
    lif = LIFParameters(tau_syn_inv=torch.as_tensor(1 / tau_syn), tau_mem_inv=torch.as_tensor(1 / tau_mem),
                        v_leak=torch.as_tensor(v_th if v_leak is None else v_leak), v_th=torch.as_tensor(v_th),
                        v_reset=torch.as_tensor(0.0), method="super", alpha=torch.as_tensor(psi_beta))
    rho_h = drive * dt / tau_mem
    rho_in = (float(input_rate),) + (rho_h,) * (spec.depth - 1)
    scale = (1.0,) * spec.depth if layer_gain is None else tuple(float(c) for c in layer_gain)
    if len(scale) != spec.depth or not all(math.isfinite(c) and c > 0 for c in scale):
        raise ConfigError(f"layer_gain must hold one positive number per hidden layer ({spec.depth}), got "
                          f"{list(layer_gain)}")
    gains = tuple(layer_gain_of(drive * c, lif, dt, r, K) for c, r, K in zip(scale, rho_in, spec.fan_in))
    start = INITIAL_POTENTIALS[v_init](lif)
    v0 = None if v_init == "rest" else start.low
    return NorseParameters(lif, PreTraceParameters(1 / tau_pre), SurrogateParameters(v_th, psi_beta),
                           EligibilityParameters(1 / tau_elig), dt, drive, rho_in, gains, reset, v0, readout,
                           1 / tau_readout, start.spread)


def float64_parameters(params: NorseParameters) -> NorseParameters:
    """The same parameters with Norse's LIF tensors in float64 (``LIFParameters`` default to float32,
    whose ``dt / tau_mem = 0.10000000149`` would otherwise enter a float64 run): for cross-checks
    against simulators that compute in float64 (Brian2, Lava)."""
    f = lambda x: torch.as_tensor(float(x), dtype=torch.float64)  # noqa: E731
    lif = params.lif
    return params._replace(lif=LIFParameters(tau_syn_inv=f(lif.tau_syn_inv), tau_mem_inv=f(lif.tau_mem_inv),
                                             v_leak=f(lif.v_leak), v_th=f(lif.v_th), v_reset=f(lif.v_reset),
                                             method=lif.method, alpha=f(lif.alpha)))


# --------------------------------------------------------------------------- weights
class Weights(NamedTuple):
    hidden: list[Tensor]  # W^1..W^L, shapes spec.weight_shapes()
    readout: Tensor  # beta [H_L, n_out]

    def parameters(self) -> list[Tensor]:
        return [*self.hidden, self.readout]


def init_weights(spec: NetworkSpec, generator: torch.Generator, dtype=torch.float32, device="cpu") -> Weights:
    """The hidden weights and readout of :func:`spiking_rhm.network.init_weights` (the rate network's)."""
    if spec.bias:
        raise ConfigError("the spiking network has no biases (bias = false)")
    w = initial_weights(spec, generator, dtype, device)
    return Weights(list(w.hidden), w.readout)


# --------------------------------------------------------------------------- simulation
class NetState(NamedTuple):
    lif: tuple[LIFFeedForwardState, ...]
    pre: tuple[PreTraceState, ...]

    def repeat(self, n: int) -> "NetState":
        """The same state for ``n`` copies of the batch (branches of a pair sequence)."""
        rep = lambda x: x.repeat(n, *([1] * (x.dim() - 1)))  # noqa: E731
        return NetState(tuple(LIFFeedForwardState(rep(s.v), rep(s.i)) for s in self.lif),
                        tuple(PreTraceState(rep(s.x)) for s in self.pre))


class WindowResult(NamedTuple):
    counts: list[Tensor]  # spike counts per layer [N, P, H]
    v_mean: list[Tensor]  # mean pre-reset potential per layer [N, P, H]
    steps: int
    readout_in: Tensor | None = None  # what the readout sees, in count units [N, P, H] (READOUTS); None: counts[-1]

    @property
    def readout_counts(self) -> Tensor:
        """The top layer's input to the readout, in spike-count units (``counts[-1]`` for the counts readout)."""
        return self.counts[-1] if self.readout_in is None else self.readout_in


READOUTS = ("counts", "membrane")
"""``counts``: the readout integrates the window's top-layer spike counts (every spike weighs the same);
``membrane``: leaky-integrator readout units, ``u <- k u + (1 - k) z`` (``k = exp(-dt / tau_readout)``) from
``u = 0``, read at the end of the window as ``T u / (1 - k^T)`` (a count-equivalent that weighs late spikes
more; ``tau_readout -> inf`` gives the counts)."""


def initial_state(spec: NetworkSpec, params: NorseParameters, N: int, dtype=torch.float32, device="cpu",
                  generator: torch.Generator | None = None) -> NetState:
    """Every layer at its start potential (``params.v_init``; with ``params.v_spread`` a draw per neuron from
    ``generator``, layer by layer), currents and pre traces at 0."""
    lif = tuple(initial_lif_state((N, P, H), params.lif, dtype, device, params.v_init, params.v_spread, generator)
                for P, H in zip(spec.positions[1:], spec.widths))
    pre = tuple(PreTraceState(torch.zeros(N, P, K, dtype=dtype, device=device))
                for P, K in zip(spec.positions[1:], spec.fan_in))
    return NetState(lif, pre)


Recorder = Callable[[int, int, dict[str, Tensor]], None]


def run_window(spikes: Tensor, weights: Sequence[Tensor], spec: NetworkSpec, params: NorseParameters,
               state: NetState, traces: Sequence[Eligibility] | None = None, plastic: bool = True,
               recorder: Recorder | None = None) -> tuple[WindowResult, NetState]:
    """Simulate ``spikes`` ``[T, N, C, d]`` (the layout of :mod:`spiking_rhm.spikes`) from ``state``.

    With ``traces`` every layer's eligibility steps with ``psi(v_pre)`` and the normalised pre
    trace ``xbar / rho_in``; ``plastic=False`` only lets them decay.  ``recorder(t, l, values)``
    receives ``z, v_pre, current`` (and ``psi, xbar`` with traces) of layer ``l`` at step ``t``.
    """
    T = spikes.shape[0]
    if spikes.dim() != 4 or spikes.shape[2] != spec.in_channels or spikes.shape[3] != spec.positions[0]:
        raise ConfigError(f"input spikes must be [T, N, {spec.in_channels}, {spec.positions[0]}], "
                          f"got {tuple(spikes.shape)}")
    lif, pre = list(state.lif), list(state.pre)
    counts = [torch.zeros_like(s.v) for s in lif]
    v_sum = [torch.zeros_like(s.v) for s in lif]
    membrane = params.readout == "membrane"
    k_out = math.exp(-params.dt * params.tau_readout_inv)
    u = torch.zeros_like(lif[-1].v) if membrane else None
    for t in range(T):
        zs, vs = network_step(spikes[t], weights, spec, params, lif, pre, traces, plastic, recorder, t)
        for l in range(spec.depth):
            counts[l] = counts[l] + zs[l]
            v_sum[l] = v_sum[l] + vs[l]
        if membrane:
            u = k_out * u + (1 - k_out) * zs[-1]  # the top layer's spikes of this step
    readout_in = None if not membrane else u * (T / (1 - k_out ** T)) if T else u
    result = WindowResult(counts, [v / max(T, 1) for v in v_sum], T, readout_in)
    return result, NetState(tuple(lif), tuple(pre))


def network_step(spikes: Tensor, weights: Sequence[Tensor], spec: NetworkSpec, params: NorseParameters,
                 lif: list[LIFFeedForwardState], pre: list[PreTraceState],
                 traces: Sequence[Eligibility] | None = None, plastic: bool = True,
                 recorder: Recorder | None = None, t: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    """One time step of :func:`run_window` for the input spikes ``[N, C, d]`` of step ``t``: advances the
    states ``lif`` and ``pre`` (lists, replaced in place) and the ``traces``; returns every layer's spikes
    ``z`` and pre-reset potential ``v_pre`` (``[N, P, H]``)."""
    need_pre = traces is not None or recorder is not None
    dt = params.dt
    x = spikes.transpose(1, 2)  # channel-last [N, d, C]
    zs, vs = [], []
    for l in range(spec.depth):
        pat = patches(x, spec.patch)
        current = params.gains[l] * spec.connectivity.apply(pat, weights[l])
        z, v_pre, lif[l] = lif_layer_step(current, lif[l], params.lif, dt, params.reset)
        if need_pre:
            xbar, pre[l] = pre_trace_step(pat, pre[l], params.pre, dt)
        if traces is not None:
            psi = surrogate_derivative(v_pre, params.psi)
            traces[l].step(psi, xbar / params.rho_in[l], plastic)
        if recorder is not None:
            values = {"z": z, "v_pre": v_pre, "current": current, "xbar": xbar}
            if traces is not None:
                values["psi"] = psi
            recorder(t, l, values)
        zs.append(z)
        vs.append(v_pre)
        x = z
    return zs, vs


def rates(counts: Tensor, steps: int, params: NorseParameters) -> Tensor:
    """Layer activity for the rules: ``count / (steps rho_h)``, ``[N, P, H] -> [N, H, P]``."""
    return (counts / (steps * params.rho_hidden)).transpose(1, 2)


def tap_inputs(spikes: Tensor, layers: Sequence[Tensor], steps: int, params: NorseParameters, s: int
               ) -> list[Tensor]:
    """Pre-synaptic rates of every layer's taps, ``x^l [N, C, s, P_l]``: the input spikes' ``count / (T rho_in)``
    for layer 1, the rates ``h^{l-1}`` (``layers``, from :func:`rates`) above (branch-local rules)."""
    layer_in = [spikes.sum(0) / (steps * params.rho_in[0]), *layers[:-1]]
    return [taps_of(x, s) for x in layer_in]


def top_rates(counts_top: Tensor, steps: int, params: NorseParameters) -> Tensor:
    """``hbar [N, H]``: the top layer's spike counts ``[N, P, H]`` averaged over positions, in units of rho_h."""
    return counts_top.mean(1) / (steps * params.rho_hidden)


def readout(counts_top: Tensor, steps: int, beta: Tensor, params: NorseParameters) -> tuple[Tensor, Tensor]:
    """``(hbar [N, H], logits [N, n_out])``: position-averaged top rates and ``hbar . beta / H``."""
    hbar = top_rates(counts_top, steps, params)
    return hbar, hbar @ beta / beta.shape[0]


def readout_gradient(hbar: Tensor, logits: Tensor, target: Tensor) -> Tensor:
    """Delta rule = gradient of the mean cross-entropy: ``hbar^T (softmax(y) - y*) / (N H)``."""
    err = torch.softmax(logits, -1) - target
    return hbar.T @ err / (hbar.shape[0] * hbar.shape[1])


def forward_features(spikes: Tensor, weights: Weights, spec: NetworkSpec, params: NorseParameters,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(hbar [N, H], logits [N, n_out])`` of a plain (non-plastic) presentation (``generator``: the dithered
    start potentials', :func:`initial_state`)."""
    state = initial_state(spec, params, spikes.shape[1], spikes.dtype, spikes.device, generator)
    res, _ = run_window(spikes, weights.hidden, spec, params, state)
    return readout(res.readout_counts, res.steps, weights.readout, params)


def forward(spikes: Tensor, weights: Weights, spec: NetworkSpec, params: NorseParameters,
            generator: torch.Generator | None = None) -> Tensor:
    """Logits of a plain (non-plastic) presentation."""
    return forward_features(spikes, weights, spec, params, generator)[1]


def describe(spec: NetworkSpec, params: NorseParameters) -> dict[str, Any]:
    """Plain-data summary for results records."""
    return {"arch": spec.arch, "widths": list(spec.widths), "positions": list(spec.positions),
            "fan_in": list(spec.fan_in), "drive": params.drive, "rho_in": list(params.rho_in),
            "rho_hidden": params.rho_hidden, "psi_beta": params.psi.beta,
            "v_leak": float(params.lif.v_leak), "v_th": float(params.lif.v_th), "reset": params.reset,
            "v_init": float(params.lif.v_leak) if params.v_init is None else params.v_init,
            **({"v_init_spread": params.v_spread} if params.v_spread else {}),
            "readout": params.readout, "tau_readout": 1 / params.tau_readout_inv}


# --------------------------------------------------------------------------- activity and energy proxy
def activity(spikes: Tensor, weights: Weights, spec: NetworkSpec, params: NorseParameters,
             generator: torch.Generator | None = None) -> dict[str, Any]:
    """Spikes and synaptic operations per inference, per layer, of a plain presentation of ``spikes``.

    A spike of a layer-(l-1) neuron (or an input) reaches every unit of the one patch it belongs to:
    ``H_l`` synaptic events (the same for cnn, lcn and the fcn's single patch); a top-layer spike
    reaches the ``n_out`` readout units.  Per layer (input first):

    * ``spikes``: mean spike count per inference (sample); ``synops``: ``spikes_{l-1} x H_l`` into layer l
      (the last entry: ``spikes_L x n_out`` into the readout);
    * ``active``: fraction of units that fired at least once; ``rate_hz``: mean rate per unit;
    * ``max_step_fraction``: the largest fraction of a layer's units (over samples) firing in one step --
      a synchronous volley reads near 1, a rate code near ``rate x dt``.
    """
    N, T = spikes.shape[1], spikes.shape[0]
    per_step: list[list[Tensor]] = [[] for _ in range(spec.depth)]

    def recorder(t, l, values):
        per_step[l].append(values["z"].flatten(1).mean(1))  # [N] fraction of layer l firing at step t

    state = initial_state(spec, params, N, spikes.dtype, spikes.device, generator)
    with torch.no_grad():
        res, _ = run_window(spikes, weights.hidden, spec, params, state, recorder=recorder)
    counts = [spikes.sum(0)] + [c for c in res.counts]  # input [N, C, d], layers [N, P, H]
    spk = [float(c.flatten(1).sum(1).mean()) for c in counts]
    fan_out = list(spec.widths) + [spec.n_out]
    synops = [s * h for s, h in zip(spk, fan_out)]
    units = [c[0].numel() for c in counts]
    dt = params.dt
    return {"layers": ["input"] + [f"layer{l + 1}" for l in range(spec.depth)],
            "spikes": spk, "synops": synops, "synops_total": float(sum(synops)),
            "spikes_total": float(sum(spk[1:])),
            "active": [float((c > 0).to(spikes.dtype).mean()) for c in counts],
            "rate_hz": [s / (n * T * dt) for s, n in zip(spk, units)],
            "max_step_fraction": [float((spikes.flatten(2).mean(2)).max())]
            + [float(torch.stack(f).max()) for f in per_step],
            "steps": T}
