"""Hyper-parameter selection on validation points (spiking_rhm.selection): chosen by validation, never by test."""

from __future__ import annotations

import pytest

from spiking_rhm.config import NetConfig, OptimConfig, RHMConfig, RunConfig
from spiking_rhm.errors import ConfigError
from spiking_rhm.selection import grid_path, grid_points, point_config, select

RHM = RHMConfig(8, 4, 8, 2, 2)


def _cfg(**grid) -> RunConfig:
    return RunConfig(rhm=RHM, P=256, P_test=64, rule="bp", net=NetConfig(width=16),
                     optim=OptimConfig(epochs=2, validation=0.25), grid=grid)


def _fake(validation: dict, test: dict):
    """A trainer whose validation and test errors per lr disagree (test would flip the choice)."""
    seen = []

    def train(cfg):
        seen.append(cfg)
        lr = cfg.optim.lr
        return {"test_error": test[lr], "train_error": 0.0, "diverged": False, "wall_time": 1.0,
                "validation": {"error": validation[lr], "loss": validation[lr]}}

    return train, seen


def test_choice_follows_validation_not_test():
    train, seen = _fake(validation={0.1: 0.3, 1.0: 0.1, 3.0: 0.2}, test={0.1: 0.0, 1.0: 0.9, 3.0: 0.5})
    metrics = select(_cfg(lr=[0.1, 1.0, 3.0]), train)
    assert metrics["selection"]["chosen"] == {"lr": 1.0}
    assert metrics["test_error"] == 0.9  # the chosen point's, though another point tests better
    assert [c.optim.lr for c in seen] == [0.1, 1.0, 3.0]
    assert all(not c.grid and c.optim.validation == 0.25 for c in seen)
    points = metrics["selection"]["points"]
    assert [p["validation_error"] for p in points] == [0.3, 0.1, 0.2]
    assert all("test_error" not in p for p in points)  # other points' test errors are not kept


def test_diverged_points_are_never_chosen_and_ties_keep_grid_order():
    train, _ = _fake(validation={0.1: 0.2, 1.0: 0.2, 3.0: float("nan")}, test={0.1: 0.5, 1.0: 0.1, 3.0: 0.0})
    metrics = select(_cfg(lr=[3.0, 0.1, 1.0]), train)
    assert metrics["selection"]["chosen"] == {"lr": 0.1}
    assert metrics["selection"]["points"][0]["validation_error"] is None


def test_grid_keys_and_points():
    assert grid_path("lr") == ["optim", "lr"]
    assert grid_path("shrink") == ["rule_options", "shrink"]
    assert grid_path("net.width") == ["net", "width"]
    assert grid_points({"lr": [1, 2], "k": ["a", "b"]}) == [{"lr": 1, "k": "a"}, {"lr": 1, "k": "b"},
                                                            {"lr": 2, "k": "a"}, {"lr": 2, "k": "b"}]
    cfg = point_config(_cfg(lr=[1.0], **{"net.width": [8]}), {"lr": 1.0, "net.width": 8})
    assert cfg.optim.lr == 1.0 and cfg.net.width == 8 and not cfg.grid


@pytest.mark.parametrize("changes, message", [
    (dict(optim=OptimConfig(validation=0.0), grid={"lr": [1.0]}), "optim.validation"),
    (dict(grid={"lr": []}), "non-empty list"),
    (dict(grid={"lr": 1.0}), "non-empty list"),
    (dict(grid={"rhm.L": [2, 3]}), "grid key"),
    (dict(grid={"optim.validation": [0.1]}), "grid key"),
    (dict(grid={"lr": [-1.0]}), "optim.lr"),
    (dict(optim=OptimConfig(validation=1.5)), "optim.validation"),
])
def test_bad_grids_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(rhm=RHM, **{"optim": OptimConfig(validation=0.2), **changes})


def test_rate_run_selects_on_carved_points():
    """A real run: the validation points come out of P, both scorings are measured on them."""
    import rate_models  # noqa: F401
    from spiking_rhm.api import train

    record = train(_cfg(lr=[0.1, 1.0]))
    m = record["metrics"]
    assert record["P"] == 256 and m["data"]["labelled_trees"] == 256 and m["data"]["validation_points"] == 64
    assert m["selection"]["chosen"]["lr"] in (0.1, 1.0)
    errors = [p["validation_error"] for p in m["selection"]["points"]]
    assert m["validation"]["error"] == min(errors)
    assert set(m["validation"]["online_readout"]) == {"error", "loss"} and set(m["validation"]["probe"]) == {"error", "loss"}
    assert m["lr"]["hidden"] == m["selection"]["chosen"]["lr"] * 16  # width-scaled lr of the chosen point


def test_validation_points_are_training_points_not_test_points():
    """Carving takes the last points of the training set; the training part and the test set are unchanged."""
    import numpy as np

    from spiking_rhm.training import carve_validation

    grammar = RHM.build()
    train, test = grammar.split(100, 50, seed=1)
    part, val = carve_validation(train, 0.2)
    assert part.labels.shape[0] == 80 and val.labels.shape[0] == 20
    np.testing.assert_array_equal(np.concatenate([part.inputs, val.inputs]), train.inputs)
    test_rows = {tuple(r) for r in test.inputs}
    assert not any(tuple(r) in test_rows for r in val.inputs)
    with pytest.raises(ConfigError, match="validation points"):
        carve_validation(train, 0.001)


def test_checkpoint_with_grid_is_refused(tmp_path):
    import rate_models  # noqa: F401
    from spiking_rhm.api import train

    with pytest.raises(ConfigError, match="grid"):
        train(_cfg(lr=[1.0]), checkpoint=tmp_path / "net.npz")


@pytest.mark.parametrize("rule, grid", [("bp", {"lr": [0.1, 1.0]}), ("clapp", {"lr": [0.01, 0.1]})])
def test_poisoned_test_points_change_no_choice(monkeypatch, rule, grid):
    """Selection never reads test points: replacing every test input and label with garbage leaves each grid
    point's validation scores, the choice and the training identical; only the test error moves."""
    import numpy as np

    import rate_models  # noqa: F401
    from spiking_rhm.api import train
    from spiking_rhm.rhm import RHM as Grammar

    cfg = RunConfig(rhm=RHM, P=256, P_test=128, rule=rule, net=NetConfig(width=16), grid=grid,
                    optim=OptimConfig(epochs=3, validation=0.25))
    clean_record = train(cfg)
    clean = clean_record["metrics"]
    split = Grammar.split

    def poisoned(self, P, P_test=0, seed=0):
        train_points, test = split(self, P, P_test, seed)
        rng = np.random.default_rng(123)
        return train_points, test._replace(labels=(test.labels + 1 + rng.integers(0, self.n_c - 1, test.size))
                                           % self.n_c, inputs=rng.integers(0, self.v, test.inputs.shape))

    monkeypatch.setattr(Grammar, "split", poisoned)
    dirty_record = train(cfg)
    dirty = dirty_record["metrics"]
    assert dirty["selection"] == clean["selection"] | {"wall_time_all_points": dirty["selection"]["wall_time_all_points"]}
    for a, b in zip(dirty["selection"]["points"], clean["selection"]["points"]):
        assert a["validation_error"] == b["validation_error"] and a["validation_loss"] == b["validation_loss"]
    assert dirty["validation"] == clean["validation"] and dirty["curve"]["train_loss"] == clean["curve"]["train_loss"]
    assert dirty_record["train_error"] == clean_record["train_error"]
    assert dirty_record["test_error"] != clean_record["test_error"]
