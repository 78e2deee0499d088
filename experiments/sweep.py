"""Sweeps: one training per (RHM setting, rule, back end, P, seed), run in parallel, stored crash-safe.

A :class:`SweepConfig` comes from a TOML/YAML/JSON file, from the CLI, or from Python; all
three go through the same strict validation.  A sweep file looks like::

    out = "results/bp_scaling"
    rules = ["bp", "random-features"]
    backends = ["rate"]
    P = ["1x", "2x", "4x", 20000]      # absolute, multiples of n_c*m^L ("Nx"), or "max"
    seeds = [0, 1, 2]
    workers = 2                         # local processes; or dask = "tcp://host:8786"
    stack = 8                           # rate runs differing only in seed / lr trained as one model [1: alone]

    [[rhm]]                             # one table, or several for a scaling study
    v = 8
    m = 4
    n_c = 8
    L = 3
    rule_seeds = [0, 1, 2]              # (top level) every rhm table on each of these grammars

    [optim]                             # any RunConfig section: net, optim, spiking,
    epochs = 100                        # rule_options, P_test, device
    [overrides.dfa.optim]               # per-rule changes of those sections
    lr = 0.01

    rules = ["bp", "reference-bp"]      # a rule name or a protocol preset (spiking_rhm.presets)

    [grid]                              # hyper-parameters chosen on validation points (needs
    lr = [0.3, 1, 3]                    # optim.validation > 0; spiking_rhm.selection); per rule:
    [overrides.sibling-cca.grid]        # merged into the grid of that rule
    shrink = [0.15, 0.2, 0.35]

    [vary]                              # more axes of the grid: a run setting (section.key) -> values,
    "spiking.neuron" = ["lif", "adex"]  # every run once per combination (over the shared settings and
    "spiking.modulator_delay" = [0.0, 0.01]   # the overrides); curves are told apart by these settings

:func:`run_sweep` expands the sweep (:meth:`SweepConfig.runs`), skips runs that already
have a final record in the output directory (see :mod:`experiments.store`), and runs the
rest with a local process pool (default), serially (``workers = 1``) or on a Dask cluster.
Rate runs that differ only in seed or learning rate are trained in groups of up to ``stack`` as one
batched model (:mod:`experiments.stacking`), each still stored as its own record.
An exception inside a run gives a ``failed`` record and the sweep goes on.  Each run is
computed under its lock in the output directory and its record written by the process that
computed it (:func:`run_stored`), so concurrent sweeps on one directory compute each run once.
SIGINT and SIGTERM stop the workers and raise :class:`SweepInterrupted`; pool workers exit
when their parent dies, even by SIGKILL (:func:`exit_with_parent`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from spiking_rhm.config import BACKENDS, RHMConfig, RunConfig, _from_mapping, load_config_file, resolve_size
from spiking_rhm.errors import ConfigError, SpikingRHMError

from experiments import stacking
from experiments.store import ResultStore

TrainFn = Callable[..., dict]  # (cfg: RunConfig, progress=False) -> results record

# RunConfig sections a sweep sets once for all its runs (the rest is swept).
RUN_KEYS = ("P_test", "device", "net", "optim", "spiking", "convert", "rule_options", "grid")
SWEEP_KEYS = ("rules", "backends", "rhm", "rule_seeds", "P", "seeds", "out", "workers", "dask", "retry_failed",
              "overrides", "stack", "vary", *RUN_KEYS)


def default_workers() -> int:
    """Local worker processes when none are asked for: min(2, number of CPUs)."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: the grid ``rhm x rules x backends x vary x P x seeds`` and shared run settings.

    ``run`` holds the shared :data:`RUN_KEYS` sections as a plain dict (validated by building
    a :class:`RunConfig`); ``overrides[rule]`` changes them for one rule; ``vary`` maps a run setting
    (``"section.key"``, e.g. ``"spiking.neuron"``, or ``"P_test"``) to the values it takes, one more
    axis of the grid each (applied over the shared settings and the overrides).
    """

    rules: tuple[str, ...]
    P: tuple[int | str, ...]
    rhm: tuple[RHMConfig, ...] = (RHMConfig(),)
    backends: tuple[str, ...] = ("rate",)
    seeds: tuple[int, ...] = (0,)
    run: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    out: str | None = None
    workers: int | None = None
    dask: str | None = None
    retry_failed: bool = True
    stack: int | None = None  # runs per stacked group (experiments.stacking); None: the measured default
    vary: Mapping[str, tuple] = field(default_factory=dict)  # "section.key" -> values: more grid axes

    def __post_init__(self):
        self.runs()  # validates every run of the grid

    # -- construction --------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "sweep") -> "SweepConfig":
        """Strict loading: unknown keys, wrong types and invalid values raise :class:`ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a table, got {type(data).__name__}")
        unknown = sorted(set(data) - set(SWEEP_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; valid: {', '.join(SWEEP_KEYS)}")
        for required in ("rules", "P"):
            if required not in data:
                raise ConfigError(f"{where} needs {required!r} (e.g. rules = ['bp'], P = ['1x', '2x'])")
        rhm = data.get("rhm", {})
        rhm_list = [rhm] if isinstance(rhm, Mapping) else rhm
        if not isinstance(rhm_list, (list, tuple)) or not rhm_list:
            raise ConfigError(f"{where}.rhm must be a table or a non-empty list of tables")
        settings = tuple(_from_mapping(RHMConfig, r, f"{where}.rhm") for r in rhm_list)
        if "rule_seeds" in data:  # every setting on each of these grammars
            grammars = _int_tuple(data["rule_seeds"], f"{where}.rule_seeds")
            if not grammars or any(g < 0 for g in grammars):
                raise ConfigError(f"{where}.rule_seeds must be a non-empty list of seeds >= 0, got {list(grammars)}")
            settings = tuple(dataclasses.replace(r, rule_seed=g) for r in settings for g in dict.fromkeys(grammars))
        overrides = data.get("overrides", {})
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{where}.overrides must be a table of rule = {{section = ...}}")
        for rule, change in overrides.items():
            if not isinstance(change, Mapping):
                raise ConfigError(f"{where}.overrides.{rule} must be a table")
            bad = sorted(set(change) - set(RUN_KEYS))
            if bad:
                raise ConfigError(f"unknown key(s) {', '.join(map(repr, bad))} in {where}.overrides.{rule}; "
                                  f"valid: {', '.join(RUN_KEYS)}")
        workers = data.get("workers")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
            raise ConfigError(f"{where}.workers must be an integer, got {workers!r}")
        stack = data.get("stack")
        if stack is not None and (isinstance(stack, bool) or not isinstance(stack, int) or stack < 1):
            raise ConfigError(f"{where}.stack must be an integer >= 1, got {stack!r}")
        for key in ("out", "dask"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ConfigError(f"{where}.{key} must be a string, got {data[key]!r}")
        retry = data.get("retry_failed", True)
        if not isinstance(retry, bool):
            raise ConfigError(f"{where}.retry_failed must be true or false, got {retry!r}")
        return cls(
            vary=_vary_axes(data.get("vary", {}), f"{where}.vary"),
            rules=_str_tuple(data["rules"], f"{where}.rules"),
            P=_size_tuple(data["P"], f"{where}.P"),
            rhm=settings,
            backends=_str_tuple(data.get("backends", ("rate",)), f"{where}.backends"),
            seeds=_int_tuple(data.get("seeds", (0,)), f"{where}.seeds"),
            run={k: data[k] for k in RUN_KEYS if k in data},
            overrides={str(k): dict(v) for k, v in overrides.items()},
            out=data.get("out"),
            workers=workers,
            dask=data.get("dask"),
            retry_failed=retry,
            stack=stack,
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SweepConfig":
        return cls.from_dict(load_config_file(path), where=str(path))

    def to_dict(self) -> dict:
        data = {
            "rules": list(self.rules),
            "backends": list(self.backends),
            "rhm": [dataclasses.asdict(r) for r in self.rhm],
            "P": list(self.P),
            "seeds": list(self.seeds),
            **{k: v for k, v in self.run.items()},
            "overrides": {k: dict(v) for k, v in self.overrides.items()},
            "retry_failed": self.retry_failed,
        }
        for key in ("out", "workers", "dask", "stack"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.vary:
            data["vary"] = {k: list(v) for k, v in self.vary.items()}
        return data

    def replace(self, **changes) -> "SweepConfig":
        return dataclasses.replace(self, **changes)

    # -- expansion -----------------------------------------------------------
    def run_dict(self, rule: str) -> dict:
        """The shared run sections with the overrides of ``rule`` merged in."""
        return _deep_merge(dict(self.run), self.overrides.get(rule, {}))

    def runs(self) -> list[RunConfig]:
        """Every run of the grid, P resolved to an integer (so that '2x' and 256 are one run)."""
        if not self.rules or not self.P or not self.seeds or not self.backends:
            raise ConfigError("a sweep needs at least one rule, one P, one seed and one backend")
        for backend in self.backends:
            if backend not in BACKENDS:
                raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if any(seed < 0 for seed in self.seeds):
            raise ConfigError(f"seeds must be non-negative, got {list(self.seeds)}")
        from spiking_rhm.rules import rule_class  # the rule registry imports torch: after the cheap checks

        # overrides may name rules that are not selected (a file narrowed by --rule), but every
        # name must be a registered rule, so that a typo is not silently ignored
        from spiking_rhm.presets import is_preset, preset_run

        for name in sorted(set(self.overrides) - set(self.rules)):
            if is_preset(name):
                continue
            try:
                rule_class(name)
            except SpikingRHMError as err:
                raise ConfigError(f"overrides: {err}") from None
        templates = {}
        backend_options = set().union(*(_backend_option_names(b) for b in self.backends))
        points = vary_points(self.vary)
        for rule, (i, point) in itertools.product(self.rules, enumerate(points)):
            if is_preset(rule):  # a protocol preset (spiking_rhm.presets): its rule with its settings
                run = _deep_merge(preset_run(rule, self.run, _deep_merge), self.overrides.get(rule, {}))
            else:
                run = {**self.run_dict(rule), "rule": rule}
            run = _deep_merge(run, point)
            cls = rule_class(run["rule"])  # unknown rule -> clear error listing the valid ones
            template = RunConfig.from_dict({**run, "backend": self.backends[0]})  # spiking.neuron
            options = {k: v for k, v in template.rule_options.items() if k not in backend_options}
            try:
                cls(**options)  # options neither the rule nor the back end takes -> clear error
                for point in _grid_rule_options(template, backend_options):
                    cls(**{**options, **point})
            except ConfigError as err:
                if backend_options:
                    raise ConfigError(f"{err} (back-end options: {', '.join(sorted(backend_options))})") from None
                raise
            templates[rule, i] = run
        runs = []
        for setting in self.rhm:
            grammar = setting.build()
            sizes = []
            for spelling in self.P:
                try:
                    size = resolve_size(spelling, grammar)
                except SpikingRHMError as err:
                    raise ConfigError(str(err) if str(err).startswith("P = ") else f"P = {spelling!r}: {err}") from None
                if size not in sizes:
                    sizes.append(size)
            for rule, backend, i, P, seed in itertools.product(self.rules, self.backends, range(len(points)),
                                                               sorted(sizes), self.seeds):
                where = f"run {rule}/{backend}{_point_text(points[i])} P={P} seed={seed}"
                try:
                    cfg = RunConfig.from_dict({**templates[rule, i], "rhm": dataclasses.asdict(setting),
                                               "backend": backend, "P": P, "seed": seed})
                    cfg.sizes()
                except SpikingRHMError as err:
                    raise ConfigError(f"{where}: {err}") from None
                runs.append(cfg)
        return runs


def _vary_axes(value, where: str) -> dict[str, tuple]:
    """``vary``: a table of run settings (``"section.key"`` in a :data:`RUN_KEYS` section other than
    ``grid``, or ``"P_test"``) to non-empty lists of distinct values."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table of \"section.key\" = [values], got {value!r}")
    axes = {}
    for key, values in value.items():
        parts = str(key).split(".")
        scalar = parts[0] in ("P_test", "device")  # the RUN_KEYS that are values, not sections
        if parts[0] not in RUN_KEYS or parts[0] == "grid" or not all(parts) or (len(parts) == 1) != scalar:
            valid = ", ".join(f"{k}.<key>" for k in RUN_KEYS if k not in ("grid", "P_test", "device"))
            raise ConfigError(f"{where}: cannot vary {key!r}; give a run setting: {valid}, P_test or device "
                              f"(rules, backends, P and seeds are axes of their own)")
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{where}.{key} must be a non-empty list of values, got {values!r}")
        if len({repr(v) for v in values}) != len(values):
            raise ConfigError(f"{where}.{key} lists a value twice: {list(values)!r}")
        axes[str(key)] = tuple(values)
    return axes


def vary_points(vary: Mapping[str, Sequence]) -> list[dict]:
    """Every combination of the ``vary`` axes as nested run sections (``[{}]`` without axes), first axis slowest."""
    points = []
    for values in itertools.product(*vary.values()):
        point: dict = {}
        for key, value in zip(vary, values):
            *sections, name = key.split(".")
            target = point
            for section in sections:
                target = target.setdefault(section, {})
            target[name] = value
        points.append(point)
    return points


def _point_text(point: Mapping, prefix: str = "") -> str:
    """`` spiking.neuron=adex``: a vary point in an error message."""
    return "".join(_point_text(v, f"{prefix}{k}.") if isinstance(v, Mapping) else f" {prefix}{k}={v}"
                   for k, v in point.items())


def _grid_rule_options(template: RunConfig, backend_options: set[str]) -> list[dict]:
    """The rule options of every grid point of ``template`` (back-end options left out)."""
    from spiking_rhm.selection import grid_path, grid_points

    keys = {key: grid_path(key) for key in template.grid}
    out = []
    for point in grid_points(template.grid):
        options = {keys[k][1]: v for k, v in point.items() if keys[k][0] == "rule_options"}
        out.append({k: v for k, v in options.items() if k not in backend_options})
    return out


def _backend_option_names(backend: str) -> set[str]:
    """Names in ``rule_options`` that the back end consumes itself (:func:`spiking_rhm.api.backend_option_names`)."""
    _register_backends()
    from spiking_rhm import api

    return api.backend_option_names(backend)


def _register_backends() -> None:
    """Fill the trainer registry with the back ends above the core (also in worker processes)."""
    import rate_models  # noqa: F401  (registers the rate back end)


def _deep_merge(base: dict, change: Mapping) -> dict:
    out = dict(base)
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _as_list(value, where: str) -> list:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{where} must be a non-empty list, got {value!r}")
    return list(value)


def _str_tuple(value, where: str) -> tuple[str, ...]:
    items = _as_list(value, where)
    if any(not isinstance(x, str) or not x.strip() for x in items):
        raise ConfigError(f"{where} must be a list of names, got {value!r}")
    return tuple(dict.fromkeys(x.strip() for x in items))


def _int_tuple(value, where: str) -> tuple[int, ...]:
    items = _as_list(value, where)
    if any(isinstance(x, bool) or not isinstance(x, int) for x in items):
        raise ConfigError(f"{where} must be a list of integers, got {value!r}")
    return tuple(dict.fromkeys(items))


def _size_tuple(value, where: str) -> tuple[int | str, ...]:
    items = _as_list(value, where)
    for x in items:
        if isinstance(x, bool) or not isinstance(x, (int, str)):
            raise ConfigError(f"{where}: {x!r} is not a size; use an integer (1000), 'Nx' (N n_c m^L) or 'max'")
    return tuple(dict.fromkeys(items))


# ---------------------------------------------------------------------------
# CLI list syntax
# ---------------------------------------------------------------------------
def parse_size_list(text: str) -> tuple[int | str, ...]:
    """``"256,2x,4x,max"`` -> ``(256, "2x", "4x", "max")`` (checked against P_max later)."""
    items = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if part.lstrip("-").isdigit():
            items.append(int(part))
        elif part.lower() == "max" or part.lower().endswith("x"):
            try:
                if part.lower() != "max":
                    float(part[:-1])
            except ValueError:
                raise ConfigError(f"cannot read P = {part!r}: use an integer (1000), 'Nx' (e.g. '4x', "
                                  "N times n_c*m^L) or 'max'") from None
            items.append(part.lower())
        else:
            raise ConfigError(f"cannot read P = {part!r}: use an integer (1000), 'Nx' (e.g. '4x', "
                              "N times n_c*m^L) or 'max'")
    if not items:
        raise ConfigError("--P needs at least one size")
    return tuple(items)


def parse_int_list(text: str, what: str = "seeds") -> tuple[int, ...]:
    """``"0,1,2"`` or ``"0-4"`` (inclusive range) or a mix -> tuple of ints."""
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"cannot read {what} {part!r}: use integers, comma lists (0,1,2) or ranges (0-4)") from None
    if not out:
        raise ConfigError(f"--{what} needs at least one integer")
    return tuple(dict.fromkeys(out))


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------
def run_one(cfg: RunConfig, train_fn: TrainFn | None = None) -> dict:
    """Train one run; any exception becomes a ``failed`` record carrying its message."""
    from spiking_rhm import api

    if train_fn is None:
        _register_backends()
    train_fn = train_fn or api.train
    start = time.perf_counter()
    try:
        return train_fn(cfg, progress=False)
    except Exception as err:  # noqa: BLE001 - a failing run must not stop the sweep
        message = f"{type(err).__name__}: {err}"
        metrics = {"error": message, "traceback": traceback.format_exc(limit=20)}
        return api.make_record(cfg, metrics, wall_time=time.perf_counter() - start, status="failed")


# what run_stored reports besides the record
WRITTEN, RETURNED, BUSY, EXISTING = "written", "returned", "busy", "existing"


def run_stored(cfg: RunConfig, out: str, train_fn: TrainFn | None = None, retry_failed: bool = True,
               wait: bool = False) -> tuple[str, dict | None]:
    """Run ``cfg`` under its lock in ``out`` and write its record there; runs in the worker.

    Returns ``(state, record)``: ``written`` (trained, record written here), ``existing`` (another
    process finished it meanwhile), ``busy`` (another process holds its lock; only when ``wait`` is
    False) or ``returned`` (``out`` is not visible here, e.g. a Dask worker on another file system:
    trained without a lock, the caller writes the record).
    """
    from experiments.store import ResultStore, is_final

    if not (Path(out) / "records").is_dir():
        return RETURNED, run_one(cfg, train_fn)
    store = ResultStore(out, load=False)
    run_id = cfg.run_id()
    with store.run_lock(run_id, blocking=wait) as held:
        if not held:
            return BUSY, None
        existing = store.read(run_id)
        if is_final(existing) or (existing is not None and not retry_failed):
            return EXISTING, existing
        return WRITTEN, store.write(run_one(cfg, train_fn))


def _init_worker(threads: int, parent: int) -> None:
    """Pool worker set-up: share the CPUs; leave Ctrl-C to the parent; die with the parent.

    torch takes its thread count from ``OMP_NUM_THREADS`` when the first run imports it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def exit_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """End this process when ``parent`` dies, even by SIGKILL.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; everywhere: a daemon thread that exits the process
    once the parent pid changes (re-parenting), checked every ``poll_s`` seconds.
    """
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below does it
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    if os.getppid() != parent:  # died before prctl was armed
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@dataclass
class SweepSummary:
    """What :func:`run_sweep` did: runs in the grid, skipped (already finished), new statuses, and the
    runs that another process (a concurrent sweep on the same directory) finished."""

    total: int
    skipped: int
    statuses: Counter
    out: Path
    by_others: int = 0

    def __str__(self) -> str:
        done = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items())) or "nothing new"
        others = f", {self.by_others} finished by another sweep on this directory" if self.by_others else ""
        return (f"{self.total} runs in the sweep, {self.skipped} already finished, ran: {done}{others}; "
                f"results in {self.out / 'results.jsonl'}")


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT or SIGTERM; carries the signal and the summary so far."""

    def __init__(self, signum: int, summary: SweepSummary, finished: int):
        super().__init__(signum)
        self.signum, self.summary, self.finished = signum, summary, finished

    def __str__(self) -> str:
        import signal

        total = self.summary.total
        return (f"interrupted by {signal.Signals(self.signum).name}: {self.finished} of {total} runs finished, "
                f"{total - self.finished} not; the runs in flight were stopped; rerun the same command to resume")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[list[int]]:
    """SIGTERM (and SIGINT) raise KeyboardInterrupt in the main thread; yields the list of signals caught."""
    import signal
    import threading

    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, frame):
        caught.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_sweep(sweep: SweepConfig, out: str | os.PathLike | None = None, train_fn: TrainFn | None = None,
              progress: bool = True) -> SweepSummary:
    """Run every unfinished run of ``sweep`` and store each record as it finishes.

    ``train_fn`` (default :func:`spiking_rhm.api.train`) must be picklable by reference for the
    process pool and Dask.  Finished runs (status ok, diverged or no-test-points; failed too when
    ``retry_failed`` is false) are skipped, so an interrupted sweep resumes where it stopped.  Each
    run is computed under its lock (:meth:`~experiments.store.ResultStore.run_lock`): a run another
    sweep is computing is waited for after this sweep's other runs, and redone if that sweep died.
    SIGINT/SIGTERM stop the workers and raise :class:`SweepInterrupted`.
    """
    import signal

    from tqdm.auto import tqdm

    out = out if out is not None else sweep.out
    if out is None:
        raise ConfigError("the sweep needs an output directory (--out DIR or out = 'DIR' in the config)")
    runs = sweep.runs()
    if train_fn is None:
        from spiking_rhm.api import backend_trainer

        for backend in sweep.backends:
            backend_trainer(backend)  # unavailable back end -> clear error before anything runs
    store = ResultStore(out)
    out_abs = str(Path(out).resolve())  # Dask workers and pool workers may have another cwd

    def done(cfg: RunConfig) -> bool:
        record = store.get(cfg.run_id())
        return store.finished(cfg.run_id()) or (record is not None and not sweep.retry_failed)

    pending = [cfg for cfg in runs if not done(cfg)]
    summary = SweepSummary(total=len(runs), skipped=len(runs) - len(pending), statuses=Counter(), out=Path(out))
    bar = tqdm(total=len(runs), initial=summary.skipped, unit="run", desc="sweep", disable=not progress,
               dynamic_ncols=True)
    busy: list[RunConfig] = []

    def finish(cfg: RunConfig, state: str, record: dict | None) -> None:
        if state == BUSY:
            busy.append(cfg)
            return
        if state == EXISTING:
            summary.by_others += 1
        else:
            store.add(record, written=state == WRITTEN)
            summary.statuses[record["status"]] += 1
        bar.update(1)
        bar.set_postfix({k: v for k, v in summary.statuses.items()}, refresh=False)

    def execute(cfgs: Sequence[RunConfig], wait: bool) -> None:
        if not cfgs:
            return
        groups = stacking.jobs(cfgs, sweep.stack, train_fn)  # runs stacked into one model: experiments.stacking
        if sweep.dask:
            _run_dask(groups, sweep.dask, out_abs, train_fn, sweep.retry_failed, wait, finish)
            return
        workers = min(sweep.workers or default_workers(), len(groups))
        if workers == 1:
            for group in groups:
                for cfg, result in zip(group, stacking.run_stored_group(group, out_abs, train_fn, sweep.retry_failed,
                                                                        wait)):
                    finish(cfg, *result)
        else:
            _run_pool(groups, workers, out_abs, train_fn, sweep.retry_failed, wait, finish)

    with _signals_raise() as caught:
        try:
            execute(pending, wait=False)
            waiting, busy = busy, []
            execute(waiting, wait=True)  # runs another sweep held: wait for it, redo what it did not finish
        except KeyboardInterrupt:
            from experiments.store import is_final

            finished = sum(is_final(store.read(cfg.run_id())) for cfg in runs)  # on disk, workers' too
            raise SweepInterrupted(caught[-1] if caught else signal.SIGINT, summary, finished) from None
        finally:
            bar.close()
    return summary


def _run_pool(pending: Sequence[RunConfig], workers: int, out: str, train_fn, retry_failed: bool, wait: bool,
              finish) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads, os.getpid()))
    try:
        futures = {pool.submit(stacking.run_stored_group, group, out, train_fn, retry_failed, wait): group
                   for group in pending}
        for future in as_completed(futures):
            group = futures.pop(future)
            for cfg, result in zip(group, _results_or_failed(future, group)):
                finish(cfg, *result)
    except BaseException:  # a signal or an error in the parent: stop the runs in flight now
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
        raise
    pool.shutdown(wait=True)


def _run_dask(pending: Sequence[RunConfig], address: str, out: str, train_fn, retry_failed: bool, wait: bool,
              finish) -> None:
    """Each run on a Dask worker, which writes its record when it sees ``out`` (a shared file system);
    a result is released on the cluster as soon as the client has it, so that a lost worker costs only
    its unfinished runs."""
    try:
        from distributed import Client, as_completed
    except ModuleNotFoundError:  # pragma: no cover - dask is a dependency
        raise ConfigError("--dask needs the 'distributed' package (pip install 'dask[distributed]')") from None
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise ConfigError(f"cannot reach the Dask scheduler at {address!r}: {err}") from None
    futures = {}
    try:
        for group in pending:
            future = client.submit(stacking.run_stored_group, group, out, train_fn, retry_failed, wait, pure=False,
                                   key=f"spiking-rhm-run-{group[0].run_id()}-{time.time_ns()}")
            futures[future] = group
        for future in as_completed(list(futures)):
            group = futures.pop(future)
            results = _results_or_failed(future, group)
            future.release()  # the scheduler forgets it: a later lost worker does not recompute it
            for cfg, result in zip(group, results):
                finish(cfg, *result)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.close()


def _results_or_failed(future, group: Sequence[RunConfig]) -> list[tuple[str, dict | None]]:
    """The ``(state, record)`` of each run of a finished future's group; a lost worker gives ``failed`` records."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - the run itself catches its exceptions; this is infrastructure
        from spiking_rhm import api

        return [(RETURNED, api.make_record(cfg, {"error": f"{type(err).__name__}: {err}"}, wall_time=0.0,
                                           status="failed")) for cfg in group]
