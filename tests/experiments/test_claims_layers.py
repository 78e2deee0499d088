"""experiments.claims.layers: per-layer sensitivity and alignment means of stored records."""

import numpy as np
import pytest

from experiments.claims.layers import main, rows, table
from spiking_rhm.config import NetConfig, RHMConfig, RunConfig


def _record(rule_seed, seed, P, sens, cos, per_sample, status="ok"):
    cfg = RunConfig(rhm=RHMConfig(8, 4, 8, 2, 3, rule_seed=rule_seed), P=P, rule="dfa", seed=seed,
                    net=NetConfig(width=16))
    align = [{"step": 0, "epoch": 1, "cosine": [0.5, 0.5, 0.5]},  # an earlier step: not the last one
             {"step": 9, "epoch": 3, "cosine": cos, **({"cosine_per_sample": per_sample} if per_sample else {})}]
    return {"config": cfg.to_dict(), "rule": "dfa", "backend": "rate", "P": P, "P_test": 100, "seed": seed,
            "status": status, "test_error": 0.5, "train_error": 0.1,
            "metrics": {"sensitivity": {"levels": [2, 1, 0], "layers": sens.tolist(), "n": 10},
                        "alignment": align}}


def test_rows_average_each_layers_own_level_and_last_alignment_over_ok_runs():
    gen = np.random.default_rng(0)
    records, sens, cos, per = [], [], [], []
    for rule_seed in (0, 1):
        for seed in (0, 1):
            s, c, p = gen.random((3, 3)), gen.uniform(-1, 1, 3).tolist(), gen.uniform(-1, 1, 3).tolist()
            if (rule_seed, seed) == (1, 1):
                c[0], p = None, None  # layer 1 without a cosine; a record without per-sample cosines
            else:
                per.append(p)
            records.append(_record(rule_seed, seed, 512, s, c, p))
            sens.append(np.diagonal(s))
            cos.append([np.nan if x is None else x for x in c])
    records.append(_record(0, 2, 512, np.full((3, 3), 9.0), [9.0] * 3, [9.0] * 3, status="diverged"))
    (row,) = rows(records)
    assert row["n"] == 4 and row["P"] == 512 and row["rule"].startswith("dfa")
    np.testing.assert_allclose(row["S"], np.mean(sens, axis=0))
    np.testing.assert_allclose(row["cos"], np.nanmean(cos, axis=0))
    np.testing.assert_allclose(row["cos/n"], np.mean(per, axis=0))
    assert "| dfa [rate] | 512 | 4 |" in table(records)
    assert rows(records, [1024]) == []


def test_cli_without_records_is_exit_2(tmp_path, capsys):
    (tmp_path / "records").mkdir()
    assert main([str(tmp_path)]) == 2
    assert "no records" in capsys.readouterr().err
