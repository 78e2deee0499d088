"""Results store of a sweep directory, crash-safe.

Layout of ``DIR``::

    DIR/records/<run_id>.json   one finished run (the source of truth)
    DIR/results.jsonl           every record, one JSON object per line (derived, rebuilt)

Every write goes to a temporary file in the same directory, is flushed and fsync'ed, and
is moved into place with :func:`os.replace` (atomic on POSIX), so a process killed at any
moment leaves either the old file or the new one, never a partial record.  A record file
is written before ``results.jsonl`` is rebuilt; opening a store rebuilds ``results.jsonl``
from ``records/``, which repairs a kill that fell between the two.  Leftover temporary
files (``.tmp-*``, never read) of a killed writer are removed when a store is opened
for writing and they are more than ten minutes old.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

from spiking_rhm.atomic import TMP_PREFIX as _TMP_PREFIX, atomic_write_text
from spiking_rhm.errors import ConfigError

FINAL_STATUSES = ("ok", "diverged")  # finished for good; "failed" runs are retried
RECORDS = "records"
RESULTS = "results.jsonl"


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


class ResultStore:
    """The records of one sweep directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.records_dir = self.dir / RECORDS
        self.results_path = self.dir / RESULTS
        try:
            self.records_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create results directory {str(self.dir)!r}: {err.strerror}") from None
        _remove_stale_temporaries(self.dir, self.records_dir)
        self._records = load_records(self.records_dir)
        self._write_results()

    # -- reading -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._records

    def get(self, run_id: str) -> dict | None:
        return self._records.get(run_id)

    def records(self) -> list[dict]:
        """All records, sorted by (RHM setting, rule, backend, P, seed)."""
        return sorted(self._records.values(), key=_sort_key)

    def finished(self, run_id: str) -> bool:
        """True when the run has a record with a final status (ok or diverged)."""
        record = self._records.get(run_id)
        return record is not None and record.get("status") in FINAL_STATUSES

    # -- writing -----------------------------------------------------------------
    def add(self, record: dict) -> dict:
        """Store one record atomically (replacing an older record of the same run)."""
        record = _sanitize(record)
        run_id = record["run_id"]
        text = json.dumps(record, sort_keys=True, allow_nan=False)
        atomic_write_text(self.records_dir / f"{run_id}.json", text + "\n")
        self._records[run_id] = record
        self._write_results()
        return record

    def _write_results(self) -> None:
        lines = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in self.records())
        atomic_write_text(self.results_path, lines)


def load_records(records_dir: Path) -> dict[str, dict]:
    """``run_id -> record`` from the record files (read only)."""
    records = {}
    for path in sorted(Path(records_dir).glob("*.json")):
        try:
            records[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"record {str(path)!r} is not valid JSON ({err.msg}); remove it to redo that run") from None
    return records


def _remove_stale_temporaries(*directories: Path, min_age_s: float = 600.0) -> None:
    """Delete temporaries left by a killed writer (old enough not to belong to a live one)."""
    now = time.time()
    for directory in directories:
        for stale in directory.glob(_TMP_PREFIX + "*"):
            try:
                if now - stale.stat().st_mtime > min_age_s:
                    stale.unlink()
            except FileNotFoundError:
                pass


def read_results(directory: str | os.PathLike) -> list[dict]:
    """Records of a sweep directory (``DIR/results.jsonl``, or a .jsonl file itself)."""
    path = Path(directory)
    if path.is_dir():
        if (path / RECORDS).is_dir():  # the records are the truth; results.jsonl may lag one record
            return sorted(load_records(path / RECORDS).values(), key=_sort_key)
        path = path / RESULTS
    if not path.is_file():
        raise ConfigError(f"no results found at {str(path)!r} (expected DIR/results.jsonl)")
    return list(_read_jsonl(path.read_text(encoding="utf-8").splitlines(), path))


def _read_jsonl(lines: Iterable[str], path: Path) -> Iterator[dict]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{str(path)!r} line {number} is not JSON: {err.msg}") from None
