"""Torch device selection shared by the back ends."""

from __future__ import annotations

from spiking_rhm.errors import ConfigError


def resolve_device(name: str):
    """``torch.device(name)``, with a clear error for unknown names and for CUDA without a GPU."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu or cuda[:n]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device
