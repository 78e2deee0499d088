"""Atomic file writes: a temporary file in the target's directory, fsync, then :func:`os.replace`.

A process killed mid-write leaves the previous file (or none) in place, never a truncated one.
Every writer of results, data, checkpoints and NIR files goes through :func:`atomic_write`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

from spiking_rhm.errors import SpikingRHMError

TMP_PREFIX = ".tmp-"


def atomic_write(path: str | Path, write: Callable[[IO], None], binary: bool = True,
                 prefix: str = TMP_PREFIX) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then move it onto ``path``.

    A missing directory, a directory in place of the file or an OS error become a
    :class:`~spiking_rhm.errors.SpikingRHMError` naming the path.  Returns ``Path(path)``.
    """
    path = Path(path)
    if path.is_dir():
        raise SpikingRHMError(f"cannot write {path}: it is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SpikingRHMError(f"cannot write {path}: directory {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
    except OSError as err:
        raise SpikingRHMError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise SpikingRHMError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str, prefix: str = TMP_PREFIX) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text), binary=False, prefix=prefix)
