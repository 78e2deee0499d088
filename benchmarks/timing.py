"""Timing helper shared by the benchmark scripts (run them as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import time


def best_of(fn, repeats: int) -> tuple[float, object]:
    """``(best wall time in seconds, last result)`` of ``repeats`` calls of ``fn()``."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
