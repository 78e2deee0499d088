r"""RHM inputs as spike trains for the Norse back end (codes of :mod:`spiking_rhm.spikes`).

Each code also gives the *nominal rate* ``rho_0`` (spikes per step of an active input) that
normalises the first layer's current and pre trace::

    rate        rho_0 = max_rate * dt
    population  rho_0 = max_rate * dt          (rate_on = max_rate, n = 4 neurons per symbol)
    latency     rho_0 = 1 / T                  (one spike per active input per window)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from spiking_rhm import spikes as spike_codes
from spiking_rhm.errors import ConfigError

Tensor = torch.Tensor


class InputCode:
    name: ClassVar[str] = ""

    @staticmethod
    def params(max_rate: float) -> dict[str, Any]:
        return {}

    @staticmethod
    def nominal_rate(max_rate: float, dt: float, T: int) -> float:
        raise NotImplementedError


class RateInput(InputCode):
    name = "rate"

    @staticmethod
    def params(max_rate):
        return {"max_rate": max_rate}

    @staticmethod
    def nominal_rate(max_rate, dt, T):
        return max_rate * dt


class PopulationInput(RateInput):
    """The rate code's nominal rate; its on-rate parameter is called ``rate_on``."""

    name = "population"

    @staticmethod
    def params(max_rate):
        return {"rate_on": max_rate}


class LatencyInput(InputCode):
    name = "latency"

    @staticmethod
    def nominal_rate(max_rate, dt, T):
        return 1.0 / T


INPUT_CODES: dict[str, type[InputCode]] = {c.name: c for c in (RateInput, PopulationInput, LatencyInput)}


class SpikeEncoder:
    """Turns one-hot inputs ``[N, v, d]`` into spikes ``[T, N, C, d]`` with fixed code parameters."""

    def __init__(self, code: str, T: int, dt: float, max_rate: float, v: int):
        if code not in INPUT_CODES:
            raise ConfigError(f"unknown spike code {code!r}; valid: {', '.join(INPUT_CODES)}")
        self.code, self.T, self.dt = code, int(T), float(dt)
        self.params = INPUT_CODES[code].params(max_rate)
        p = spike_codes.make_params(code, **self.params)
        self.channels = spike_codes.code_class(code).n_channels(v, p)
        self.nominal_rate = INPUT_CODES[code].nominal_rate(max_rate, dt, T)

    def __call__(self, x_onehot: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return spike_codes.encode(x_onehot, self.code, self.T, self.dt, generator=generator, **self.params)
