"""Atomic file writes: a temporary file in the target's directory, fsync, then :func:`os.replace`.

A process killed mid-write leaves the previous file (or none) in place, never a truncated one.
Every writer of results, data, checkpoints and NIR files goes through :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from spiking_rhm.errors import SpikingRHMError

TMP_PREFIX = ".tmp-"


def writable_path(path: str | Path, error: type[SpikingRHMError] = SpikingRHMError, what: str = "") -> Path:
    """``Path(path)`` if a file can be created there (its directory exists, it is no directory), else ``error``
    naming it (``what``, e.g. ``"the checkpoint "``, goes before the path).  For checks before long work."""
    path = Path(path)
    if path.is_dir():
        raise error(f"cannot write {what}{path}: it is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise error(f"cannot write {what}{path}: directory {parent} does not exist")
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path, prefix: str = TMP_PREFIX) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsync'ed and moved onto ``path``.

    For writers that want a file name (h5py, NIR).  A missing directory, a directory in place of
    the file or an OS error become a :class:`~spiking_rhm.errors.SpikingRHMError` naming the path;
    on any failure the temporary file is removed and ``path`` is left as it was.
    """
    path = writable_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise SpikingRHMError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as err:
        raise SpikingRHMError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO], None], binary: bool = True,
                 prefix: str = TMP_PREFIX) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then move it onto ``path``."""
    with atomic_path(path, prefix) as tmp:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, prefix: str = TMP_PREFIX) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text), binary=False, prefix=prefix)
