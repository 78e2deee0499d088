"""Exceptions raised on bad user input.

Every error a user can cause derives from :class:`SpikingRHMError` (a ``ValueError``);
the CLI prints its message as one line on stderr and exits with code 2.
"""


class SpikingRHMError(ValueError):
    """Base class of every user-facing error of spiking-rhm."""


class RHMParameterError(SpikingRHMError):
    """Invalid Random Hierarchy Model parameters (v, m, n_c, s, L) or sizes (P, P_test)."""


class ConfigError(SpikingRHMError):
    """A malformed or inconsistent run/sweep configuration."""


class UnknownNameError(SpikingRHMError):
    """An unknown rule, back end, network or spike code."""


class BackendUnavailableError(SpikingRHMError):
    """A back end whose optional dependency is not installed."""
