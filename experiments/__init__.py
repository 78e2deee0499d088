"""Learning-curve experiments: sweeps over (RHM setting, rule, back end, P, seed), the
crash-safe results store, P* tables and figures.

* :mod:`experiments.sweep` -- :class:`SweepConfig`, :func:`run_sweep` (local process pool,
  serial or Dask);
* :mod:`experiments.store` -- ``DIR/records/<run_id>.json`` + ``DIR/results.jsonl``;
* :mod:`experiments.analysis` -- grouping records into curves, the P* table;
* :mod:`experiments.report` -- the P* and per-P tables as Markdown and CSV (``spiking-rhm report``);
* :mod:`experiments.plots` -- figures (PNG + PDF).
"""

from experiments.store import ResultStore, read_results
from experiments.sweep import SweepConfig, SweepSummary, run_one, run_sweep

__all__ = ["ResultStore", "SweepConfig", "SweepSummary", "read_results", "run_one", "run_sweep"]
