"""RunConfig: validation, size spellings, round trips through dict/JSON/TOML/YAML."""

import json

import pytest

from spiking_rhm.config import RHMConfig, RunConfig, load_config_file, resolve_size
from spiking_rhm.errors import ConfigError, RHMParameterError
from spiking_rhm.rhm import RHM


def test_size_spellings():
    rhm = RHM(8, 4, 8, 2, 2)
    assert resolve_size(100, rhm) == 100
    assert resolve_size("100", rhm) == 100
    assert resolve_size("1x", rhm) == 8 * 4**2
    assert resolve_size("0.5x", rhm) == 64
    assert resolve_size("max", rhm) == 512
    for bad in ("abc", "-1x", "1e3y", True, 0, -3):
        with pytest.raises(RHMParameterError):
            resolve_size(bad, rhm)
    with pytest.raises(RHMParameterError, match="exceeds P_max = 512"):
        resolve_size(513, rhm)


def test_sizes_default_test_set_and_disjointness():
    cfg = RunConfig(rhm=RHMConfig(8, 4, 8, 2, 2), P=400)
    assert cfg.sizes() == (400, 112)  # all remaining points when fewer than 20 000 are left
    big = RunConfig(rhm=RHMConfig(16, 4, 16, 2, 3), P="1x")
    assert big.sizes() == (1024, 20_000)
    with pytest.raises(RHMParameterError, match="disjoint"):
        RunConfig(rhm=RHMConfig(8, 4, 8, 2, 2), P=400, P_test=200).sizes()


def test_round_trips(tmp_path):
    cfg = RunConfig(rhm=RHMConfig(16, 4, 16, 2, 3, rule_seed=3), P="2x", rule="dfa", seed=5,
                    rule_options={"feedback_shape": "shared"})
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
    path = tmp_path / "run.toml"
    path.write_text(cfg.to_toml())
    assert RunConfig.from_dict(load_config_file(path)) == cfg
    assert cfg.run_id() == RunConfig.from_dict(cfg.to_dict()).run_id()
    assert cfg.run_id() != cfg.replace(seed=6).run_id()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2, "colour": 1}}, "unknown key.*colour"),
        ({"rhm": {"v": 4, "m": 4, "n_c": 8, "s": 2, "L": 2}}, "n_c = 8 > v = 4"),
        ({"rhm": {"v": 4, "m": 5, "n_c": 2, "s": 2, "L": 2}}, r"m \* v = 20 > v\*\*s = 16"),
        ({"backend": "loihi"}, "unknown backend 'loihi'"),
        ({"net": {"arch": "transformer"}}, "unknown net.arch"),
        ({"net": {"width": "wide"}}, "net.width must be an integer"),
        ({"optim": {"lr": -1.0}}, "optim.lr must be a positive"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"rhm": 3}, "config.rhm must be a table"),
    ],
)
def test_invalid_configs_are_rejected_clearly(data, message):
    with pytest.raises((ConfigError, RHMParameterError), match=message):
        RunConfig.from_dict(data)


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("rhm = [unclosed")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")
    other = tmp_path / "cfg.ini"
    other.write_text("x")
    with pytest.raises(ConfigError, match="unknown format"):
        load_config_file(other)
    yml = tmp_path / "cfg.yaml"
    yml.write_text("rule: dfa\nP: 1x\n")
    assert RunConfig.from_dict(load_config_file(yml)).rule == "dfa"


def test_run_id_hashes_only_non_default_fields():
    from spiking_rhm.config import SpikingConfig

    default = SpikingConfig()  # a default spelled out explicitly does not change the id
    explicit = RunConfig.from_dict({"seed": 0, "rule": "bp", "spiking": {"T": default.T, "reset": default.reset}})
    assert explicit.run_id() == RunConfig().run_id()
    assert RunConfig(rule_options={"pairs": "mask"}).run_id() != RunConfig().run_id()
