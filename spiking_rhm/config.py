"""One validated config object per run, shared by the CLI, the Python API and sweeps.

A :class:`RunConfig` is a tree of frozen dataclasses.  It round-trips through plain
dicts, JSON and TOML; loading rejects unknown keys and wrong types with a
:class:`~spiking_rhm.errors.ConfigError` that names the offending key and what is valid.

Training-set sizes ``P`` accept three spellings (see :func:`resolve_size`):

* an integer ``1000`` -- absolute number of training points;
* ``"4x"`` -- 4 times ``n_c * m**L``, the sample-complexity scale of the RHM;
* ``"max"`` -- every point of the dataset (P_max).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spiking_rhm.errors import ConfigError, RHMParameterError
from spiking_rhm.network import ARCHITECTURES as _NETWORK_ARCHITECTURES
from spiking_rhm.quantisation import check_weight_bits

BACKENDS = ("rate", "norse", "brian2", "lava", "norse-converted")
CONVERTED_READOUTS = ("rate", "refitted")
ARCHITECTURES = tuple(_NETWORK_ARCHITECTURES)  # spiking_rhm.network
SPIKE_CODES = ("rate", "regular", "latency", "population")
SPIKE_RESETS = ("zero", "subtract")
SPIKE_V_INIT = ("rest", "half", "uniform")
SPIKE_READOUTS = ("counts", "membrane")
SPIKE_PLASTICITY = ("window", "online")
DEFAULT_MAX_TEST = 20_000


@dataclass(frozen=True)
class RHMConfig:
    """Random Hierarchy Model parameters and the seed of the rule draw."""

    v: int = 8
    m: int = 4
    n_c: int = 8
    s: int = 2
    L: int = 2
    rule_seed: int = 0

    def build(self):
        """The :class:`~spiking_rhm.rhm.RHM` grammar these parameters describe."""
        from spiking_rhm.rhm import RHM

        return RHM(self.v, self.m, self.n_c, self.s, self.L, seed=self.rule_seed)


@dataclass(frozen=True)
class NetConfig:
    """Hierarchical network: ``cnn`` (shared filters), ``lcn`` (untied), ``fcn`` (dense)."""

    arch: str = "cnn"
    width: int = 256
    bias: bool = False
    depth: int | None = None  # None: the RHM depth L (required for cnn/lcn)


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule.  ``lr=None`` takes the rule's documented default."""

    epochs: int = 100
    batch_size: int = 128
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    stop_train_loss: float = 1e-3  # early stop once the train loss falls below
    min_steps: int = 0  # train at least this many optimiser steps (more epochs for small P)
    validation: float = 0.0  # fraction of the P training points held out for selection (not trained on)
    cosine_period: float = 1.0  # the cosine schedule's half period as a fraction of the steps (the reference: 0.8)
    warmup: float = 0.0  # fraction of the optimiser steps with a linear learning-rate ramp from 0
    clip: float | None = None  # max 2-norm of each parameter group's gradient (hidden, readout); None: no clip
    # train to convergence: the epochs (raised by min_steps) are the budget; stop early once an epoch's train
    # error is <= stop_train_error (None: off), or after `plateau` epochs without a new least train loss (0: off)
    stop_train_error: float | None = None
    plateau: int = 0

    def n_epochs(self, steps_per_epoch: int) -> int:
        """``epochs``, raised so that at least ``min_steps`` optimiser steps are taken."""
        if self.epochs == 0:
            return 0
        return max(self.epochs, -(-self.min_steps // max(1, steps_per_epoch)))


@dataclass(frozen=True)
class SpikingConfig:
    """Spike code and neuron/trace time constants of the spiking back ends (seconds)."""

    code: str = "regular"  # rate (Bernoulli) | regular (clock) | latency | population (docs/spiking.md)
    T: int = 30
    dt: float = 1e-3
    max_rate: float = 200.0  # Hz: rate of an active input (rate, regular) or of its group's neurons (population)
    population_size: int = 4  # population code: neurons per symbol and position
    latency_window: float | None = None  # latency code: the weakest input fires at this time (s); None: (T - 1) dt
    tau_mem: float = 1e-2
    tau_syn: float = 5e-3
    tau_pre: float = 1e-2  # pre-synaptic trace
    tau_elig: float = 2e-2  # low-pass filter of the eligibility trace
    v_th: float = 1.0
    v_rest: float | None = 0.5  # resting potential (LIF v_leak), <= v_th; None: at threshold (v_th)
    reset: str = "subtract"  # zero (v <- 0 after a spike) | subtract (v <- v - v_th: the overshoot is kept)
    v_init: str = "rest"  # membrane at the start of a window: rest | half (v_th / 2) | uniform (norse: a draw in
    #                        [v_reset, v_th) per neuron and window, dither)
    readout: str = "counts"  # the readout integrates spike counts | a leaky "membrane" (tau_readout)
    tau_readout: float = 2e-2  # time constant of the membrane readout (s)
    delay: int = 0  # steps between the two views of a self-supervised pair
    drive: float = 6.0  # g: input gain, mean potential = v_rest + g * a (a = rate pre-activation)
    # threshold balancing: one factor c_l per hidden layer, layer l's potential is v_rest + g c_l a (its rate
    # h^l ~ c_l relu(a^l)); None: c_l = 1 (docs/spiking.md, "Per-layer drive")
    layer_gain: list[float] | None = None
    psi_beta: float = 5.0  # sharpness of the surrogate derivative psi(v)
    eligibility: str = "factored"  # factored (per-step factors, combined when L arrives) | synapse
    eligibility_scale: str = "expected"  # expected (update scaled to the rate rule's, see docs/spiking.md) | none
    neuron: str = "lif"  # lif | cond | adex | two-compartment (brian2; norse: lif only), docs/brian2.md
    neuron_options: Mapping[str, Any] = field(default_factory=dict)  # the model's parameters (docs/brian2.md)
    # s (whole steps): a learning signal arrives this long after it is computed -- brian2: after the window;
    # norse with plasticity = online: d = modulator_delay / dt steps later inside the window
    modulator_delay: float = 0.0
    modulator_tau: float = 0.0  # s: time constant of the arriving modulator (0: one step) (brian2)
    plasticity: str = "window"  # window (one update per window from counts) | online (weights change within it)
    update_every: int = 1  # online plasticity / e-prop: a learning signal every k steps
    # norse: train with the hidden weights quantised to this many signed bits in the forward pass, one shared
    # scale per layer (Loihi's fixed point at 8; straight-through, float master weights); None: float weights
    weight_bits: int | None = None


@dataclass(frozen=True)
class ConvertConfig:
    """How the ``norse-converted`` back end turns its rate-trained network into a spiking one (the simulation
    itself: ``spiking``).  ``normalise``: data-based weight normalisation (Rueckauer et al. 2017) with the
    ``percentile`` of each layer's rate activations on ``n_points`` training points firing at ``target`` (a
    fraction of one spike per step); ``readout``: ``rate`` (the rate network's own readout) or ``refitted``
    (a linear probe on the spiking features of the training points)."""

    normalise: bool = True
    percentile: float = 99.9
    target: float = 1.0
    readout: str = "rate"
    n_points: int = 2048


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run."""

    rhm: RHMConfig = field(default_factory=RHMConfig)
    P: int | str = "2x"
    P_test: int | None = None  # None: min(20 000, P_max - P)
    rule: str = "bp"
    backend: str = "rate"
    seed: int = 0  # split, initialisation and training order
    device: str = "cpu"
    net: NetConfig = field(default_factory=NetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    spiking: SpikingConfig = field(default_factory=SpikingConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)  # backend norse-converted only
    rule_options: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None  # the protocol preset the run was built from (spiking_rhm.presets), for labels
    # hyper-parameter grid (spiking_rhm.selection): setting -> candidate values; the run trains every point on
    # P minus the validation points and keeps the one with the least validation error
    grid: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        validate(self)

    # -- sizes -----------------------------------------------------------------
    def sizes(self) -> tuple[int, int]:
        """``(P, P_test)`` as integers, checked against P_max."""
        rhm = self.rhm.build()
        P = resolve_size(self.P, rhm)
        P_test = default_test_size(rhm.P_max, P) if self.P_test is None else int(self.P_test)
        if P + P_test > rhm.P_max:
            raise RHMParameterError(
                f"P + P_test = {P} + {P_test} = {P + P_test} exceeds P_max = {rhm.P_max} "
                f"for (v, m, n_c, s, L) = {rhm.params.astuple()}; train and test sets must be disjoint"
            )
        return P, P_test

    # -- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        return _from_mapping(cls, data, "config")

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def run_id(self) -> str:
        """Stable 12-hex-digit hash of the config (used to skip finished runs).

        Only fields that differ from their defaults enter the hash, so adding a new
        config field (with a default that keeps the old behaviour) leaves the ids of
        existing records unchanged.
        """
        changed = _non_default(self.to_dict(), _default_dict())
        blob = json.dumps(changed, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(_drop_none(self.to_dict()))


def _non_default(data: dict, defaults: dict) -> dict:
    out = {}
    for key, value in data.items():
        default = defaults.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(default, dict) and value and default:
            sub = _non_default(value, default)
            if sub:
                out[key] = sub
        elif value != default:
            out[key] = value
    return out


_MISSING = object()


@functools.cache
def _default_dict() -> dict:
    return RunConfig().to_dict()


def resolve_size(P: int | str, rhm) -> int:
    """Turn a size spelling (``1000``, ``"4x"``, ``"max"``) into an integer in [1, P_max]."""
    scale = rhm.params.n_c * rhm.params.m ** rhm.params.L
    where = f"(v, m, n_c, s, L) = {rhm.params.astuple()}, P_max = {rhm.P_max}"
    if isinstance(P, bool):
        raise RHMParameterError(f"P must be an integer, 'Nx' or 'max', got {P!r}")
    if isinstance(P, str):
        text = P.strip().lower()
        if text == "max":
            return rhm.P_max
        try:
            if text.endswith("x"):
                value = float(text[:-1]) * scale
                if not math.isfinite(value) or value < 0:
                    raise ValueError
                n = int(round(value))
            else:
                n = int(text)
        except ValueError:
            raise RHMParameterError(
                f"cannot read P = {P!r}: use an integer (1000), a multiple of n_c*m^L = {scale} ('4x') or 'max'"
            ) from None
    elif isinstance(P, (int,)) or (hasattr(P, "__index__")):
        n = int(P)
    elif isinstance(P, float) and P.is_integer():
        n = int(P)
    else:
        raise RHMParameterError(f"P must be an integer, 'Nx' or 'max', got {P!r}")
    if n < 1:
        raise RHMParameterError(f"P must be at least 1, got {n} (from {P!r})")
    if n > rhm.P_max:
        raise RHMParameterError(f"P = {n} exceeds P_max = {rhm.P_max} for {where}")
    return n


def default_test_size(P_max: int, P: int) -> int:
    """Up to 20 000 test points, all remaining points when fewer are left."""
    return int(min(DEFAULT_MAX_TEST, P_max - P))


def validate(cfg: RunConfig) -> None:
    """Cheap consistency checks that need no registry; raises :class:`ConfigError`."""
    from spiking_rhm.rhm import RHMParams

    r = cfg.rhm
    RHMParams(r.v, r.m, r.n_c, r.s, r.L)  # raises RHMParameterError with the reason
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {cfg.backend!r}; valid: {', '.join(BACKENDS)}")
    if cfg.net.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown net.arch {cfg.net.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    if cfg.net.width < 1:
        raise ConfigError(f"net.width must be >= 1, got {cfg.net.width}")
    if _NETWORK_ARCHITECTURES[cfg.net.arch].hierarchical and cfg.net.depth not in (None, r.L):
        raise ConfigError(f"net.depth must equal L = {r.L} for a {cfg.net.arch} (filter = stride = s)")
    if cfg.net.depth is not None and cfg.net.depth < 1:
        raise ConfigError(f"net.depth must be >= 1, got {cfg.net.depth}")
    if cfg.spiking.code not in SPIKE_CODES:
        raise ConfigError(f"unknown spiking.code {cfg.spiking.code!r}; valid: {', '.join(SPIKE_CODES)}")
    if cfg.spiking.T < 1 or not (math.isfinite(cfg.spiking.dt) and cfg.spiking.dt > 0):
        raise ConfigError("spiking.T must be >= 1 and spiking.dt > 0")
    _validate_code(cfg.spiking)
    if cfg.spiking.eligibility not in ("factored", "synapse"):
        raise ConfigError(f"unknown spiking.eligibility {cfg.spiking.eligibility!r}; valid: factored, synapse")
    if cfg.spiking.eligibility_scale not in ("expected", "none"):
        raise ConfigError(f"unknown spiking.eligibility_scale {cfg.spiking.eligibility_scale!r}; valid: expected, none")
    sp = cfg.spiking
    if not (math.isfinite(sp.v_th) and sp.v_th > 0):
        raise ConfigError(f"spiking.v_th must be a positive number, got {sp.v_th}")
    if sp.v_rest is not None and not (math.isfinite(sp.v_rest) and sp.v_rest <= sp.v_th):
        raise ConfigError(f"spiking.v_rest must be a number <= spiking.v_th = {sp.v_th} (a neuron resting above "
                          f"threshold fires without input), got {sp.v_rest}")
    if sp.layer_gain is not None and (
            isinstance(sp.layer_gain, (str, bytes, Mapping)) or not isinstance(sp.layer_gain, (list, tuple))
            or not sp.layer_gain or any(isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c)
                                        or c <= 0 for c in sp.layer_gain)):
        raise ConfigError(f"spiking.layer_gain must be a list of positive numbers, one per hidden layer, got "
                          f"{sp.layer_gain!r}")
    if sp.reset not in SPIKE_RESETS:
        raise ConfigError(f"unknown spiking.reset {sp.reset!r}; valid: {', '.join(SPIKE_RESETS)}")
    if sp.readout not in SPIKE_READOUTS:
        raise ConfigError(f"unknown spiking.readout {sp.readout!r}; valid: {', '.join(SPIKE_READOUTS)}")
    if not (math.isfinite(sp.tau_readout) and sp.tau_readout > 0):
        raise ConfigError(f"spiking.tau_readout must be a positive number of seconds, got {sp.tau_readout}")
    if sp.v_init not in SPIKE_V_INIT:
        raise ConfigError(f"unknown spiking.v_init {sp.v_init!r}; valid: {', '.join(SPIKE_V_INIT)}")
    if sp.v_init == "uniform" and cfg.backend == "brian2":
        raise ConfigError("spiking.v_init = uniform (a dithered start potential per neuron and window) is an option "
                          "of the norse back end; brian2 starts every window at one potential: use rest or half")
    if cfg.spiking.delay < 0:
        raise ConfigError(f"spiking.delay must be >= 0 steps, got {cfg.spiking.delay}")
    _validate_neuron(cfg)
    if sp.plasticity not in SPIKE_PLASTICITY:
        raise ConfigError(f"unknown spiking.plasticity {sp.plasticity!r}; valid: {', '.join(SPIKE_PLASTICITY)}")
    if isinstance(sp.update_every, bool) or not isinstance(sp.update_every, int) or sp.update_every < 1:
        raise ConfigError(f"spiking.update_every must be an integer >= 1 step, got {sp.update_every!r}")
    check_weight_bits(sp.weight_bits)
    if sp.weight_bits is not None and cfg.backend != "norse":
        raise ConfigError(f"spiking.weight_bits (fixed-point-aware training) is an option of the norse back end, "
                          f"not {cfg.backend}")
    _validate_convert(cfg.convert)
    o = cfg.optim
    if o.epochs < 0 or o.batch_size < 1 or o.min_steps < 0 or o.plateau < 0:
        raise ConfigError("optim.epochs, optim.min_steps and optim.plateau must be >= 0 and optim.batch_size >= 1")
    if o.stop_train_error is not None and not (0 <= o.stop_train_error < 1):
        raise ConfigError(f"optim.stop_train_error must be a fraction in [0, 1) or none, got {o.stop_train_error}")
    if o.lr is not None and not (o.lr > 0 and math.isfinite(o.lr)):
        raise ConfigError(f"optim.lr must be a positive number, got {o.lr}")
    if not (0 <= o.validation < 1):
        raise ConfigError(f"optim.validation must be a fraction in [0, 1), got {o.validation}")
    if not (math.isfinite(o.cosine_period) and o.cosine_period > 0):
        raise ConfigError(f"optim.cosine_period must be a positive fraction of the steps, got {o.cosine_period}")
    if not (0 <= o.warmup <= 1):
        raise ConfigError(f"optim.warmup must be a fraction of the steps in [0, 1], got {o.warmup}")
    if o.clip is not None and not (math.isfinite(o.clip) and o.clip > 0):
        raise ConfigError(f"optim.clip must be a positive gradient norm or none, got {o.clip}")
    if o.schedule not in ("cosine", "constant"):
        raise ConfigError(f"unknown optim.schedule {o.schedule!r}; valid: cosine, constant")
    if cfg.P_test is not None and int(cfg.P_test) < 0:
        raise ConfigError(f"P_test must be >= 0, got {cfg.P_test}")
    if cfg.seed < 0 or r.rule_seed < 0:
        raise ConfigError("seeds must be non-negative integers")
    if not isinstance(cfg.rule_options, Mapping):
        raise ConfigError("rule_options must be a table of option = value")
    if cfg.grid:
        from spiking_rhm.selection import check_grid

        check_grid(cfg)


LEGACY_OPERATING_POINT = {"v_rest": None, "reset": "zero", "v_init": "rest"}
"""The operating point of configs stored before ``spiking.reset`` existed (rest at threshold, reset to 0)."""


def with_legacy_operating_point(data: Mapping[str, Any]) -> dict:
    """A stored config dict whose ``spiking`` table predates the operating-point settings gets the operating
    point it ran with (:data:`LEGACY_OPERATING_POINT`) instead of today's defaults; others are returned as they are."""
    data = dict(data)
    sp = data.get("spiking")
    if isinstance(sp, Mapping) and sp and "reset" not in sp:
        data["spiking"] = {**LEGACY_OPERATING_POINT, **sp}
    return data


NEURONS = ("lif", "cond", "adex", "two-compartment")  # spiking_rhm.backends.brian2.equations.NEURON_MODELS


def _validate_neuron(cfg: "RunConfig") -> None:
    """The neuron model and modulator: known names, non-negative times; the detailed models need brian2."""
    sp = cfg.spiking
    if sp.neuron not in NEURONS:
        raise ConfigError(f"unknown spiking.neuron {sp.neuron!r}; valid: {', '.join(NEURONS)}")
    if not isinstance(sp.neuron_options, Mapping):
        raise ConfigError("spiking.neuron_options must be a table of option = value")
    for key in ("modulator_delay", "modulator_tau"):
        value = getattr(sp, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"spiking.{key} must be a number of seconds >= 0, got {value!r}")
    online = cfg.backend == "norse" and sp.plasticity == "online"  # its signals may arrive modulator_delay later
    detailed = sp.neuron != "lif" or sp.neuron_options or sp.modulator_tau or (sp.modulator_delay and not online)
    if detailed and cfg.backend != "brian2":
        raise ConfigError(f"spiking.neuron = {sp.neuron!r} with neuron_options / a modulator needs --backend brian2 "
                          f"(a modulator_delay alone: also norse with spiking.plasticity = online); the "
                          f"{cfg.backend} back end simulates the current-based LIF only")
    if sp.plasticity == "online" and sp.modulator_tau:
        raise ConfigError("spiking.modulator_tau spreads the modulator over the steps after the window (plasticity = "
                          "window); online plasticity delivers each signal at one step, modulator_delay later: set "
                          "spiking.modulator_tau = 0")
    if cfg.backend == "brian2":  # the model's own checks (equations imports no brian2)
        from spiking_rhm.backends.brian2.equations import check_whole_steps, neuron_model

        model = neuron_model(sp.neuron, sp.neuron_options, sp.reset)
        if hasattr(model, "check_rest"):
            model.check_rest(sp.v_th if sp.v_rest is None else sp.v_rest, sp.v_th)
        check_whole_steps(model, sp.modulator_delay, sp.dt)
    elif abs(sp.modulator_delay / sp.dt - round(sp.modulator_delay / sp.dt)) > 1e-6:
        raise ConfigError(f"spiking.modulator_delay = {sp.modulator_delay} s is not a whole number of time steps "
                          f"dt = {sp.dt} s")


def _validate_convert(c: "ConvertConfig") -> None:
    """The conversion settings: a percentile in (0, 100], a target rate in (0, 1], a known readout."""
    if not (math.isfinite(c.percentile) and 0 < c.percentile <= 100):
        raise ConfigError(f"convert.percentile must be a percentile in (0, 100], got {c.percentile}")
    if not (math.isfinite(c.target) and 0 < c.target <= 1):
        raise ConfigError(f"convert.target must be a fraction of one spike per step in (0, 1], got {c.target}")
    if c.readout not in CONVERTED_READOUTS:
        raise ConfigError(f"unknown convert.readout {c.readout!r}; valid: {', '.join(CONVERTED_READOUTS)}")
    if c.n_points < 1:
        raise ConfigError(f"convert.n_points must be >= 1 training point, got {c.n_points}")


def _validate_code(sp: "SpikingConfig") -> None:
    """Per-code parameters: a rate that is a spike probability per step, a group size >= 1, a latency
    window inside the presentation."""
    if not (math.isfinite(sp.max_rate) and 0 < sp.max_rate * sp.dt <= 1):
        raise ConfigError(f"spiking.max_rate must be > 0 and at most 1 / dt = {1 / sp.dt:g} Hz (one spike per "
                          f"step), got {sp.max_rate}")
    if sp.population_size < 1:
        raise ConfigError(f"spiking.population_size must be >= 1 neuron per symbol, got {sp.population_size}")
    if sp.latency_window is not None:
        longest = (sp.T - 1) * sp.dt
        if not (math.isfinite(sp.latency_window) and 0 <= sp.latency_window <= longest + 1e-12):
            raise ConfigError(f"spiking.latency_window must be a time in [0, (T - 1) dt = {longest:g}] s, "
                              f"got {sp.latency_window}")


# ---------------------------------------------------------------------------
# strict loading of nested dataclasses from plain mappings
# ---------------------------------------------------------------------------
@functools.cache
def _fields(cls) -> tuple[dict, list[str]]:
    """(type hints, field names) of a config dataclass (cached: sweeps build thousands of configs)."""
    return typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)]


def _from_mapping(cls, data: Any, where: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table/object, got {type(data).__name__}")
    hints, names = _fields(cls)
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; valid: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as err:  # pragma: no cover - defensive
        raise ConfigError(f"{where}: {err}") from None


def _coerce(value: Any, hint: Any, where: str):
    if dataclasses.is_dataclass(hint):
        return _from_mapping(hint, value, where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} is not a valid {_describe(hint)}")
    if origin is not None and origin.__name__ == "Mapping" or hint is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value  # pragma: no cover


def _describe(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args)


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj


def load_config_file(path: str | Path) -> dict:
    """Read a TOML, YAML or JSON file into a plain dict (errors become :class:`ConfigError`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {str(path)!r}: unknown format {suffix!r}; use .toml, .yaml or .json")
    except ConfigError:
        raise
    except Exception as err:  # parse errors of any of the three formats
        raise ConfigError(f"cannot parse {str(path)!r}: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a table at top level")
    return data
