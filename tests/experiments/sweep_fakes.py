"""A fake trainer and rule for testing the sweep machinery without training anything.

The fake test error is a fixed function of (P, seed): ``min(0.9, 50 / P) * (1 + 0.1 seed)``.
Environment variables steer it (they are inherited by worker processes):
``SWEEP_FAKE_LOG`` -- append "run_id P seed" for every call; ``SWEEP_FAKE_HANG_P`` -- a run with
this P writes ``<log>.hang`` and sleeps for an hour (to be killed; with ``SWEEP_FAKE_HANG_ONCE`` set,
only while ``<log>.hang`` does not exist yet); ``SWEEP_FAKE_SLEEP`` -- seconds every run takes.
Like the real back ends, a run without test points (P_test = 0) scores a NaN test error, and
``mode = "nan"`` (or ``SWEEP_FAKE_NAN_P`` = the run's P) runs an :class:`~spiking_rhm.epochs.EpochLog`
whose loss turns NaN at epoch 3.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from spiking_rhm import api


def __getattr__(name):
    """``FakeRule``, made on first use, so that a worker that unpickles :func:`fake_train` imports no torch."""
    if name != "FakeRule":
        raise AttributeError(name)
    from spiking_rhm.rules.base import Rule

    class FakeRule(Rule):
        name = "fake"
        summary = "test double: never trained"
        option_defaults = {"mode": "ok"}  # ok | diverge | fail | nan

    FakeRule.__qualname__ = "FakeRule"  # picklable by reference
    globals()["FakeRule"] = FakeRule
    return FakeRule


def fake_error(P: int, seed: int) -> float:
    return min(0.9, 50.0 / P) * (1.0 + 0.1 * seed)


def fake_train(cfg, progress=False):
    """Stands in for :func:`spiking_rhm.api.train` (returns a record)."""
    return api.make_record(cfg, fake_backend(cfg), wall_time=0.01)


def fake_backend(cfg, progress=False, checkpoint=None):
    """Stands in for a back end's trainer (returns metrics)."""
    P, P_test = cfg.sizes()
    log = os.environ.get("SWEEP_FAKE_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{cfg.run_id()} {P} {cfg.seed}\n")
    if os.environ.get("SWEEP_FAKE_HANG_P") == str(P):
        if not (os.environ.get("SWEEP_FAKE_HANG_ONCE") and os.path.exists(log + ".hang")):
            open(log + ".hang", "w").close()
            time.sleep(3600)
    time.sleep(float(os.environ.get("SWEEP_FAKE_SLEEP", "0")))
    mode = cfg.rule_options.get("mode", "ok")
    if mode == "fail":
        raise RuntimeError(f"fake failure at P={P}")
    if mode == "nan" or os.environ.get("SWEEP_FAKE_NAN_P") == str(P):
        return nan_training(P, P_test)
    error = float("nan") if mode == "diverge" or P_test == 0 else fake_error(P, cfg.seed)
    return {"test_error": error, "train_error": 0.0, "loss": [1.0, error]}


def nan_training(P: int, P_test: int, n_epochs: int = 6, nan_epoch: int = 3) -> dict:
    """A training loop whose loss turns NaN at ``nan_epoch``, recorded by the back ends' EpochLog."""
    from spiking_rhm.epochs import EpochLog, evaluation_fields

    log = EpochLog(n_epochs, stop_train_loss=0.0)
    for epoch in range(1, n_epochs + 1):
        loss = float("nan") if epoch >= nan_epoch else 1.0 / epoch
        if log.end_epoch(epoch, loss, 0.5, params_finite=lambda: True, test_error=lambda: 0.5):
            break
    log.close()
    fields = evaluation_fields(0.5, 0.5, None, True, log.diverged, P, P_test, P, {})
    return {**fields, **log.record(P * log.epochs_run)}


HERE = Path(__file__).parent
SWEEP_SCRIPT = textwrap.dedent("""
    import functools, json, sys
    import sweep_fakes
    from spiking_rhm.rules import base
    base._load_builtin_rules()
    base._REGISTRY["fake"] = sweep_fakes.FakeRule
    from experiments import sweep
    if sys.argv[1] == "cli":  # the CLI, its sweeps trained by the fake (the pool workers import it by reference)
        sweep.run_sweep = functools.partial(sweep.run_sweep, train_fn=sweep_fakes.fake_train)
        from spiking_rhm.cli import cli
        cli.main(sys.argv[2:], prog_name="spiking-rhm")
    else:
        summary = sweep.run_sweep(sweep.SweepConfig.from_dict(json.loads(sys.argv[2])),
                                  train_fn=sweep_fakes.fake_train, progress=False)
        print(json.dumps({"skipped": summary.skipped, "statuses": dict(summary.statuses),
                          "by_others": summary.by_others}))
""")


def start_sweep(args, env: dict | None = None) -> subprocess.Popen:
    """A sweep in a new session: ``args`` a sweep dict (run_sweep) or a list of CLI arguments (spiking-rhm)."""
    argv = ["cli", *map(str, args)] if isinstance(args, list) else ["dict", json.dumps(args)]
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1])])}
    return subprocess.Popen([sys.executable, "-c", SWEEP_SCRIPT, *argv], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid`` (Linux /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 120.0, what: str = "") -> None:
    """Poll ``condition()`` until true; fail when ``proc`` exits first or on timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep exited early ({proc.returncode}): {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
