r"""Fixed-point weights: signed ``b``-bit mantissas with one shared scale per layer.

A layer's weights ``w`` become integers ``k = clip(round(w f), lo, hi)`` with one factor ``f`` per layer
(:func:`mantissas`).  The *fill* factor ``f = (2^(b-1) - 1) / max |w|`` (:func:`fill_factor`) makes the
largest weight the largest mantissa, so the layer uses the whole range::

    k = round(w (2^(b-1) - 1) / max |w|)  in [-(2^(b-1) - 1), 2^(b-1) - 1],      w_q = k / f

This is how the Loihi export maps a layer at 8 bits (:func:`hardware.loihi.fixed_point.quantise`: the
mantissas there are the even numbers ``2 k`` in ``[-256, 254]`` of Loihi's mixed sign mode, the factor
``S / (64 2^e 2)`` with ``S`` chosen so that it equals :func:`fill_factor`), so a network trained with
``spiking.weight_bits = 8`` (:func:`quantise_weight` in the forward pass, straight-through: the update of
``w_q`` is applied to the float master weights ``w``) is the network the fixed-point export runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiking_rhm.errors import ConfigError

if TYPE_CHECKING:  # no torch at import: spiking_rhm.config imports this module, and the CLI starts without torch
    from torch import Tensor

WEIGHT_BITS = (2, 16)
"""Smallest and largest ``spiking.weight_bits`` (a sign and at least one magnitude bit; 16 bits leave
float32 master weights room below the step)."""


def check_weight_bits(bits) -> int | None:
    """``bits`` as an int in :data:`WEIGHT_BITS` (``None``: no quantisation); raises :class:`ConfigError`."""
    if bits is None:
        return None
    lo, hi = WEIGHT_BITS
    if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
        raise ConfigError(f"spiking.weight_bits must be an integer from {lo} to {hi} (signed weight bits; Loihi: 8) "
                          f"or none, got {bits!r}")
    return bits


def mantissa_max(bits: int) -> int:
    """The largest mantissa of a signed ``bits``-bit weight with a symmetric range: ``2^(bits-1) - 1``."""
    return 2 ** (bits - 1) - 1


def mantissas(w, factor: float, lo: int, hi: int):
    """``clip(round(w factor), lo, hi)`` (round half to even), in ``w``'s float dtype; ``w`` a torch tensor or a
    numpy array (the same methods, the same rounding)."""
    return (w * factor).round().clip(lo, hi)


def fill_factor(w: Tensor, bits: int) -> float:
    """``(2^(bits-1) - 1) / max |w|``: the largest weight becomes the largest mantissa (0 for all-zero ``w``)."""
    w_abs = float(w.detach().abs().max()) if w.numel() else 0.0
    return mantissa_max(bits) / w_abs if w_abs > 0 else 0.0


def weight_levels(w: Tensor, bits: int) -> Tensor:
    """The integer mantissas ``k`` of ``w`` at ``bits`` bits (float64 tensor of integers)."""
    w64 = w.detach().double()
    m = mantissa_max(bits)
    return mantissas(w64, fill_factor(w64, bits), -m, m)


def quantise_weight(w: Tensor, bits: int) -> Tensor:
    """``w_q = k / f``: the real weights the ``bits``-bit mantissas stand for, in ``w``'s dtype (no gradient)."""
    w64 = w.detach().double()
    f = fill_factor(w64, bits)
    if f == 0.0:
        return w.detach().new_zeros(w.shape)
    m = mantissa_max(bits)
    return (mantissas(w64, f, -m, m) / f).to(w.dtype)


__all__ = ["WEIGHT_BITS", "check_weight_bits", "fill_factor", "mantissa_max", "mantissas", "quantise_weight",
           "weight_levels"]
