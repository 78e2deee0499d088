r"""Hyper-parameter selection on validation points carved from the training set.

A run whose config has a ``grid`` (setting -> candidate values) trains every point of the grid's
cartesian product, each on the same ``P - n_val`` training points (``n_val = round(optim.validation
x P)``, the last points of the run's training set; :func:`spiking_rhm.training.carve_validation`), and
keeps the point with the least validation error::

    chosen = argmin_g ( e_val(g), loss_val(g), index(g) )      (diverged points: e_val = inf)

``e_val`` is the validation error of the record's scoring (the online readout for supervised rules,
the linear probe for unsupervised ones, ``metrics.validation.error``).  The chosen point's model,
trained on ``P - n_val`` points, is the run's result (no refit on all ``P``): every rule sees the same
``P`` labelled points, ``n_val`` of them only through the choice.  Test points never enter the choice;
the other points' test errors are not recorded.  The record keeps the grid, the chosen point and every
point's validation error in ``metrics.selection``.

Grid keys: ``lr`` (``optim.lr``), ``section.key`` (``optim.momentum``, ``net.width``, ...), or a bare
name, which is a rule (or back-end) option (``rule_options.name``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Mapping

from spiking_rhm.errors import ConfigError

ALIASES = {"lr": "optim.lr"}
SECTIONS = ("optim", "net", "spiking", "rule_options")
FIXED = ("optim.validation",)  # settings a grid may not vary (the selection data itself)


def grid_path(key: str) -> list[str]:
    """The config path a grid key names (see the module docstring)."""
    key = ALIASES.get(key, key)
    path = key.split(".")
    if len(path) == 1:
        return ["rule_options", key]
    if len(path) != 2 or path[0] not in SECTIONS or key in FIXED:
        raise ConfigError(f"grid key {key!r}: use lr, a rule option name, or section.key with section one of "
                          f"{', '.join(SECTIONS)} (not {', '.join(FIXED)})")
    return path


def grid_points(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every point of the grid's cartesian product, in the grid's order (last key fastest)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def point_config(cfg, point: Mapping[str, Any]):
    """``cfg`` with the settings of ``point`` and no grid."""
    data = cfg.to_dict()
    data["grid"] = {}
    for key, value in point.items():
        section, name = grid_path(key)
        data.setdefault(section, {})[name] = value
    return type(cfg).from_dict(data)


def check_grid(cfg) -> None:
    """A grid is a table of non-empty value lists, needs ``optim.validation > 0``, and every point is a valid
    config (:class:`ConfigError` otherwise)."""
    grid = cfg.grid
    for key, values in grid.items():
        grid_path(str(key))
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"grid.{key} must be a non-empty list of values, got {values!r}")
    if not cfg.optim.validation > 0:
        raise ConfigError("a grid needs validation points: set optim.validation (a fraction of P, e.g. 0.2)")
    for point in grid_points(grid):
        try:
            point_config(cfg, point)
        except ConfigError as err:
            raise ConfigError(f"grid point {point}: {err}") from None


def _validation(metrics: Mapping[str, Any]) -> tuple[float, float]:
    val = metrics.get("validation")
    if not isinstance(val, Mapping) or "error" not in val:
        raise ConfigError("the back end recorded no validation error (metrics.validation); it cannot select")
    error, loss = val.get("error"), val.get("loss")
    bad = metrics.get("diverged") or error is None or not math.isfinite(error)
    return (math.inf if bad else float(error)), (math.inf if loss is None or not math.isfinite(loss) else float(loss))


def select(cfg, train_fn: Callable[[Any], dict]) -> dict:
    """Train every grid point of ``cfg`` with ``train_fn(point_cfg) -> metrics`` and return the chosen
    point's metrics with ``selection`` added (module docstring).  Reads only validation scores."""
    points = grid_points(cfg.grid)
    trials, wall = [], 0.0
    for point in points:
        metrics = train_fn(point_config(cfg, point))
        wall += float(metrics.get("wall_time") or 0.0)
        error, loss = _validation(metrics)
        trials.append({"point": dict(point), "validation_error": error, "validation_loss": loss,
                       "train_error": metrics.get("train_error"), "diverged": bool(metrics.get("diverged")),
                       "epochs_run": metrics.get("epochs_run")})
        trials[-1]["_metrics"] = metrics
    best = min(range(len(trials)), key=lambda i: (trials[i]["validation_error"], trials[i]["validation_loss"], i))
    chosen = trials[best].pop("_metrics")
    for trial in trials:
        trial.pop("_metrics", None)
        for key in ("validation_error", "validation_loss"):
            trial[key] = None if math.isinf(trial[key]) else trial[key]
    selection = {"grid": {k: list(v) for k, v in cfg.grid.items()}, "chosen": dict(points[best]), "index": best,
                 "criterion": "validation error of the record's scoring (ties: validation loss, grid order)",
                 "validation_fraction": cfg.optim.validation, "refit": False, "points": trials,
                 "wall_time_all_points": wall}
    return {**chosen, "selection": selection}


__all__ = ["ALIASES", "check_grid", "grid_path", "grid_points", "point_config", "select"]
