"""Peak memory of one run in a process that trains many: the record's ``metrics.memory``.

On Linux the kernel's high-water mark of the resident set (``VmHWM``) is reset to the current resident size
when the run starts (``/proc/self/clear_refs`` = 5) and read when it ends, so ``peak_rss_mb`` is the most
resident memory the *process* held during this run (the interpreter, torch and earlier runs' leftovers
included), and ``peak_increase_mb = peak_rss_mb - rss_start_mb`` what the run itself added at its peak.
Where the reset is not available, ``ru_maxrss`` (the process's peak since it started, which a run can only
raise) is recorded instead and ``measure`` says so.  On CUDA ``cuda_peak_allocated_mb`` is torch's peak of
allocated device memory during the run (``torch.cuda.reset_peak_memory_stats`` at the start).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")
MB = 2**20


def _status_kb(*keys: str) -> dict[str, int] | None:
    try:
        lines = _STATUS.read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in keys:
            values[name] = int(rest.split()[0])
    return values if len(values) == len(keys) else None


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux >= 4.0); False where that is not possible."""
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return rss / MB if sys.platform == "darwin" else rss / 1024


def _cuda():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch.cuda if torch.cuda.is_available() and torch.cuda.is_initialized() else None


class PeakMemory:
    """Measures one run: ``with PeakMemory() as mem: ...``, then ``mem.fields`` (the ``metrics.memory`` dict)."""

    def __enter__(self) -> "PeakMemory":
        self.reset = _reset_peak()
        now = _status_kb("VmRSS") if self.reset else None
        self.rss_start = None if now is None else now["VmRSS"] / 1024
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        self.fields: dict = {}
        return self

    def __exit__(self, *exc) -> None:
        self.fields = self.measure()

    def measure(self) -> dict:
        """The fields so far (``__exit__`` stores them in ``fields``)."""
        status = _status_kb("VmRSS", "VmHWM") if self.rss_start is not None else None
        if status is not None:
            peak = status["VmHWM"] / 1024
            fields = {"measure": "process resident-set peak during the run (VmHWM reset at its start)",
                      "peak_rss_mb": round(peak, 1), "rss_start_mb": round(self.rss_start, 1),
                      "peak_increase_mb": round(peak - self.rss_start, 1)}
        else:
            fields = {"measure": "process resident-set peak since the process started (ru_maxrss)",
                      "peak_rss_mb": round(_maxrss_mb(), 1)}
        cuda = _cuda()
        if cuda is not None:
            fields["cuda_peak_allocated_mb"] = round(cuda.max_memory_allocated() / MB, 1)
        return fields


__all__ = ["PeakMemory"]
