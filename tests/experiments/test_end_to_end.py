"""A real (tiny) sweep through the rate back end: CLI curve -> records -> pstar -> plot, and the
same sweep on a local Dask cluster gives the same records (timings aside)."""

import pytest
from click.testing import CliRunner

from experiments.store import read_results
from experiments.sweep import SweepConfig, run_sweep

pytest.importorskip("rate_models.train")

TIMINGS = ("samples_per_s", "train_time", "wall_time", "memory")  # measurements of the machine


def comparable(record):
    out = {k: v for k, v in record.items() if k not in ("wall_time", "platform")}
    out["metrics"] = {k: v for k, v in record["metrics"].items() if k not in TIMINGS}
    return out


def test_real_rate_sweep_cli_and_dask_agree(tmp_path):
    distributed = pytest.importorskip("distributed")
    from spiking_rhm.cli import cli

    args = ["curve", "--rule", "bp,random-features", "--backend", "rate", "--v", "8", "--m", "4", "--nc", "8",
            "--s", "2", "--L", "2", "--P", "0.5x,1x", "--seeds", "0", "--epochs", "2", "--width", "8",
            "--out", str(tmp_path / "local"), "--workers", "2", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    local = read_results(tmp_path / "local")
    assert len(local) == 4 and all(r["status"] == "ok" for r in local), [r.get("metrics", {}).get("error") for r in local]
    for r in local:
        assert 0 <= r["test_error"] <= 1 and r["P_test"] == 512 - r["P"]
        assert len(r["metrics"]["sensitivity"]["layers"]) == 2  # one row per hidden layer

    sweep = SweepConfig.from_dict({"rules": ["bp", "random-features"], "P": ["0.5x", "1x"], "seeds": [0],
                                   "rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2},
                                   "optim": {"epochs": 2}, "net": {"width": 8}})
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        run_sweep(sweep.replace(dask=cluster.scheduler_address), tmp_path / "dask", progress=False)
    dask = read_results(tmp_path / "dask")
    assert [comparable(r) for r in dask] == [comparable(r) for r in local]

    runner = CliRunner()
    table = runner.invoke(cli, ["pstar", str(tmp_path / "local"), "--boot", "20"])
    assert table.exit_code == 0 and "bp [rate]" in table.output and "random-features [rate]" in table.output
    figures = runner.invoke(cli, ["plot", str(tmp_path / "local")])
    assert figures.exit_code == 0, figures.output
    assert (tmp_path / "local" / "figures" / "learning_curves.png").exists()
    assert (tmp_path / "local" / "figures" / "sensitivity.pdf").exists()
