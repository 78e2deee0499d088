"""Python API: one call trains one run described by a :class:`~spiking_rhm.config.RunConfig`.

``train(cfg)`` dispatches on ``cfg.backend`` and returns one *results record*, the
same schema for every back end (see :func:`make_record`); sweeps store these records.

Back ends register their trainer (:func:`register_trainer`): the core registers its own (Norse);
a back end outside the core registers when imported (``import rate_models``) or through the
``spiking_rhm.backends`` entry points of an installed package (the rate back end declares one), so
the core imports no back end above it.
"""

from __future__ import annotations

import importlib
import math
import platform
import time
from importlib.metadata import entry_points
from typing import Any, Callable

from spiking_rhm import __version__
from spiking_rhm.config import BACKENDS, RunConfig
from spiking_rhm.errors import BackendUnavailableError, UnknownNameError

# backend name -> "module:function" (or the function) taking (cfg, progress, checkpoint), returning the metrics
BACKEND_TRAINERS: dict[str, str | Callable] = {
    "norse": "spiking_rhm.backends.norse.train:train_norse",
    "brian2": "spiking_rhm.backends.brian2.train:train_brian2",
    # trained on the rate back end (found through this registry), converted and scored on Norse
    "norse-converted": "spiking_rhm.backends.norse.converted:train_converted",
}
NO_TEST_POINTS = "no-test-points"  # status of a run with P_test = 0 (e.g. P = P_max)
ENTRY_POINTS = "spiking_rhm.backends"  # entry-point group: name = back end, value = "module:function"
# what the back ends without a trainer are for instead
NO_TRAINER = {
    "lava": "train with rate or norse and deploy with `spiking-rhm export` / `deploy`; one on-chip learning "
            "presentation is hardware.loihi.learning.three_factor_step (docs/hardware.md)",
}


def register_trainer(name: str, trainer: str | Callable) -> None:
    """Make ``trainer`` (``"module:function"`` or the function) train ``cfg.backend == name``."""
    if name not in BACKENDS:
        raise UnknownNameError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    BACKEND_TRAINERS[name] = trainer


def _discover() -> None:
    """Add the trainers that installed packages declare as ``spiking_rhm.backends`` entry points."""
    for ep in entry_points(group=ENTRY_POINTS):
        if ep.name in BACKENDS:
            BACKEND_TRAINERS.setdefault(ep.name, ep.value)


def trainer_target(name: str) -> str | Callable | None:
    """What trains ``cfg.backend == name`` (``"module:function"`` or the function), or None."""
    if name not in BACKEND_TRAINERS:
        _discover()
    return BACKEND_TRAINERS.get(name)


def backend_option_names(name: str) -> set[str]:
    """Names in ``cfg.rule_options`` that back end ``name`` consumes itself (its module's ``BACKEND_OPTIONS``; a
    back end that trains on another one, ``TRAINED_ON``, takes that one's); empty when it is not installed."""
    target = trainer_target(name)
    if target is None:
        return set()
    module_name = target.__module__ if callable(target) else target.split(":")[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # back end not installed: training it reports that
        return set()
    if getattr(module, "TRAINED_ON", None):
        return backend_option_names(module.TRAINED_ON)
    return set(getattr(module, "BACKEND_OPTIONS", {}))


def backend_trainer(name: str) -> Callable[[RunConfig], dict]:
    if name not in BACKENDS:
        raise UnknownNameError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    target = trainer_target(name)
    if target is None:
        training = ", ".join(b for b in BACKENDS if b in BACKEND_TRAINERS)
        if name in NO_TRAINER:
            raise BackendUnavailableError(f"backend {name!r} has no trainer: {NO_TRAINER[name]}; training back "
                                          f"ends: {training}")
        raise BackendUnavailableError(f"backend {name!r} is not registered: import its package (`import "
                                      f"rate_models` for rate) or install spiking-rhm so that its entry points "
                                      f"are found; training back ends: {training}")
    if callable(target):
        return target
    module, func = target.split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise BackendUnavailableError(f"backend {name!r} needs {err.name!r}, which is not installed") from None
    return getattr(mod, func)


def train(cfg: RunConfig, progress: bool = False, checkpoint=None) -> dict:
    """Train one run and return its results record (never raises on divergence).

    ``checkpoint``: a path where the trained network is saved (:mod:`spiking_rhm.checkpoint`).
    """
    from spiking_rhm.memory import PeakMemory

    trainer = backend_trainer(cfg.backend)
    start = time.perf_counter()
    with PeakMemory() as memory:  # metrics.memory: the process's peak resident memory during this run
        if cfg.grid:  # hyper-parameters chosen on validation points (spiking_rhm.selection)
            from spiking_rhm.errors import ConfigError
            from spiking_rhm.selection import select

            if checkpoint is not None:
                raise ConfigError("a run with a grid trains several networks: checkpoint its chosen point instead "
                                  "(the record's metrics.selection.chosen)")
            metrics = select(cfg, lambda point: trainer(point, progress=progress))
        else:
            metrics = trainer(cfg, progress=progress, checkpoint=checkpoint)
    return make_record(cfg, {**metrics, "memory": memory.fields}, wall_time=time.perf_counter() - start)


def make_record(cfg: RunConfig, metrics: dict[str, Any], wall_time: float, status: str | None = None) -> dict:
    """The one results-record schema.

    Top-level keys: ``run_id, rule, backend, P, P_test, seed, status, test_error,
    train_error, metrics, config, version, wall_time, platform``.  ``status`` is
    ``ok``, ``diverged`` (a NaN/inf loss, parameter or train error), ``no-test-points``
    (trained on P = P_max with P_test = 0: train metrics only, no test error) or ``failed``.
    """
    P, P_test = cfg.sizes()
    test_error = metrics.get("test_error")
    train_error = metrics.get("train_error")
    if P_test == 0:
        test_error = None  # the mean over an empty test set is NaN, which is no divergence
    if status is None:
        bad = [x for x in (test_error, train_error) if x is not None and not math.isfinite(x)]
        if bad or metrics.get("diverged"):
            status = "diverged"
        else:
            status = NO_TEST_POINTS if P_test == 0 else "ok"
    return {
        "run_id": cfg.run_id(),
        "rule": cfg.rule,
        "backend": cfg.backend,
        "P": P,
        "P_test": P_test,
        "seed": cfg.seed,
        "status": status,
        "test_error": _finite_or_none(test_error),
        "train_error": _finite_or_none(train_error),
        "metrics": {k: v for k, v in metrics.items() if k not in ("test_error", "train_error")},
        "config": cfg.to_dict(),
        "version": __version__,
        "wall_time": wall_time,
        "platform": platform.platform(),
    }


def _finite_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
