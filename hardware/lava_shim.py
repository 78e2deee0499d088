r"""Import hook that lets lava-nc 0.10.0 import on Python 3.11 (and next to other multiprocessing users).

Two source patches, each applied by a meta-path finder at the front of ``sys.meta_path`` that
intercepts exactly one module and compiles the rewritten source itself (no stale bytecode);
installed files are never edited.  Call :func:`install` before the first ``import lava``; it
is idempotent.

* ``lava.magma.compiler.var_model``: Python 3.11 rejects unhashable dataclass defaults
  (bpo-44674), and the module declares eight fields as ``x: ByteEncoder = ByteEncoder()``.
  :func:`patch_source` rewrites each such default to ``dataclasses.field(default_factory=ByteEncoder)``
  and inserts ``import dataclasses`` after the ``from __future__`` import (before it would be a
  SyntaxError).
* ``lava.magma.runtime.message_infrastructure.multiprocessing`` calls
  ``mp.set_start_method('fork')`` at import, which raises ``RuntimeError: context has already
  been set`` once anything created a multiprocessing object first (a tqdm progress bar does).
  :func:`patch_start_method` makes the call a no-op when the start method already is ``fork``,
  and forces ``fork`` otherwise (Lava's runtime needs it: its processes inherit this hook).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

TARGET = "lava.magma.compiler.var_model"
START_METHOD_TARGET = "lava.magma.runtime.message_infrastructure.multiprocessing"
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


_SET_FORK = re.compile(r"""mp\.set_start_method\((['"])fork\1\)""")


def patch_start_method(source: str) -> str:
    """Make Lava's import-time ``mp.set_start_method('fork')`` tolerate an already chosen start method."""
    return _SET_FORK.sub("(mp.get_start_method(allow_none=True) == 'fork' or mp.set_start_method('fork', force=True))",
                         source)


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


PATCHES = {TARGET: patch_source, START_METHOD_TARGET: patch_start_method}


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Source loader that compiles the patched source and never uses cached bytecode."""

    def __init__(self, fullname, path, patch=patch_source):
        super().__init__(fullname, path)
        self.patch = patch

    def get_code(self, fullname):
        source = self.get_data(self.get_filename(fullname)).decode("utf-8")
        return compile(self.patch(source), self.get_filename(fullname), "exec", dont_inherit=True)


class LavaDataclassFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that intercepts exactly one module (``target``) and patches its source.

    ``patch`` defaults to the module's entry in :data:`PATCHES` (the dataclass fix for others).
    """

    def __init__(self, target: str = TARGET, patch=None):
        self.target = target
        self.patch = patch or PATCHES.get(target, patch_source)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.target:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin, self.patch)
        return spec


def install(target: str | None = None) -> LavaDataclassFinder:
    """Insert the finder for ``target`` (default: every module of :data:`PATCHES`) at the front of
    ``sys.meta_path``, once; returns the (first) finder."""
    finders = [_install_one(t) for t in ([target] if target is not None else list(PATCHES))]
    return finders[0]


def _install_one(target: str) -> LavaDataclassFinder:
    for finder in sys.meta_path:
        if isinstance(finder, LavaDataclassFinder) and finder.target == target:
            return finder
    finder = LavaDataclassFinder(target)
    sys.meta_path.insert(0, finder)
    return finder


def uninstall(target: str | None = None) -> None:
    """Remove the finder(s) for ``target`` (default: all of :data:`PATCHES`; for tests)."""
    targets = {target} if target is not None else set(PATCHES)
    sys.meta_path[:] = [f for f in sys.meta_path if not (isinstance(f, LavaDataclassFinder) and f.target in targets)]
