"""Stacked runs in a sweep: compatible runs trained together (:mod:`rate_models.stacked`), each stored as its own
record under its own lock.

:func:`jobs` groups a sweep's pending runs: rate runs that differ only in seed or learning rate, at most
``stack`` per group (``stack = 1``: every run alone); runs of other back ends, of rules that cannot be stacked,
or with a custom trainer stay alone. :func:`run_stored_group` is what a worker runs for one group.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Sequence

RATE_TRAINER = "rate_models.train:train_rate"


def default_stack() -> int:
    """Runs per group when the sweep does not say (:data:`rate_models.stacked.DEFAULT_STACK`)."""
    from rate_models.stacked import DEFAULT_STACK

    return DEFAULT_STACK


def _rate_trainer_is_ours() -> bool:
    from spiking_rhm import api

    target = api.trainer_target("rate")
    if callable(target):
        target = f"{target.__module__}:{target.__name__}"
    return target == RATE_TRAINER


def jobs(cfgs: Sequence, stack: int | None, train_fn=None) -> list[tuple]:
    """``cfgs`` as a list of groups (tuples) to run; groups of one unless stacking applies."""
    stack = default_stack() if stack is None else stack
    if stack <= 1 or train_fn is not None or not any(cfg.backend == "rate" for cfg in cfgs):
        return [(cfg,) for cfg in cfgs]
    from experiments.sweep import _register_backends

    _register_backends()
    if not _rate_trainer_is_ours():
        return [(cfg,) for cfg in cfgs]
    from rate_models.stacked import group

    return [tuple(g) for g in group(cfgs, stack)]


def train_group(cfgs: Sequence) -> list[dict]:
    """The records of ``cfgs`` trained as one stack; alone, one by one, when they cannot be stacked (the reason
    is noted in each record's ``metrics.stack``); a stack that fails gives ``failed`` records."""
    import traceback

    from experiments.sweep import run_one
    from rate_models.stacked import NotStackable, train_stack
    from spiking_rhm import api

    start = time.perf_counter()
    try:
        metrics = train_stack(cfgs)
    except NotStackable as err:
        records = [run_one(cfg) for cfg in cfgs]
        for record in records:
            record.setdefault("metrics", {})["stack"] = {"size": 1, "not_stacked": str(err)}
        return records
    except Exception as err:  # noqa: BLE001 - a failing stack must not stop the sweep
        message = f"{type(err).__name__}: {err}"
        wall = (time.perf_counter() - start) / len(cfgs)
        return [api.make_record(cfg, {"error": message, "traceback": traceback.format_exc(limit=20)}, wall_time=wall,
                                status="failed") for cfg in cfgs]
    return [api.make_record(cfg, m, wall_time=m["wall_time"]) for cfg, m in zip(cfgs, metrics)]


def run_stored_group(cfgs: Sequence, out: str, train_fn=None, retry_failed: bool = True, wait: bool = False
                     ) -> list[tuple[str, dict | None]]:
    """:func:`experiments.sweep.run_stored` for a group: each run's ``(state, record)``; the runs whose lock is
    held here and that are not finished are trained as one stack, each record written under its lock."""
    from experiments.store import ResultStore, is_final
    from experiments.sweep import BUSY, EXISTING, RETURNED, WRITTEN, run_one, run_stored

    if len(cfgs) == 1:
        return [run_stored(cfgs[0], out, train_fn, retry_failed, wait)]
    if not (Path(out) / "records").is_dir():
        return [(RETURNED, record) for record in train_group(cfgs)]
    store = ResultStore(out, load=False)
    results: list[tuple[str, dict | None] | None] = [None] * len(cfgs)
    with contextlib.ExitStack() as locks:
        todo = []
        for i, cfg in enumerate(cfgs):
            run_id = cfg.run_id()
            if not locks.enter_context(store.run_lock(run_id, blocking=wait)):
                results[i] = (BUSY, None)
                continue
            existing = store.read(run_id)
            if is_final(existing) or (existing is not None and not retry_failed):
                results[i] = (EXISTING, existing)
            else:
                todo.append(i)
        if len(todo) == 1:
            results[todo[0]] = (WRITTEN, store.write(run_one(cfgs[todo[0]], train_fn)))
        elif todo:
            for i, record in zip(todo, train_group([cfgs[i] for i in todo])):
                results[i] = (WRITTEN, store.write(record))
    return results


__all__ = ["default_stack", "jobs", "run_stored_group", "train_group"]
