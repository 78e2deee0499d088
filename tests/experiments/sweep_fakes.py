"""A fake trainer and rule for testing the sweep machinery without training anything.

The fake test error is a fixed function of (P, seed): ``min(0.9, 50 / P) * (1 + 0.1 seed)``.
Environment variables steer it (they are inherited by worker processes):
``SWEEP_FAKE_LOG`` -- append "run_id P seed" for every call; ``SWEEP_FAKE_HANG_P`` -- a run with
this P writes ``<log>.hang`` and sleeps for an hour (to be killed).
"""

import os
import time

from spiking_rhm import api
from spiking_rhm.rules.base import Rule


class FakeRule(Rule):
    name = "fake"
    summary = "test double: never trained"
    option_defaults = {"mode": "ok"}  # ok | diverge | fail


def fake_error(P: int, seed: int) -> float:
    return min(0.9, 50.0 / P) * (1.0 + 0.1 * seed)


def fake_train(cfg, progress=False):
    """Stands in for :func:`spiking_rhm.api.train` (returns a record)."""
    return api.make_record(cfg, fake_backend(cfg), wall_time=0.01)


def fake_backend(cfg, progress=False):
    """Stands in for a back end's trainer (returns metrics)."""
    P, _ = cfg.sizes()
    log = os.environ.get("SWEEP_FAKE_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{cfg.run_id()} {P} {cfg.seed}\n")
    if os.environ.get("SWEEP_FAKE_HANG_P") == str(P):
        open(log + ".hang", "w").close()
        time.sleep(3600)
    mode = cfg.rule_options.get("mode", "ok")
    if mode == "fail":
        raise RuntimeError(f"fake failure at P={P}")
    error = float("nan") if mode == "diverge" else fake_error(P, cfg.seed)
    return {"test_error": error, "train_error": 0.0, "loss": [1.0, error]}
