"""spiking_rhm.memory: the peak resident memory of one run in a process that trains many."""

import numpy as np
import pytest

from spiking_rhm import api
from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig
from spiking_rhm.memory import PeakMemory


def _touch(mb: int) -> np.ndarray:
    return np.ones(mb * 2**20 // 8)  # written pages: resident


def test_the_peak_of_a_run_counts_its_own_allocations_and_not_earlier_ones():
    with PeakMemory() as big:
        a = _touch(200)
        del a
    if "VmHWM" not in big.fields["measure"]:
        pytest.skip("no resettable high-water mark here (not Linux)")
    assert big.fields["peak_increase_mb"] >= 150
    with PeakMemory() as small:  # the earlier 200 MB peak is not this run's
        b = _touch(20)
        del b
    assert 15 <= small.fields["peak_increase_mb"] < 100
    assert small.fields["peak_rss_mb"] >= small.fields["rss_start_mb"]


def test_a_record_carries_its_memory():
    cfg = RunConfig(rhm=RHMConfig(8, 4, 8, 2, 2), P=64, P_test=64, rule="bp", seed=0, net=NetConfig(width=8),
                    optim=OptimConfig(epochs=1, batch_size=32))
    memory = api.train(cfg)["metrics"]["memory"]
    assert memory["peak_rss_mb"] > 0 and "measure" in memory
