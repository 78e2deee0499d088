"""The per-epoch bookkeeping shared by the training loops of every back end (rate, Norse)."""

from __future__ import annotations

import math
import time
from typing import Callable


class EpochLog:
    """Learning curve, divergence, test schedule, progress bar and early stop of one training run.

    The test error is measured every ``max(1, n_epochs // 20)`` epochs and at the last one; training
    stops when the epoch's train loss or the parameters are not finite (``diverged``) or when the
    train loss falls below ``stop_train_loss`` (``stopped_early`` = that epoch).
    """

    def __init__(self, n_epochs: int, stop_train_loss: float, progress: bool = False, desc: str = ""):
        self.n_epochs, self.stop_train_loss = n_epochs, stop_train_loss
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

    def end_epoch(self, epoch: int, train_loss: float, train_error: float, params_finite: Callable[[], bool],
                  test_error: Callable[[], float]) -> bool:
        """Record one epoch; True when the loop must stop (diverged, or train loss below the threshold)."""
        self.epochs_run = epoch
        self.curve["epoch"].append(epoch)
        self.curve["train_loss"].append(train_loss)
        self.curve["train_error"].append(train_error)
        if not math.isfinite(train_loss) or not params_finite():
            self.diverged = True
            return True
        converged = train_loss < self.stop_train_loss
        if epoch % self.eval_every == 0 or epoch == self.n_epochs or converged:
            self.curve["test_epoch"].append(epoch)
            self.curve["test_error"].append(test_error())
        if self.bar is not None:
            self.bar.update(1)
            last_test = self.curve["test_error"]
            self.bar.set_postfix(loss=f"{train_loss:.3g}", test=f"{last_test[-1]:.3f}" if last_test else "-")
        if converged:
            self.stopped_early = epoch
            return True
        return False

    def close(self) -> float:
        """Close the bar; the training time in seconds since construction."""
        train_time = time.perf_counter() - self._start
        if self.bar is not None:
            self.bar.close()
        return train_time
