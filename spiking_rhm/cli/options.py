"""What the commands share: ``--option K=V`` parsing and notes on stderr."""

from __future__ import annotations

import click

from spiking_rhm.errors import ConfigError

RHM_KEYS = ("v", "m", "n_c", "s", "L")


def note(message: str) -> None:
    """One line on stderr, ``note: ...``."""
    click.echo(f"note: {message}", err=True)


def note_default_rhm(data: dict, given: bool) -> None:
    """Say which RHM a run uses when the user gave no RHM parameters (``data``: the run dict)."""
    if given:
        return
    from spiking_rhm.config import RHMConfig

    rhm = {**RHMConfig().__dict__, **(data.get("rhm") or {})}
    note(f"no RHM parameters given: using the default (v, m, n_c, s, L) = "
         f"({', '.join(str(rhm[k]) for k in RHM_KEYS)}); set them with --v --m --nc --s --L")


def parse_option(text: str) -> tuple[list[str], object]:
    """``k=v`` -> (config path, value); the value is read as a TOML literal (number, bool,
    string, list), else kept as the raw string; ``none``/``null`` give None.

    ``k`` without a dot is a rule option (``rule_options.k``); ``section.key`` (e.g.
    ``optim.min_steps``) sets any run setting.
    """
    import tomllib

    if "=" not in text:
        raise ConfigError(f"--option {text!r}: expected key=value")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key:
        raise ConfigError(f"--option {text!r}: empty key")
    if raw.lower() in ("none", "null"):
        value = None
    else:
        try:
            value = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            value = raw
    path = key.split(".")
    return (["rule_options", key] if len(path) == 1 else path), value


def set_path(data: dict, path: list[str], value) -> None:
    """``data[path[0]][path[1]]... = value``, creating tables on the way."""
    for key in path[:-1]:
        node = data.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {'.'.join(path)}: {key!r} is not a section")
        data = node
    data[path[-1]] = value
