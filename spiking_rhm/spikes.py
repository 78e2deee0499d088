r"""Spike codes of one-hot RHM inputs.

Every code turns a one-hot (or, more generally, intensity) input ``x`` of shape
``[N, v, d]`` -- N samples, v symbol channels, d = s^L positions, values in [0, 1] --
into a float 0/1 spike tensor in **time-first layout** ``[T, N, channels, d]``:

==============  ==========  ==============================================================
code            channels    spike at step k (time t_k = k * dt)
==============  ==========  ==============================================================
``rate``        v           Bernoulli, p = dt * (x * max_rate + (1 - x) * background_rate)
``regular``     v           deterministic clock at r = x * max_rate: a spike at step k iff
                            floor((k + 1) r dt + phi) > floor(k r dt + phi), phase phi in [0, 1)
                            (random per input, or one fixed ``phase``); count over T steps =
                            floor(T r dt + phi), i.e. floor or ceil of T r dt
``latency``     v           exactly once at k(x) = round((t_first + (1 - x)(t_last - t_first)) / dt)
                            if x > 0 (and k(x) < T); never if x = 0
``population``  v * n       group of n neurons per (symbol, position); neuron (a, i) is
                            channel a * n + i, Bernoulli with p = dt * (x_a * rate_on + (1 - x_a) * rate_off)
==============  ==========  ==============================================================

Rates are in Hz, times in seconds.  Random codes draw from an optional
:class:`torch.Generator` (on the generator's device, then moved to ``x.device``, so that
one seed gives the same spikes on every device); without one they use torch's global RNG.

Use the functions directly (:func:`rate_code`, :func:`regular_code`, :func:`latency_code`,
:func:`population_code`) or by name through :func:`encode`; the codes are small
registered classes (:func:`available_codes`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.registry import lookup, registrar

Tensor = torch.Tensor


class RateParams(NamedTuple):
    """Rate code: active channels fire at ``max_rate``, inactive at ``background_rate`` (Hz)."""

    max_rate: float = 200.0
    background_rate: float = 0.0


class RegularParams(NamedTuple):
    """Regular (clock-like) rate code: active channels fire every ``1 / max_rate`` s; ``phase`` in [0, 1)
    of the first period for every input, or ``None``: an independent uniform phase per input (so that
    inputs do not fire in synchrony; the count per window is still deterministic up to one spike)."""

    max_rate: float = 200.0
    phase: float | None = None


class LatencyParams(NamedTuple):
    """Latency code: intensity 1 fires at ``t_first``, intensity -> 0+ at ``t_last`` (s).

    ``t_last = None`` means the last step of the window, ``(T - 1) * dt``.
    """

    t_first: float = 0.0
    t_last: float | None = None


class PopulationParams(NamedTuple):
    """Population code: ``n`` neurons per (symbol, position); the active symbol's group fires
    at ``rate_on``, every other group at ``rate_off`` (Hz)."""

    n: int = 4
    rate_on: float = 200.0
    rate_off: float = 0.0


# -- validation helpers --------------------------------------------------------------------
def _check_steps(T: Any) -> int:
    if isinstance(T, bool) or not isinstance(T, int) and not (hasattr(T, "__index__")):
        raise ConfigError(f"T (number of time steps) must be an integer >= 1, got {T!r}")
    T = int(T)
    if T < 1:
        raise ConfigError(f"T (number of time steps) must be >= 1, got {T}")
    return T


def _check_dt(dt: Any) -> float:
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}") from None
    if not (math.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt must be a positive number of seconds, got {dt!r}")
    return dt


def _check_rate(name: str, rate: Any, dt: float) -> float:
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a rate in Hz, got {rate!r}") from None
    if not (math.isfinite(rate) and rate >= 0):
        raise ConfigError(f"{name} must be a finite rate >= 0 Hz, got {rate!r}")
    if rate * dt > 1:
        raise ConfigError(
            f"{name} * dt = {rate} * {dt} = {rate * dt:g} > 1 is not a spike probability per step; "
            f"use {name} <= {1 / dt:g} Hz or a smaller dt"
        )
    return rate


def _check_input(x: Any) -> Tensor:
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"spike codes take a torch tensor [N, v, d], got {type(x).__name__}")
    if x.dim() != 3:
        raise ConfigError(f"spike codes take one-hot inputs of shape [N, v, d], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ConfigError(
            f"spike codes take float one-hot inputs [N, v, d], got dtype {x.dtype} "
            "(use spiking_rhm.rhm.onehot for integer symbol ids)"
        )
    if x.numel() and not bool(((x >= 0) & (x <= 1)).all()):
        raise ConfigError("spike-code inputs must lie in [0, 1] (one-hot or intensities)")
    return x


def uniform_draws(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) draws of ``shape``: on the generator's device, returned on ``like.device``."""
    if generator is None:
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    draws = torch.rand(shape, generator=generator, dtype=like.dtype, device=generator.device)
    return draws.to(like.device)


def _bernoulli(prob: Tensor, T: int, generator: torch.Generator | None) -> Tensor:
    """Independent spikes ``[T, *prob.shape]`` with P(spike) = prob at every step."""
    return (uniform_draws((T, *prob.shape), prob, generator) < prob).to(prob.dtype)


# -- the codes -----------------------------------------------------------------------------
def rate_code(x: Tensor, T: int, dt: float = 1e-3, p: RateParams = RateParams(),
              generator: torch.Generator | None = None) -> Tensor:
    r"""Bernoulli rate code, ``[N, v, d] -> [T, N, v, d]``.

    ``P(z[k, n, a, j] = 1) = dt * (x[n, a, j] * max_rate + (1 - x[n, a, j]) * background_rate)``,
    independently for every step k.
    """
    x = _check_input(x)
    T, dt = _check_steps(T), _check_dt(dt)
    on = _check_rate("max_rate", p.max_rate, dt)
    off = _check_rate("background_rate", p.background_rate, dt)
    prob = dt * (x * on + (1 - x) * off)
    return _bernoulli(prob, T, generator)


def regular_code(x: Tensor, T: int, dt: float = 1e-3, p: RegularParams = RegularParams(),
                 generator: torch.Generator | None = None) -> Tensor:
    r"""Deterministic clock code, ``[N, v, d] -> [T, N, v, d]``.

    With ``r = x max_rate dt`` spikes per step and phase ``phi``: ``z[k] = floor((k + 1) r + phi) -
    floor(k r + phi)`` (0 or 1 since ``r <= 1``); the window holds ``floor(T r + phi)`` spikes, one every
    ``1 / r`` steps.  ``x = 0`` never fires.
    """
    x = _check_input(x)
    T, dt = _check_steps(T), _check_dt(dt)
    r = dt * _check_rate("max_rate", p.max_rate, dt) * x
    if p.phase is None:
        phase = uniform_draws(tuple(x.shape), x, generator)
    else:
        if isinstance(p.phase, bool) or not isinstance(p.phase, (int, float)) or not 0 <= p.phase < 1:
            raise ConfigError(f"phase must be a number in [0, 1) or None (random per input), got {p.phase!r}")
        phase = torch.full_like(x, float(p.phase))
    k = torch.arange(T + 1, dtype=torch.float64, device=x.device).view(-1, *([1] * x.dim()))
    level = torch.floor(k * r.double() + phase.double())  # [T + 1, N, v, d]
    return (level[1:] - level[:-1]).to(x.dtype)


def latency_steps(x: Tensor, T: int, dt: float = 1e-3, p: LatencyParams = LatencyParams()) -> Tensor:
    r"""Spike step of every input of the latency code (int64, ``-1`` for no spike).

    ``k(x) = round((t_first + (1 - x) * (t_last - t_first)) / dt)`` for ``x > 0`` and
    ``k(x) < T``; ``-1`` otherwise.
    """
    x = _check_input(x)
    T, dt = _check_steps(T), _check_dt(dt)
    t_last = (T - 1) * dt if p.t_last is None else float(p.t_last)
    t_first = float(p.t_first)
    if not (math.isfinite(t_first) and t_first >= 0):
        raise ConfigError(f"t_first must be a time >= 0 s, got {p.t_first!r}")
    if round(t_first / dt) >= T:
        raise ConfigError(
            f"t_first = {t_first} s is at step {round(t_first / dt)}, outside the window of T = {T} steps "
            f"of dt = {dt} s; active inputs would never fire"
        )
    if not (math.isfinite(t_last) and t_last >= t_first):
        raise ConfigError(f"t_last must be a time >= t_first = {t_first} s, got {t_last!r}")
    times = t_first + (1 - x.double()) * (t_last - t_first)
    steps = torch.round(times / dt).long()
    return torch.where((x > 0) & (steps < T), steps, torch.full_like(steps, -1))


def latency_code(x: Tensor, T: int, dt: float = 1e-3, p: LatencyParams = LatencyParams(),
                 generator: torch.Generator | None = None) -> Tensor:
    r"""Time-to-first-spike code, ``[N, v, d] -> [T, N, v, d]``; deterministic.

    An input of intensity ``x > 0`` fires exactly once, at step
    ``k(x) = round((t_first + (1 - x)(t_last - t_first)) / dt)`` (a one-hot symbol at
    ``round(t_first / dt)``); ``x = 0`` never fires.  ``generator`` is accepted for a
    uniform signature and not used.
    """
    steps = latency_steps(x, T, dt, p)
    T = int(T)
    grid = torch.arange(T, device=x.device).view(T, 1, 1, 1)
    return (grid == steps.unsqueeze(0)).to(x.dtype)


def population_code(x: Tensor, T: int, dt: float = 1e-3, p: PopulationParams = PopulationParams(),
                    generator: torch.Generator | None = None) -> Tensor:
    r"""Population rate code, ``[N, v, d] -> [T, N, v * n, d]``.

    Neuron i of the group of symbol a at position j is channel ``a * n + i`` and fires with
    ``P(spike per step) = dt * (x[a, j] * rate_on + (1 - x[a, j]) * rate_off)``.
    """
    x = _check_input(x)
    T, dt = _check_steps(T), _check_dt(dt)
    if isinstance(p.n, bool) or not isinstance(p.n, int) or p.n < 1:
        raise ConfigError(f"population size n must be an integer >= 1, got {p.n!r}")
    on = _check_rate("rate_on", p.rate_on, dt)
    off = _check_rate("rate_off", p.rate_off, dt)
    prob = dt * (x * on + (1 - x) * off)
    return _bernoulli(prob.repeat_interleave(p.n, dim=1), T, generator)


# -- registry ------------------------------------------------------------------------------
class SpikeCode:
    """A spike code: a name, a NamedTuple of parameters and an encoding function."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = tuple
    summary: ClassVar[str] = ""

    @staticmethod
    def n_channels(v: int, p: Any) -> int:
        """Channels per position of the spike tensor for ``v`` symbols."""
        return v

    @staticmethod
    def encode(x: Tensor, T: int, dt: float, p: Any, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


_CODES: dict[str, type[SpikeCode]] = {}


register = registrar(_CODES, "spike code")
"""Class decorator adding a spike code under ``cls.name``."""


@register
class RateCode(SpikeCode):
    name = "rate"
    Params = RateParams
    summary = "Bernoulli spikes at max_rate (active) / background_rate (inactive)"
    encode = staticmethod(rate_code)


@register
class RegularCode(SpikeCode):
    name = "regular"
    Params = RegularParams
    summary = "deterministic clock at max_rate (active inputs), a random phase per input"
    encode = staticmethod(regular_code)


@register
class LatencyCode(SpikeCode):
    name = "latency"
    Params = LatencyParams
    summary = "one spike per active symbol at t_first (earlier for stronger inputs)"
    encode = staticmethod(latency_code)


@register
class PopulationCode(SpikeCode):
    name = "population"
    Params = PopulationParams
    summary = "n neurons per symbol and position; active group at rate_on, others at rate_off"
    encode = staticmethod(population_code)

    @staticmethod
    def n_channels(v: int, p: Any) -> int:
        return v * p.n


def available_codes() -> dict[str, type[SpikeCode]]:
    """Registered spike codes by name, sorted."""
    return dict(sorted(_CODES.items()))


def code_class(name: str) -> type[SpikeCode]:
    return lookup(available_codes(), name, "spike code")


def make_params(code: str, **params: Any) -> Any:
    """The parameter NamedTuple of ``code`` from keywords; unknown keywords raise."""
    cls = code_class(code)
    unknown = sorted(set(params) - set(cls.Params._fields))
    if unknown:
        raise ConfigError(
            f"spike code {code!r} takes no parameter(s) {', '.join(unknown)}; valid: {', '.join(cls.Params._fields)}"
        )
    return cls.Params(**params)


def encode(x: Tensor, code: str, T: int, dt: float = 1e-3, generator: torch.Generator | None = None,
           **params: Any) -> Tensor:
    """Encode ``x`` ``[N, v, d]`` with the spike code named ``code``: ``[T, N, channels, d]``.

    ``params`` are the fields of the code's parameter NamedTuple (e.g. ``max_rate=100.0``).
    """
    p = make_params(code, **params)
    return code_class(code).encode(x, T, dt, p, generator)


# -- figure --------------------------------------------------------------------------------
def plot_spike_code(spikes: Tensor, path: str | Path, sample: int = 0, dt: float | None = None,
                    title: str | None = None) -> Path:
    """Raster of one sample of a spike tensor ``[T, N, channels, d]``, saved to ``path`` (PNG).

    Rows are (position j, channel c), position-major; a colour per position.  The time
    axis is in steps, or in ms when ``dt`` (s) is given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(spikes, torch.Tensor) or spikes.dim() != 4:
        raise ConfigError("plot_spike_code takes a spike tensor [T, N, channels, d]")
    T, N, C, d = spikes.shape
    if not 0 <= sample < N:
        raise ConfigError(f"sample {sample} out of range for a batch of {N}")
    z = spikes[:, sample].detach().to("cpu", torch.float32)  # [T, C, d]
    t, c, j = torch.nonzero(z > 0, as_tuple=True)
    scale = 1.0 if dt is None else dt * 1e3
    fig, ax = plt.subplots(figsize=(7, max(2.5, min(12, 0.08 * C * d + 1.5))))
    colors = plt.get_cmap("tab10")
    for pos in range(d):
        mask = j == pos
        ax.scatter((t[mask].numpy() + 0.5) * scale, (pos * C + c[mask]).numpy(), marker="|", s=40,
                   color=colors(pos % 10), label=f"position {pos}" if d <= 10 else None)
    for pos in range(1, d):
        ax.axhline(pos * C - 0.5, color="0.85", lw=0.5)
    ax.set_xlim(0, T * scale)
    ax.set_ylim(-0.5, C * d - 0.5)
    ax.set_xlabel("time (ms)" if dt is not None else "time step")
    ax.set_ylabel("position x channel")
    ax.set_title(title or f"spike raster, sample {sample} ({int(z.sum())} spikes)")
    if d <= 10 and len(t):
        ax.legend(loc="upper right", fontsize=7, markerscale=0.7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
