r"""RHM inputs as spike trains for the Norse back end (codes of :mod:`spiking_rhm.spikes`).

Each code also gives the *nominal rate* ``rho_0`` (spikes per step of an active input) that
normalises the first layer's current and pre trace::

    rate        rho_0 = max_rate * dt          (Bernoulli)
    regular     rho_0 = max_rate * dt          (a clock: floor or ceil of T max_rate dt spikes per window)
    population  rho_0 = max_rate * dt          (rate_on = max_rate, n = population_size neurons per symbol)
    latency     rho_0 = 1 / T                  (one spike per active input per window, t_last = latency_window)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from spiking_rhm import spikes as spike_codes
from spiking_rhm.errors import ConfigError

Tensor = torch.Tensor


class InputCode:
    """How a code's parameters come from ``spiking`` settings, and its nominal rate per step."""

    name: ClassVar[str] = ""

    @staticmethod
    def params(max_rate: float, population_size: int, latency_window: float | None) -> dict[str, Any]:
        return {}

    @staticmethod
    def nominal_rate(max_rate: float, dt: float, T: int) -> float:
        raise NotImplementedError


class RateInput(InputCode):
    name = "rate"

    @staticmethod
    def params(max_rate, population_size, latency_window):
        return {"max_rate": max_rate}

    @staticmethod
    def nominal_rate(max_rate, dt, T):
        return max_rate * dt


class RegularInput(RateInput):
    """The rate code's nominal rate, spikes on a clock (``spikes.regular_code``)."""

    name = "regular"


class PopulationInput(RateInput):
    """The rate code's nominal rate; ``population_size`` neurons per symbol and position at ``rate_on``."""

    name = "population"

    @staticmethod
    def params(max_rate, population_size, latency_window):
        return {"rate_on": max_rate, "n": population_size}


class LatencyInput(InputCode):
    """One spike per active input, in the first ``latency_window`` seconds (None: the whole window)."""

    name = "latency"

    @staticmethod
    def params(max_rate, population_size, latency_window):
        return {} if latency_window is None else {"t_last": latency_window}

    @staticmethod
    def nominal_rate(max_rate, dt, T):
        return 1.0 / T


INPUT_CODES: dict[str, type[InputCode]] = {c.name: c for c in (RateInput, RegularInput, PopulationInput,
                                                                LatencyInput)}


class SpikeEncoder:
    """Turns one-hot inputs ``[N, v, d]`` into spikes ``[T, N, C, d]`` with fixed code parameters."""

    def __init__(self, code: str, T: int, dt: float, max_rate: float, v: int, population_size: int = 4,
                 latency_window: float | None = None):
        if code not in INPUT_CODES:
            raise ConfigError(f"unknown spike code {code!r}; valid: {', '.join(INPUT_CODES)}")
        self.code, self.T, self.dt = code, int(T), float(dt)
        self.params = INPUT_CODES[code].params(max_rate, population_size, latency_window)
        p = spike_codes.make_params(code, **self.params)
        self.channels = spike_codes.code_class(code).n_channels(v, p)
        self.nominal_rate = INPUT_CODES[code].nominal_rate(max_rate, dt, T)

    @classmethod
    def from_config(cls, spiking, v: int) -> "SpikeEncoder":
        """The encoder of a :class:`~spiking_rhm.config.SpikingConfig` for ``v`` symbols."""
        return cls(spiking.code, spiking.T, spiking.dt, spiking.max_rate, v, spiking.population_size,
                   spiking.latency_window)

    def __call__(self, x_onehot: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return spike_codes.encode(x_onehot, self.code, self.T, self.dt, generator=generator, **self.params)
