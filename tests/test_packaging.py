"""What ``pip install`` puts in the wheel: the packages, not the research prototypes."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spiking_rhm", "rate_models", "hardware", "experiments")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory):
    """Names in a wheel built from a copy of the sources in which the prototypes folder is made a package
    (so that only the pyproject exclude can keep it out)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "records", "*.jsonl"))
    (src / "experiments/ssl_research/prototypes/__init__.py").touch()
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_excludes_the_research_prototypes(wheel_files):
    assert not [name for name in wheel_files if "prototypes" in name]


def test_wheel_holds_the_packages_and_the_research_scripts(wheel_files):
    for name in ("spiking_rhm/cli/report.py", "experiments/report.py", "experiments/ssl_research/batch_cca.py",
                 "experiments/configs/demo.toml", "rate_models/__init__.py", "hardware/__init__.py"):
        assert name in wheel_files
