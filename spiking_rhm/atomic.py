"""Atomic file writes: a temporary file in the target's directory, fsync, then :func:`os.replace`.

A process killed mid-write leaves the previous file (or none) in place, never a truncated one.
Every writer of results, data, checkpoints and NIR files goes through :func:`atomic_path`.
A temporary file is named ``.tmp-<host>.<pid>-<random>.tmp`` after its writer, so that
:func:`remove_stale_temporaries` can delete those of a dead writer at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Iterator

from spiking_rhm.errors import SpikingRHMError

TMP_PREFIX = ".tmp-"
FOREIGN_TMP_AGE_S = 600.0  # a temporary of a writer on another host is stale after this long


def _writer_tag() -> str:
    """``<host>.<pid>-``: who writes a temporary file (no dots or dashes in the host part)."""
    host = socket.gethostname().replace(".", "_").replace("-", "_") or "host"
    return f"{host}.{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(directory: str | Path, prefix: str = TMP_PREFIX) -> list[Path]:
    """Delete the temporary files in ``directory`` whose writer is dead; the paths removed.

    A writer on this host is dead when its pid is gone; one on another host (a shared file system)
    when its file is older than :data:`FOREIGN_TMP_AGE_S`.  Names without a writer tag count as foreign.
    """
    removed = []
    host = _writer_tag().split(".", 1)[0]
    for path in Path(directory).glob(prefix + "*"):
        tag = path.name[len(prefix):].split("-", 1)[0]
        writer_host, _, pid = tag.rpartition(".")
        try:
            if writer_host == host and pid.isdigit():
                stale = not _pid_alive(int(pid))
            else:
                stale = time.time() - path.stat().st_mtime > FOREIGN_TMP_AGE_S
            if stale:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # removed by another cleaner, or renamed by its writer
            pass
    return removed


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


def output_dir(path: str | Path, error: type[SpikingRHMError] = SpikingRHMError, what: str = "output ",
               create: bool = False) -> Path:
    """The one rule for output directories: the leaf may be missing (it is created, with ``create``),
    its parent must exist; a file in its place is refused.  ``error`` names the path otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise error(f"cannot use {what}directory {path}: it is a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists() and not parent.is_dir():
        raise error(f"cannot create {what}directory {path}: its parent {parent} does not exist")
    if create:
        try:
            path.mkdir(exist_ok=True)
        except OSError as err:
            raise error(f"cannot create {what}directory {path}: {err.strerror or err}") from None
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
        fd, tmp = tempfile.mkstemp(prefix=prefix + _writer_tag(), suffix=".tmp", dir=path.parent)
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
