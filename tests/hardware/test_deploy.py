"""Deployment report (hardware/deploy.py): the same spikes through Norse, Lava float and Loihi fixed point."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nir")

from hardware_helpers import make_network  # noqa: E402

from hardware.deploy import evaluate_deployment, format_report  # noqa: E402
from hardware.nir_graph import to_nir  # noqa: E402
from spiking_rhm.backends.norse.deployed import encode, simulate  # noqa: E402
from spiking_rhm.errors import ConfigError  # noqa: E402


def test_norse_row_is_the_networks_own_error_on_the_held_out_points():
    net = make_network("cnn")
    report = evaluate_deployment(to_nir(net), P_test=8, targets=["norse", "loihi-fixed"], engine="reference", batch=3)
    _, test = net.config.rhm.build().split(16, 8, seed=net.config.seed)
    seed = net.config.seed + 1
    wrong = 0
    for k, i in enumerate(range(0, 8, 3)):  # the same chunks and spike seeds, recomputed here
        _, logits, _ = simulate(net, encode(net, test.inputs[i:i + 3], seed + k))
        wrong += int((logits.argmax(1).numpy() != test.labels[i:i + 3]).sum())
    rows = report["targets"]
    assert rows["norse"]["test_error"] == pytest.approx(wrong / 8)
    assert rows["norse"]["agreement_with_norse"] == 1.0
    fixed = rows["loihi-fixed"]
    assert len(fixed["spike_agreement"]) == 2 and min(fixed["spike_agreement"]) > 0.9
    assert [q["layer"] for q in report["quantisation"]] == [1, 2]
    text = format_report(report)
    assert "loihi-fixed (ref)" in text and "norse" in text


def test_figures_are_written(tmp_path):
    report = evaluate_deployment(to_nir(make_network("lcn"), conv=False), P_test=4, targets=["norse", "loihi-fixed"],
                                 engine="reference", figures=tmp_path / "figs")
    names = sorted(p.rsplit("/", 1)[-1] for p in report["figures"])
    assert names == ["counts.png", "rasters.png"]
    for path in report["figures"]:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bad_requests_are_clear():
    graph = to_nir(make_network("cnn"))
    with pytest.raises(ConfigError, match="unknown target"):
        evaluate_deployment(graph, targets=["loihi-9"])
    with pytest.raises(ConfigError, match="held-out points do not exist"):
        evaluate_deployment(graph, P_test=100, engine="reference", targets=["norse"])
    with pytest.raises(ConfigError, match="positive integers"):
        evaluate_deployment(graph, P_test=0)


@pytest.mark.lava
def test_lava_rows_match_norse_exactly_in_float():
    net = make_network("lcn")
    report = evaluate_deployment(to_nir(net, conv=False), P_test=6, batch=6)
    rows = report["targets"]
    assert rows["lava-float"]["agreement_with_norse"] == 1.0
    assert rows["lava-float"]["spike_agreement"] == [1.0, 1.0]
    assert rows["lava-float"]["test_error"] == rows["norse"]["test_error"]
    assert np.all(np.array(rows["loihi-fixed"]["spike_agreement"]) > 0.9)


def test_fixed_point_aware_training_deploys_without_weight_rounding(tmp_path):
    """A network trained with spiking.weight_bits = 8 reaches Loihi fixed point with its weights exact (the export
    finds the training's integers), and its fixed-point spikes follow Norse closer than the same network trained
    in float; what is left is the rounding of decays, thresholds and the integer potentials."""
    import dataclasses

    from hardware_helpers import make_config

    from spiking_rhm.api import train
    from spiking_rhm.backends.norse.deployed import from_checkpoint
    from spiking_rhm.checkpoint import Checkpoint
    from spiking_rhm.config import OptimConfig, RHMConfig

    reports = {}
    for bits in (None, 8):
        cfg = make_config("cnn", width=6)
        cfg = cfg.replace(rhm=RHMConfig(v=8, m=4, n_c=8, s=2, L=2), P=64, P_test=128,
                          spiking=dataclasses.replace(cfg.spiking, weight_bits=bits),
                          optim=OptimConfig(epochs=2, batch_size=16))
        train(cfg, checkpoint=tmp_path / f"{bits}.npz")
        net = from_checkpoint(Checkpoint.load(tmp_path / f"{bits}.npz"))
        reports[bits] = evaluate_deployment(to_nir(net), P_test=128, targets=["norse", "loihi-fixed"],
                                            engine="reference", batch=128)
    assert all(q["relative_weight_error"] < 1e-6 for q in reports[8]["quantisation"])
    assert all(q["relative_weight_error"] > 1e-3 for q in reports[None]["quantisation"])
    fixed = {bits: r["targets"]["loihi-fixed"] for bits, r in reports.items()}
    assert fixed[8]["agreement_with_norse"] == 1.0 and min(fixed[8]["spike_agreement"]) > 0.999
    assert all(a > b for a, b in zip(fixed[8]["spike_agreement"], fixed[None]["spike_agreement"]))
