"""Name -> class tables (rules, spike codes, pair modes, architectures, ...): one registration and one lookup."""

from __future__ import annotations

from typing import Callable, Mapping, TypeVar

from spiking_rhm.errors import SpikingRHMError, UnknownNameError

T = TypeVar("T")


def registrar(table: dict[str, type], kind: str) -> Callable[[type[T]], type[T]]:
    """A class decorator adding a class to ``table`` under its ``name`` (a second class of that name is an error)."""

    def register(cls: type[T]) -> type[T]:
        name = getattr(cls, "name", "")
        if not name:
            raise TypeError(f"{cls.__name__} has no name")
        if name in table and table[name] is not cls:
            raise TypeError(f"{kind} {name!r} registered twice")
        table[name] = cls
        return cls

    return register


def lookup(table: Mapping[str, T], name: str, kind: str, error: type[SpikingRHMError] = UnknownNameError) -> T:
    """``table[name]``, or a one-line ``error`` naming the valid choices."""
    if name not in table:
        raise error(f"unknown {kind} {name!r}; valid: {', '.join(table)}")
    return table[name]
