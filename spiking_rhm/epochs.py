"""What the training loops of every back end (rate, Norse) record: per-epoch bookkeeping and final scores."""

from __future__ import annotations

import math
import time
from typing import Callable


class EpochLog:
    """Learning curve, divergence, test schedule, progress bar and early stop of one training run.

    The test error is measured every ``max(1, n_epochs // 20)`` epochs and at the last one.  Training
    stops (``stop_reason``) when the epoch's train loss or the parameters are not finite (``diverged``),
    when the train loss falls below ``stop_train_loss`` (``train_loss``), when the epoch's train error is
    ``<= stop_train_error`` (``train_error``; None: off), or after ``plateau`` epochs in which the train
    loss never fell below ``(1 - 1e-3) x`` its least value so far (``plateau``; 0: off); otherwise after
    the ``n_epochs`` budget (``budget``).  ``stopped_early`` is the epoch of an early stop.
    """

    PLATEAU_TOL = 1e-3  # a new least train loss must improve the old one by this relative amount

    def __init__(self, n_epochs: int, stop_train_loss: float, progress: bool = False, desc: str = "",
                 stop_train_error: float | None = None, plateau: int = 0):
        self.n_epochs, self.stop_train_loss = n_epochs, stop_train_loss
        self.stop_train_error, self.plateau = stop_train_error, plateau
        self.best_loss, self.since_best = math.inf, 0
        self.stop_reason = "budget"
        self.eval_every = max(1, n_epochs // 20)
        self.curve: dict[str, list] = {"epoch": [], "train_loss": [], "train_error": [], "test_epoch": [],
                                       "test_error": []}
        self.diverged = False
        self.stopped_early: int | None = None
        self.epochs_run = 0
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_epochs, desc=desc, unit="epoch", leave=False)
        self._start = time.perf_counter()
        self.train_time = 0.0

    def end_epoch(self, epoch: int, train_loss: float, train_error: float, params_finite: Callable[[], bool],
                  test_error: Callable[[], float]) -> bool:
        """Record one epoch; True when the loop must stop (diverged, or train loss below the threshold)."""
        self.epochs_run = epoch
        self.curve["epoch"].append(epoch)
        self.curve["train_loss"].append(train_loss)
        self.curve["train_error"].append(train_error)
        if not math.isfinite(train_loss) or not params_finite():
            self.diverged, self.stop_reason = True, "diverged"
            return True
        reason = self._early_stop(train_loss, train_error)
        converged = reason is not None
        if epoch % self.eval_every == 0 or epoch == self.n_epochs or converged:
            self.curve["test_epoch"].append(epoch)
            self.curve["test_error"].append(test_error())
        if self.bar is not None:
            self.bar.update(1)
            last_test = self.curve["test_error"]
            self.bar.set_postfix(loss=f"{train_loss:.3g}", test=f"{last_test[-1]:.3f}" if last_test else "-")
        if converged:
            self.stopped_early, self.stop_reason = epoch, reason
            return True
        return False

    def _early_stop(self, train_loss: float, train_error: float) -> str | None:
        """The reason to stop after this epoch (class docstring), or None."""
        if train_loss < self.stop_train_loss:
            return "train_loss"
        if self.stop_train_error is not None and train_error <= self.stop_train_error:
            return "train_error"
        if train_loss < (1 - self.PLATEAU_TOL) * self.best_loss:
            self.best_loss, self.since_best = train_loss, 0
        else:
            self.since_best += 1
        return "plateau" if self.plateau and self.since_best >= self.plateau else None

    def close(self) -> float:
        """Close the bar; the training time in seconds since construction."""
        self.train_time = time.perf_counter() - self._start
        if self.bar is not None:
            self.bar.close()
        return self.train_time

    def record(self, samples_seen: int) -> dict:
        """The run-record fields this log owns (every back end's record has them)."""
        return {"diverged": self.diverged, "curve": self.curve, "epochs_run": self.epochs_run,
                "epochs_planned": self.n_epochs, "stopped_early_at_epoch": self.stopped_early,
                "stop_reason": self.stop_reason,
                "samples_per_s": samples_seen / max(self.train_time, 1e-9), "train_time": self.train_time}


def evaluation_fields(online_test: float, online_train: float, probe: dict | None, supervised: bool, diverged: bool,
                      P: int, P_test: int, n_generated: int, data_use: dict) -> dict:
    """The scores and data use of a run record.

    Supervised rules are scored by their own (online) readout; frozen and self-supervised features by the
    converged linear probe (``probe``, None when not run); a diverged run scores NaN.
    """
    test_error, train_error = online_test, online_train
    if probe is not None and not supervised:
        test_error, train_error = probe["test_error"], probe["train_error"]
    if diverged:
        test_error = train_error = float("nan")
    return {"test_error": test_error, "train_error": train_error,
            "data": {"labelled_trees": P, "unlabelled_inputs": P if not supervised else 0,
                     "generated_resampled_inputs": n_generated, "test_points": P_test,
                     "pair_mode": data_use.get("pairs"), "pairs": data_use},
            "online_readout": {"test_error": online_test, "train_error": online_train}, "probe": probe,
            "evaluation": "online readout" if supervised else "linear probe"}
