"""``--option K=V`` parsing shared by the commands that build run configs."""

from __future__ import annotations

from spiking_rhm.errors import ConfigError


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
