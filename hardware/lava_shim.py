r"""Import hook that lets lava-nc 0.10.0 import on Python 3.11.

Python 3.11 rejects unhashable dataclass defaults (bpo-44674), and
``lava/magma/compiler/var_model.py`` declares eight fields as ``x: ByteEncoder = ByteEncoder()``.
:func:`install` puts a meta-path finder at the front of ``sys.meta_path`` that intercepts
only that module, rewrites each such default to
``dataclasses.field(default_factory=ByteEncoder)``, inserts ``import dataclasses`` after the
``from __future__`` import (before it would be a SyntaxError) and compiles the rewritten
source itself (no stale bytecode).  Installed files are never edited.  Call :func:`install`
before the first ``import lava``; it is idempotent.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

TARGET = "lava.magma.compiler.var_model"
_DEFAULT = re.compile(r":(\s*)ByteEncoder(\s*)=\s*ByteEncoder\(\)")
_FUTURE = re.compile(r"^from __future__ import[^\n]*\n", re.MULTILINE)


def patch_source(source: str) -> str:
    """Rewrite ``ByteEncoder()`` defaults to ``dataclasses.field(default_factory=ByteEncoder)``."""
    patched, n = _DEFAULT.subn(r":\1ByteEncoder\2= dataclasses.field(default_factory=ByteEncoder)", source)
    if n == 0:
        return source
    future = list(_FUTURE.finditer(patched))
    at = future[-1].end() if future else _docstring_end(patched)
    return patched[:at] + "import dataclasses\n" + patched[at:]


def _docstring_end(source: str) -> int:
    """Offset just after a leading module docstring (0 when there is none)."""
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return 0
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines = source.splitlines(keepends=True)
        return sum(len(line) for line in lines[: body[0].end_lineno])
    return 0


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Source loader that compiles the patched source and never uses cached bytecode."""

    def get_code(self, fullname):
        source = self.get_data(self.get_filename(fullname)).decode("utf-8")
        return compile(patch_source(source), self.get_filename(fullname), "exec", dont_inherit=True)


class LavaDataclassFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that intercepts exactly one module (``target``) and patches its source."""

    def __init__(self, target: str = TARGET):
        self.target = target

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.target:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin)
        return spec


def install(target: str = TARGET) -> LavaDataclassFinder:
    """Insert the finder for ``target`` at the front of ``sys.meta_path`` (once; returns it)."""
    for finder in sys.meta_path:
        if isinstance(finder, LavaDataclassFinder) and finder.target == target:
            return finder
    finder = LavaDataclassFinder(target)
    sys.meta_path.insert(0, finder)
    return finder


def uninstall(target: str = TARGET) -> None:
    """Remove the finder(s) for ``target`` (for tests)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not (isinstance(f, LavaDataclassFinder) and f.target == target)]
