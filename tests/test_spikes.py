"""Spike codes of one-hot RHM inputs: shapes, statistics, exact latencies, seeds, errors."""

from __future__ import annotations

import math

import pytest
import torch

from spiking_rhm.errors import ConfigError, SpikingRHMError, UnknownNameError
from spiking_rhm.rhm import RHM, onehot
from spiking_rhm.spikes import (
    LatencyParams,
    PopulationParams,
    RateParams,
    RegularParams,
    available_codes,
    encode,
    latency_code,
    latency_steps,
    plot_spike_code,
    population_code,
    rate_code,
    regular_code,
)


@pytest.fixture(scope="module")
def batch():
    rhm = RHM(8, 4, 8, 2, 2, seed=0)
    sample = rhm.decode(torch.arange(0, 512, 8).numpy())
    return onehot(sample.inputs, rhm.v), sample.inputs


def _within_binomial(count: float, n: int, p: float, k: float = 5.0) -> bool:
    return abs(count - n * p) <= k * math.sqrt(n * p * (1 - p)) + 1e-9


def test_rate_code_shape_and_rates(batch, gen):
    x, _ = batch
    T, dt = 400, 1e-3
    z = rate_code(x, T, dt, RateParams(max_rate=150.0, background_rate=10.0), generator=gen)
    assert z.shape == (T, *x.shape) and z.dtype == x.dtype
    assert set(z.unique().tolist()) <= {0.0, 1.0}
    active = x.bool().expand_as(z)
    n_on, n_off = int(active.sum()), int((~active).sum())
    assert _within_binomial(float(z[active].sum()), n_on, 150.0 * dt)
    assert _within_binomial(float(z[~active].sum()), n_off, 10.0 * dt)


def test_rate_code_per_channel_rate_and_no_background(batch, gen):
    x, _ = batch
    z = rate_code(x, 1000, 1e-3, RateParams(max_rate=50.0), generator=gen)
    assert float(z[(x == 0).expand_as(z)].sum()) == 0.0
    # each active (sample, position) fires with its own binomial count
    counts = z.sum(0)[x.bool()]
    n, p = 1000, 0.05
    assert (counts - n * p).abs().max() <= 6 * math.sqrt(n * p * (1 - p))


def test_rate_code_intensity_scales_probability(gen):
    x = torch.full((2000, 1, 1), 0.5)
    z = rate_code(x, 50, 1e-3, RateParams(max_rate=400.0), generator=gen)
    assert _within_binomial(float(z.sum()), z.numel(), 0.5 * 400.0 * 1e-3)


def test_latency_code_first_spike_exact(batch):
    x, inputs = batch
    T, dt = 20, 1e-3
    z = latency_code(x, T, dt, LatencyParams(t_first=3e-3))
    assert z.shape == (T, *x.shape)
    assert torch.equal(z.sum(0), x)  # active channels fire exactly once, inactive never
    first = z.argmax(0)[x.bool()]
    assert torch.all(first == 3)
    # the firing channel at step 3 is the input symbol
    assert torch.equal(z[3].argmax(1), torch.as_tensor(inputs))


def test_latency_intensity_sets_time():
    x = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]).view(1, 5, 1)
    T, dt = 11, 1e-3
    steps = latency_steps(x, T, dt, LatencyParams(t_first=1e-3, t_last=9e-3))
    # k = round((t_first + (1 - x)(t_last - t_first)) / dt) = 1 + 8(1 - x)
    assert steps.view(-1).tolist() == [1, 3, 5, 7, -1]
    z = latency_code(x, T, dt, LatencyParams(t_first=1e-3, t_last=9e-3))
    for c, k in enumerate([1, 3, 5, 7]):
        assert z[:, 0, c, 0].nonzero().view(-1).tolist() == [k]
    assert z[:, 0, 4, 0].sum() == 0


def test_latency_default_window_and_errors():
    x = torch.tensor([1.0, 1e-6]).view(1, 2, 1)
    steps = latency_steps(x, 10, 1e-3, LatencyParams())
    assert steps.view(-1).tolist() == [0, 9]
    with pytest.raises(ConfigError, match="outside the window"):
        latency_code(x, 10, 1e-3, LatencyParams(t_first=0.02))
    with pytest.raises(ConfigError, match="t_last"):
        latency_code(x, 10, 1e-3, LatencyParams(t_first=5e-3, t_last=1e-3))
    with pytest.raises(ConfigError, match="t_first"):
        latency_code(x, 10, 1e-3, LatencyParams(t_first=-1e-3))


def test_population_code_one_active_group(batch, gen):
    x, inputs = batch
    n, T, dt = 5, 300, 1e-3
    z = population_code(x, T, dt, PopulationParams(n=n, rate_on=200.0, rate_off=5.0), generator=gen)
    N, v, d = x.shape
    assert z.shape == (T, N, v * n, d)
    groups = z.sum(0).view(N, v, n, d)  # channel a * n + i
    rate = groups.sum(2) / (n * T * dt)  # Hz per (sample, symbol, position)
    # exactly one group per position is the fast one, and it is the input symbol
    fast = rate > 100.0
    assert torch.equal(fast.sum(1), torch.ones(N, d, dtype=torch.long))
    assert torch.equal(rate.argmax(1), torch.as_tensor(inputs))
    on = torch.as_tensor(x.bool()).unsqueeze(2).expand(N, v, n, d)
    assert _within_binomial(float(groups[on].sum()), int(on.sum()) * T, 200.0 * dt)
    assert _within_binomial(float(groups[~on].sum()), int((~on).sum()) * T, 5.0 * dt)


def test_population_without_background_only_active_group_fires(batch, gen):
    x, _ = batch
    z = population_code(x, 100, 1e-3, PopulationParams(n=3, rate_on=300.0), generator=gen)
    active = x.repeat_interleave(3, dim=1).bool()
    per_neuron = z.sum(0)  # [N, v * n, d]
    assert float(per_neuron[~active].sum()) == 0.0
    assert float(per_neuron[active].sum()) > 0


def test_regular_code_counts_are_deterministic(batch, gen):
    """Every active input fires floor(T r dt + phi) times (phi its phase): floor or ceil of T r dt, whatever the seed;
    inactive inputs never fire; spikes are one period apart."""
    x, _ = batch
    T, dt, rate = 37, 1e-3, 150.0
    z = regular_code(x, T, dt, RegularParams(max_rate=rate), generator=gen)
    assert z.shape == (T, *x.shape) and set(z.unique().tolist()) <= {0.0, 1.0}
    counts = z.sum(0)
    on = x.bool()
    expected = T * rate * dt  # 5.55
    assert float(counts[~on].sum()) == 0.0
    assert set(counts[on].unique().tolist()) <= {math.floor(expected), math.ceil(expected)}
    assert abs(float(counts[on].mean()) - expected) < 0.1  # uniform phases: the mean count is T r dt
    other = regular_code(x, T, dt, RegularParams(max_rate=rate), generator=torch.Generator().manual_seed(99))
    assert not torch.equal(z, other)  # phases differ ...
    assert (z.sum(0) - other.sum(0)).abs().max() <= 1  # ... counts by at most one spike
    # one fixed phase: exactly deterministic, inter-spike intervals of 1 / (r dt) steps (here 5 at 200 Hz)
    a = regular_code(x, 40, dt, RegularParams(max_rate=200.0, phase=0.5))
    b = regular_code(x, 40, dt, RegularParams(max_rate=200.0, phase=0.5), generator=gen)
    assert torch.equal(a, b)
    steps = torch.nonzero(a[:, 0, int(torch.nonzero(x[0, :, 0])[0]), 0]).flatten()
    assert len(steps) == 8 and set(torch.diff(steps).tolist()) == {5}


def test_regular_code_intensity_sets_rate():
    x = torch.tensor([[[1.0, 0.5, 0.25, 0.0]]])
    z = regular_code(x, 40, 1e-3, RegularParams(max_rate=200.0, phase=0.0))
    assert z.sum(0).flatten().tolist() == [8.0, 4.0, 2.0, 0.0]


@pytest.mark.parametrize("code", ["rate", "population", "regular"])
def test_seeds_reproduce(batch, code):
    x, _ = batch
    a = encode(x, code, 30, generator=torch.Generator().manual_seed(5))
    b = encode(x, code, 30, generator=torch.Generator().manual_seed(5))
    c = encode(x, code, 30, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_encode_matches_functions(batch):
    x, _ = batch
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(encode(x, "rate", 25, dt=2e-3, generator=g1, max_rate=100.0),
                       rate_code(x, 25, 2e-3, RateParams(max_rate=100.0), g2))
    assert torch.equal(encode(x, "latency", 25, t_first=2e-3), latency_code(x, 25, 1e-3, LatencyParams(2e-3)))
    assert set(available_codes()) >= {"rate", "regular", "latency", "population"}
    assert available_codes()["population"].n_channels(8, PopulationParams(n=3)) == 24


def test_float64_and_device_kept(batch):
    x, _ = batch
    z = encode(x.double(), "rate", 5, generator=torch.Generator().manual_seed(0))
    assert z.dtype == torch.float64 and z.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_same_spikes_from_cpu_generator(batch):
    x, _ = batch
    cpu = encode(x, "rate", 10, generator=torch.Generator().manual_seed(3))
    gpu = encode(x.cuda(), "rate", 10, generator=torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    gpu_gen = encode(x.cuda(), "population", 10, generator=torch.Generator("cuda").manual_seed(3))
    assert gpu_gen.device.type == "cuda"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(code="nope", T=10), "unknown spike code"),
        (dict(code="rate", T=0), "T"),
        (dict(code="rate", T=2.5), "T"),
        (dict(code="rate", T=10, dt=0), "dt"),
        (dict(code="rate", T=10, dt=-1e-3), "dt"),
        (dict(code="rate", T=10, max_rate=2000.0), "max_rate"),
        (dict(code="rate", T=10, background_rate=-1.0), "background_rate"),
        (dict(code="rate", T=10, rate_on=1.0), "takes no parameter"),
        (dict(code="population", T=10, n=0), "population size"),
        (dict(code="population", T=10, rate_on=1500.0), "rate_on"),
        (dict(code="regular", T=10, max_rate=1500.0), "max_rate"),
        (dict(code="regular", T=10, phase=1.0), "phase"),
    ],
)
def test_bad_parameters(batch, kwargs, match):
    x, _ = batch
    with pytest.raises(SpikingRHMError, match=match) as err:
        encode(x, **kwargs)
    if kwargs["code"] == "nope":
        assert isinstance(err.value, UnknownNameError)


def test_bad_inputs(batch):
    x, inputs = batch
    with pytest.raises(ConfigError, match="float"):
        encode(torch.as_tensor(inputs).unsqueeze(1), "rate", 5)
    with pytest.raises(ConfigError, match="shape"):
        encode(x[0], "rate", 5)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        encode(2 * x, "rate", 5)
    with pytest.raises(ConfigError, match="torch tensor"):
        encode(inputs, "rate", 5)


def test_plot_spike_code_writes_png(batch, tmp_path, gen):
    x, _ = batch
    z = encode(x, "population", 40, generator=gen, n=2, rate_on=300.0, rate_off=10.0)
    path = plot_spike_code(z, tmp_path / "raster.png", sample=1, dt=1e-3)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    with pytest.raises(ConfigError):
        plot_spike_code(z, tmp_path / "bad.png", sample=10_000)
