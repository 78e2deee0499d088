"""spiking_rhm.quantisation: b-bit weights with one scale per layer, and the spiking.weight_bits setting."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from spiking_rhm.config import RunConfig, SpikingConfig
from spiking_rhm.errors import ConfigError
from spiking_rhm.quantisation import fill_factor, mantissa_max, quantise_weight, weight_levels


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_levels_fill_the_range_and_round_to_half_a_step(bits):
    w = torch.randn(7, 5, 3, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)
    k, m = weight_levels(w, bits), mantissa_max(bits)
    assert torch.equal(k, k.round()) and int(k.abs().max()) == m and k.abs().max() <= m
    step = float(w.abs().max()) / m
    wq = quantise_weight(w, bits)
    assert float((wq - w).abs().max()) <= step / 2 * (1 + 1e-12)
    assert torch.allclose(wq, k * step, rtol=1e-14, atol=0)
    # the same levels, recomputed independently: nearest multiple of the step (no ties in random weights)
    assert torch.equal(k, torch.round(w / step))


def test_quantising_twice_changes_nothing_and_a_scale_does_not_matter():
    w = torch.randn(16, 9, generator=torch.Generator().manual_seed(0))
    wq = quantise_weight(w, 8)
    assert torch.equal(weight_levels(wq, 8), weight_levels(w, 8))
    assert torch.equal(weight_levels(3.7 * wq.double(), 8), weight_levels(w, 8))  # per-layer gains: same integers
    assert wq.dtype == w.dtype and not wq.requires_grad


def test_zero_layer_stays_zero():
    w = torch.zeros(3, 4)
    assert fill_factor(w, 8) == 0.0 and torch.equal(quantise_weight(w, 8), w)


@pytest.mark.parametrize("bits", [0, 1, 17, 40, 8.0, True, "8"])
def test_bad_weight_bits_give_one_clear_line(bits):
    with pytest.raises(ConfigError, match=r"spiking\.weight_bits must be an integer from 2 to 16"):
        RunConfig(backend="norse", spiking=SpikingConfig(weight_bits=bits))


@pytest.mark.parametrize("backend", ["rate", "brian2"])
def test_weight_bits_is_a_norse_option(backend):
    with pytest.raises(ConfigError, match="option of the norse back end"):
        RunConfig(backend=backend, spiking=SpikingConfig(weight_bits=8))


def test_default_is_off_and_keeps_run_ids():
    cfg = RunConfig(backend="norse")
    assert cfg.spiking.weight_bits is None
    assert cfg.run_id() == RunConfig(backend="norse", spiking=SpikingConfig(weight_bits=None)).run_id()
    assert RunConfig(backend="norse", spiking=SpikingConfig(weight_bits=8)).run_id() != cfg.run_id()


def test_cli_rejects_a_bad_value_with_exit_code_2():
    out = subprocess.run([sys.executable, "-m", "spiking_rhm.cli", "train", "--backend", "norse", "--rule", "dfa",
                          "--option", "spiking.weight_bits=40", "--quiet"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: spiking.weight_bits must be an integer from 2 to 16 (signed weight bits; Loihi: 8) or none, got 40"]
