"""``spiking-rhm rules`` without importing torch: the metadata of the registered rules read from their source.

The rule modules import torch (seconds); their class attributes ``name, family, supervised, summary`` are
literals, so :func:`rule_rows` reads them with :mod:`ast`, resolving inherited attributes in method resolution
order.  Anything it cannot read statically (a computed attribute, a class registered another way, two classes
of one name) gives None and the command imports the registry instead; a test checks that both agree.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

FIELDS = ("name", "family", "supervised", "summary")


class _NotStatic(Exception):
    pass


def rule_rows(folder: Path | None = None) -> list[tuple[str, str, bool, str]] | None:
    """``(name, family, supervised, summary)`` of every ``@register`` class in ``folder`` (default
    ``spiking_rhm/rules``), sorted by name; None when they cannot be read statically."""
    if folder is None:
        spec = importlib.util.find_spec("spiking_rhm.rules")  # imports spiking_rhm, not spiking_rhm.rules
        if spec is None or spec.origin is None:
            return None
        folder = Path(spec.origin).parent
    try:
        classes = _read_classes(Path(folder))
        rows = []
        for cls, (_, _, registered) in classes.items():
            if registered:
                values = {field: _inherited(classes, cls, field) for field in FIELDS}
                rows.append((values["name"], values["family"], values["supervised"], values["summary"]))
    except (_NotStatic, SyntaxError, OSError, ValueError, RecursionError):
        return None
    return sorted(rows)


def _read_classes(folder: Path) -> dict[str, tuple[list[str], dict, bool]]:
    """class name -> (base names, literal FIELDS it sets, decorated with @register)."""
    classes: dict[str, tuple[list[str], dict, bool]] = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            if node.name in classes:
                raise _NotStatic(node.name)
            attrs = {}
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                    target, value = stmt.targets[0], stmt.value
                elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                    target, value = stmt.target, stmt.value
                else:
                    continue
                if isinstance(target, ast.Name) and target.id in FIELDS:
                    attrs[target.id] = ast.literal_eval(value)  # ValueError when not a literal
            registered = any(isinstance(d, ast.Name) and d.id == "register" for d in node.decorator_list)
            # None: a base that is not a plain name (e.g. ``enum.Enum``); only an error if a rule inherits from it
            bases = [b.id if isinstance(b, ast.Name) else None for b in node.bases]
            classes[node.name] = (bases, attrs, registered)
    return classes


def _mro(classes: dict, name: str) -> list[str]:
    """C3 linearisation over the classes read (bases outside them, e.g. ``object``, are skipped)."""
    if None in classes[name][0]:
        raise _NotStatic(name)
    bases = [b for b in classes[name][0] if b in classes]
    sequences = [_mro(classes, b) for b in bases] + [bases]
    out = [name]
    while any(sequences):
        for seq in sequences:
            head = seq[0] if seq else None
            if head is not None and not any(head in other[1:] for other in sequences):
                break
        else:
            raise _NotStatic(name)  # inconsistent hierarchy
        out.append(head)
        sequences = [[c for c in seq if c != head] for seq in sequences]
    return out


def _inherited(classes: dict, name: str, field: str):
    for cls in _mro(classes, name):
        if field in classes[cls][1]:
            return classes[cls][1][field]
    raise _NotStatic(f"{name}.{field}")


def check_rule_names(names, extra=()) -> None:
    """Raise the registry's one-line :class:`~spiking_rhm.errors.UnknownNameError` for a name that is not a
    registered rule (nor one of ``extra``), read from the rule sources without importing torch; when the
    sources cannot be read statically, nothing is checked here and the registry checks later."""
    from spiking_rhm.errors import UnknownNameError

    rows = rule_rows()
    if rows is None:
        return
    valid = [row[0] for row in rows] + [name for name in extra if name not in {row[0] for row in rows}]
    for name in names:
        if name not in valid:
            raise UnknownNameError(f"unknown rule {name!r}; valid: {', '.join(valid)}")
