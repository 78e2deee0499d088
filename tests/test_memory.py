"""spiking_rhm.memory: the peak resident memory of one run in a process that trains many."""

import mmap

import numpy as np
import pytest

from spiking_rhm import api
from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig
from spiking_rhm.memory import PeakMemory


def _touch(mb: int) -> mmap.mmap:
    """``mb`` MB of fresh pages, written (resident): an anonymous mapping of its own, never memory that the
    allocator kept from earlier tests (a numpy array of 20 MB can land in such memory and add nothing)."""
    pages = mmap.mmap(-1, mb * 2**20)
    written = np.frombuffer(pages, dtype=np.uint8)
    written.fill(1)
    del written  # the mapping can close once no array views it
    return pages


def test_the_peak_of_a_run_counts_its_own_allocations_and_not_earlier_ones():
    with PeakMemory() as big:
        _touch(200).close()
    if "VmHWM" not in big.fields["measure"]:
        pytest.skip("no resettable high-water mark here (not Linux)")
    assert big.fields["peak_increase_mb"] >= 150
    with PeakMemory() as small:  # the earlier 200 MB peak is not this run's
        _touch(20).close()
    assert 15 <= small.fields["peak_increase_mb"] < 100
    assert small.fields["peak_rss_mb"] >= small.fields["rss_start_mb"]


def test_a_record_carries_its_memory():
    cfg = RunConfig(rhm=RHMConfig(8, 4, 8, 2, 2), P=64, P_test=64, rule="bp", seed=0, net=NetConfig(width=8),
                    optim=OptimConfig(epochs=1, batch_size=32))
    memory = api.train(cfg)["metrics"]["memory"]
    assert memory["peak_rss_mb"] > 0 and "measure" in memory
