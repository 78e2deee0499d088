"""Results store of a sweep directory: crash-safe, shared safely by concurrent sweeps.

Layout of ``DIR``::

    DIR/records/<run_id>.json        one finished run (the source of truth)
    DIR/records/quarantine/          records that were not valid JSON, moved aside
    DIR/locks/<run_id>.lock          per-run lock: held while the run is computed
    DIR/locks/index.lock             held while results.jsonl is rewritten
    DIR/results.jsonl                every record, one JSON object per line (derived from records/)

Every write goes to a temporary file in the same directory, is flushed and fsync'ed, and is moved
into place with :func:`os.replace` (atomic on POSIX), so a process killed at any moment leaves the
old file or the new one, never a partial record.

Locks are OS file locks (``flock``): the kernel releases them when their process dies, so a killed
sweep never blocks a resume, and two sweeps (local processes or Dask workers on one file system)
on one directory compute each run once (:meth:`ResultStore.run_lock`).  ``results.jsonl`` is
rewritten under ``index.lock`` from the record files on disk (not from what one process has seen),
so it never loses a record of another process; opening a store rebuilds it.  Readers use
:func:`read_results`, which reads ``records/``.

A record file that is not valid JSON is restored from ``results.jsonl`` when that holds a valid
copy, else moved to ``records/quarantine/`` (its run is then redone); either way with a one-line
warning on stderr, and the rest of the directory stays usable.  Temporary files of a dead writer
(``.tmp-<host>.<pid>-*``) are removed when a store is opened.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from spiking_rhm.api import NO_TEST_POINTS
from spiking_rhm.atomic import atomic_write_text, remove_stale_temporaries
from spiking_rhm.errors import ConfigError

FINAL_STATUSES = ("ok", "diverged", NO_TEST_POINTS)  # finished for good; "failed" runs are retried
RECORDS = "records"
QUARANTINE = "quarantine"
LOCKS = "locks"
RESULTS = "results.jsonl"


def warn(message: str) -> None:
    """One line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def is_final(record: dict | None) -> bool:
    """True for a record with a final status.

    A ``diverged`` record without test points whose training did not diverge (the label that
    P = P_max runs used to get) is not final: its run is redone and recorded as ``no-test-points``.
    """
    if record is None or record.get("status") not in FINAL_STATUSES:
        return False
    legacy_no_test = (record.get("status") == "diverged" and record.get("P_test") == 0
                      and not (record.get("metrics") or {}).get("diverged"))
    return not legacy_no_test


def _sanitize(obj):
    """Replace non-finite floats by None so that the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # numpy/torch scalar
        return _sanitize(obj.item())
    if hasattr(obj, "tolist"):
        return _sanitize(obj.tolist())
    return obj


def _sort_key(record: dict):
    rhm = record.get("config", {}).get("rhm", {})
    return (
        tuple(rhm.get(k, 0) for k in ("v", "m", "n_c", "s", "L", "rule_seed")),
        str(record.get("rule")),
        str(record.get("backend")),
        int(record.get("P") or 0),
        int(record.get("seed") or 0),
        str(record.get("run_id")),
    )


def _dumps(record: dict) -> str:
    return json.dumps(record, sort_keys=True, allow_nan=False)


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); yields False when ``blocking`` is
    False and another process holds it.  The kernel drops the lock when the holder dies."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class ResultStore:
    """The records of one sweep directory (see the module docstring).

    ``load=False`` opens it without reading the records (what a worker that writes one record needs).
    """

    def __init__(self, directory: str | os.PathLike, load: bool = True):
        self.dir = Path(directory)
        self.records_dir = self.dir / RECORDS
        self.locks_dir = self.dir / LOCKS
        self.results_path = self.dir / RESULTS
        try:
            self.dir.mkdir(exist_ok=True)  # the leaf only: a missing parent is refused
            self.records_dir.mkdir(exist_ok=True)
            self.locks_dir.mkdir(exist_ok=True)
        except FileNotFoundError:
            raise ConfigError(f"cannot create results directory {str(self.dir)!r}: its parent "
                              f"{str(self.dir.parent)!r} does not exist") from None
        except OSError as err:
            raise ConfigError(f"cannot create results directory {str(self.dir)!r}: {err.strerror}") from None
        self._records: dict[str, dict] = {}
        if load:
            remove_stale_temporaries(self.dir)
            remove_stale_temporaries(self.records_dir)
            with self._index_lock():
                self._records = load_records(self.records_dir, index=_read_index(self.results_path))
                self._write_index(self._records)

    # -- reading -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._records

    def get(self, run_id: str) -> dict | None:
        return self._records.get(run_id)

    def records(self) -> list[dict]:
        """All records this store has loaded or added, sorted by (RHM setting, rule, backend, P, seed)."""
        return sorted(self._records.values(), key=_sort_key)

    def finished(self, run_id: str) -> bool:
        """True when the run has a record with a final status (see :func:`is_final`)."""
        return is_final(self._records.get(run_id))

    def read(self, run_id: str) -> dict | None:
        """The record of ``run_id`` as it is on disk now (None when missing or not valid JSON)."""
        try:
            return json.loads((self.records_dir / f"{run_id}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    # -- locking -----------------------------------------------------------------
    def run_lock(self, run_id: str, blocking: bool = False):
        """Context manager: the lock of one run (yields False if another process holds it)."""
        return file_lock(self.locks_dir / f"{run_id}.lock", blocking=blocking)

    def _index_lock(self):
        return file_lock(self.locks_dir / "index.lock", blocking=True)

    # -- writing -----------------------------------------------------------------
    def write(self, record: dict) -> dict:
        """Write one record file atomically (not the index; see :meth:`add`)."""
        record = _sanitize(record)
        atomic_write_text(self.records_dir / f"{record['run_id']}.json", _dumps(record) + "\n")
        self._records[record["run_id"]] = record
        return record

    def add(self, record: dict, written: bool = False) -> dict:
        """Store one record (replacing an older record of the run) and update the index.

        ``written``: the record file is already on disk (a worker wrote it); only index it.
        """
        record = _sanitize(record) if written else self.write(record)
        self._records[record["run_id"]] = record
        with self._index_lock():
            index = _read_index(self.results_path)
            on_disk = {path.stem for path in self.records_dir.glob("*.json")}
            index = {run_id: rec for run_id, rec in index.items() if run_id in on_disk}
            for run_id in sorted(on_disk - set(index)):  # records of other processes, or of a killed one
                other = self.read(run_id)
                if other is not None:
                    index[run_id] = other
            if record["run_id"] in on_disk:
                index[record["run_id"]] = record
            self._write_index(index)
        return record

    def _write_index(self, records: dict[str, dict]) -> None:
        lines = "".join(_dumps(r) + "\n" for r in sorted(records.values(), key=_sort_key))
        atomic_write_text(self.results_path, lines)


def _read_index(path: Path) -> dict[str, dict]:
    """``run_id -> record`` from ``results.jsonl``; lines that are not valid JSON records are skipped."""
    index = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return index
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("run_id"), str):
            index[record["run_id"]] = record
    return index


def load_records(records_dir: Path, index: dict[str, dict] | None = None) -> dict[str, dict]:
    """``run_id -> record`` from the record files, repairing corrupt ones (see the module docstring)."""
    records_dir = Path(records_dir)
    if index is None:
        index = _read_index(records_dir.parent / RESULTS)
    records = {}
    for path in sorted(records_dir.glob("*.json")):
        try:
            records[path.stem] = json.loads(path.read_text(encoding="utf-8"))
            continue
        except FileNotFoundError:
            continue  # moved aside by another process meanwhile
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            why = getattr(err, "msg", None) or "not UTF-8"
        copy = index.get(path.stem)
        try:
            if copy is not None:
                atomic_write_text(path, _dumps(copy) + "\n")
                records[path.stem] = copy
                warn(f"record {path} was not valid JSON ({why}); restored from {RESULTS}")
                continue
            aside = records_dir / QUARANTINE
            aside.mkdir(exist_ok=True)
            target = aside / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
            os.replace(path, target)
            warn(f"record {path} was not valid JSON ({why}); moved to {target}, its run will be redone")
        except OSError as err:  # a read-only directory: leave it, skip the record
            warn(f"record {path} is not valid JSON ({why}) and cannot be moved aside ({err.strerror}); skipped")
    return records


def read_results(directory: str | os.PathLike) -> list[dict]:
    """Records of a sweep directory (from ``DIR/records/``), or of a ``.jsonl`` file itself."""
    path = Path(directory)
    if path.is_dir():
        if (path / RECORDS).is_dir():  # the records are the truth; results.jsonl may lag
            return sorted(load_records(path / RECORDS).values(), key=_sort_key)
        path = path / RESULTS
    if not path.is_file():
        raise ConfigError(f"no results found at {str(path)!r} (expected a sweep directory with records/ "
                          "or a results .jsonl file)")
    return list(_read_jsonl(path.read_text(encoding="utf-8").splitlines(), path))


def _read_jsonl(lines: Iterable[str], path: Path) -> Iterator[dict]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{str(path)!r} line {number} is not JSON: {err.msg}") from None
