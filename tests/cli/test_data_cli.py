"""``spiking-rhm info`` and ``spiking-rhm generate`` (click CliRunner + one real subprocess)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from spiking_rhm.cli import cli
from spiking_rhm.rhm import RHM

RHM_ARGS = ["--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2"]


@pytest.fixture
def runner():
    return CliRunner()


def _error_line(result) -> str:
    """The single stderr line of a failed command (no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_info_valid(runner):
    result = runner.invoke(cli, ["info", *RHM_ARGS])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("d = s^L = 4", "= 512", "n_c m^L = 128", "P_max / (n_c m^L) = 4", "valid: yes"):
        assert text in out, out


def test_info_huge(runner):
    result = runner.invoke(cli, ["info", "--v", "32", "--m", "8", "--nc", "32", "--s", "2", "--L", "5"])
    assert result.exit_code == 0 and str(2**98) in result.stdout and "> 2^63" in result.stdout


@pytest.mark.parametrize("args, words", [
    (["--v", "8", "--m", "9", "--nc", "8", "--s", "2", "--L", "2"], ["v**s"]),
    (["--v", "8", "--m", "4", "--nc", "9", "--s", "2", "--L", "2"], ["n_c", "v"]),
    (["--v", "8", "--m", "4", "--nc", "8", "--s", "1", "--L", "2"], ["s"]),
    (["--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "0"], ["L"]),
])
def test_info_invalid(runner, args, words):
    result = runner.invoke(cli, ["info", *args])
    line = _error_line(result)
    assert "valid: no" in result.stdout
    for word in words:
        assert word in line


def test_generate_split_matches_library(runner, tmp_path):
    out = tmp_path / "d.npz"
    result = runner.invoke(cli, ["generate", *RHM_ARGS, "--seed", "3", "--P", "100", "--P-test", "50",
                                 "--split-seed", "7", "--tree", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = np.load(out)
    rhm = RHM(8, 4, 8, 2, 2, seed=3)
    train, test = rhm.split(100, 50, 7)
    assert data["inputs"].dtype == np.int64 and data["inputs"].shape == (100, 4)
    assert np.array_equal(data["inputs"], train.inputs) and np.array_equal(data["labels"], train.labels)
    assert np.array_equal(data["choices"], train.choices)
    assert np.array_equal(data["test_inputs"], test.inputs) and np.array_equal(data["test_labels"], test.labels)
    for level, symbols in enumerate(rhm.tree(train)):
        assert np.array_equal(data[f"tree_level_{level}"], symbols)
    assert np.array_equal(data["tree_level_2"], data["inputs"]) and np.array_equal(data["tree_level_0"][:, 0], data["labels"])
    assert (int(data["seed"]), int(data["split_seed"]), int(data["P"]), int(data["P_test"])) == (3, 7, 100, 50)
    assert str(data["P_max"]) == "512" and int(data["v"]) == 8 and int(data["n_c"]) == 8


def test_generate_max_is_full_dataset_in_index_order(runner, tmp_path):
    out = tmp_path / "full.npz"
    result = runner.invoke(cli, ["generate", *RHM_ARGS, "--P", "max", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = np.load(out)
    full = RHM(8, 4, 8, 2, 2, seed=0).full()
    assert np.array_equal(data["inputs"], full.inputs) and np.array_equal(data["labels"], full.labels)
    assert "tree_level_0" not in data


def test_generate_size_in_units_of_scale(runner, tmp_path):
    out = tmp_path / "x.npz"
    result = runner.invoke(cli, ["generate", *RHM_ARGS, "--P", "2x", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert np.load(out)["inputs"].shape == (2 * 8 * 4**2, 4)


@pytest.mark.parametrize("extra, words", [
    (["--P", "513"], ["P_max"]),
    (["--P", "500", "--P-test", "13"], ["P_max"]),
    (["--P", "max", "--P-test", "1"], ["P_max"]),
    (["--P", "-3"], ["P"]),
    (["--P", "lots"], ["cannot read P"]),
    (["--P", "10", "--P-test", "-1"], ["P-test"]),
])
def test_generate_bad_sizes(runner, tmp_path, extra, words):
    out = tmp_path / "bad.npz"
    line = _error_line(runner.invoke(cli, ["generate", *RHM_ARGS, *extra, "--out", str(out)]))
    for word in words:
        assert word in line
    assert list(tmp_path.iterdir()) == []


def test_generate_invalid_params(runner, tmp_path):
    args = ["generate", "--v", "4", "--m", "5", "--nc", "4", "--s", "2", "--L", "2", "--P", "10",
            "--out", str(tmp_path / "a.npz")]
    assert "v**s" in _error_line(runner.invoke(cli, args))
    assert list(tmp_path.iterdir()) == []


def test_generate_bad_paths(runner, tmp_path):
    line = _error_line(runner.invoke(cli, ["generate", *RHM_ARGS, "--P", "10", "--out", str(tmp_path)]))
    assert "directory" in line
    line = _error_line(runner.invoke(cli, ["generate", *RHM_ARGS, "--P", "10", "--out",
                                           str(tmp_path / "missing" / "a.npz")]))
    assert "does not exist" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_generate_unwritable_directory(runner, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _error_line(runner.invoke(cli, ["generate", *RHM_ARGS, "--P", "10", "--out", str(locked / "a.npz")]))
        assert "cannot write" in line
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_generate_keeps_existing_file_on_failure(runner, tmp_path):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"old")
    _error_line(runner.invoke(cli, ["generate", *RHM_ARGS, "--P", "9999", "--out", str(out)]))
    assert out.read_bytes() == b"old"


def test_installed_script_subprocess(tmp_path):
    script = shutil.which("spiking-rhm") or os.path.join(os.path.dirname(sys.executable), "spiking-rhm")
    if not os.path.exists(script):
        pytest.skip("the spiking-rhm script is not installed (pip install -e .)")
    out = tmp_path / "s.npz"
    ok = subprocess.run([script, "generate", *RHM_ARGS, "--P", "20", "--out", str(out)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert np.load(out)["inputs"].shape == (20, 4)
    bad = subprocess.run([script, "info", "--v", "8", "--m", "4", "--nc", "9", "--s", "2", "--L", "2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
