"""The Python 3.11 import hook for lava-nc (hardware/lava_shim.py), on a synthetic module."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hardware import lava_shim

REPO = Path(__file__).resolve().parents[2]

FAKE_SOURCE = textwrap.dedent('''\
    """A stand-in for lava/magma/compiler/var_model.py."""
    from __future__ import annotations

    from dataclasses import dataclass


    @dataclass
    class ByteEncoder:
        base: int = 0
        offset: int = 0


    @dataclass
    class CoreEncoder:
        x: ByteEncoder = ByteEncoder()
        y: ByteEncoder = ByteEncoder()
        p:ByteEncoder=ByteEncoder()


    @dataclass
    class AxonEncoder:
        hi: ByteEncoder  =  ByteEncoder()
        lo: ByteEncoder = ByteEncoder()
    ''')


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package ``fakelava_<id>`` with the offending module ``var_model`` in tmp_path."""
    name = f"fakelava_{abs(hash(tmp_path)) % 10**8}"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "var_model.py").write_text(FAKE_SOURCE)
    (pkg / "other.py").write_text("from dataclasses import dataclass\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]
    lava_shim.uninstall(f"{name}.var_model")


def test_unpatched_module_fails_on_this_python(fake_package):
    if sys.version_info < (3, 11):
        pytest.skip("mutable dataclass defaults are only rejected from Python 3.11")
    with pytest.raises(ValueError, match="mutable default"):
        importlib.import_module(f"{fake_package}.var_model")


def test_hook_patches_only_the_target(fake_package):
    target = f"{fake_package}.var_model"
    finder = lava_shim.install(target)
    assert sys.meta_path[0] is finder
    assert lava_shim.install(target) is finder  # idempotent
    assert sum(isinstance(f, lava_shim.LavaDataclassFinder) and f.target == target for f in sys.meta_path) == 1
    module = importlib.import_module(target)
    a, b = module.CoreEncoder(), module.CoreEncoder()
    assert a.x == module.ByteEncoder() and a.x is not b.x  # a fresh default per instance
    assert module.AxonEncoder().hi is not module.AxonEncoder().hi
    assert isinstance(module.__loader__, lava_shim._PatchingLoader)
    other = importlib.import_module(f"{fake_package}.other")
    assert other.VALUE == 42 and not isinstance(other.__loader__, lava_shim._PatchingLoader)


def test_patch_source_places_import_after_future():
    patched = lava_shim.patch_source(FAKE_SOURCE)
    assert patched.count("dataclasses.field(default_factory=ByteEncoder)") == 5
    assert "ByteEncoder()" not in patched
    lines = patched.splitlines()
    assert lines.index("import dataclasses") == lines.index("from __future__ import annotations") + 1
    compile(patched, "var_model.py", "exec")  # no SyntaxError
    # a module without the pattern is left alone, and one without __future__ gets the import
    assert lava_shim.patch_source("x = 1\n") == "x = 1\n"
    plain = lava_shim.patch_source('"""doc"""\nclass C:\n    x: ByteEncoder = ByteEncoder()\n')
    assert plain.startswith('"""doc"""\nimport dataclasses\n')


def test_core_package_never_imports_lava_or_brian2():
    code = "import sys, spiking_rhm, spiking_rhm.spikes, spiking_rhm.cli; " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lava', 'brian2', 'hardware')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.lava
def test_real_lava_imports_with_the_hook():
    out = subprocess.run(
        [sys.executable, "-c",
         "from hardware import lava_shim; lava_shim.install(); import lava.proc.lif.process as p; "
         "from lava.magma.compiler.var_model import CoreEncoder; "
         "assert CoreEncoder().x is not CoreEncoder().x; print(p.LIF.__name__)"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("LIF")


def test_patch_start_method_tolerates_a_chosen_context():
    source = ("import multiprocessing as mp\nimport platform\n"
              "if platform.system() != 'Windows':\n    mp.set_start_method('fork')\n")
    patched = lava_shim.patch_start_method(source)
    assert "mp.set_start_method('fork')\n" not in patched and "get_start_method(allow_none=True) == 'fork'" in patched
    compile(patched, "multiprocessing.py", "exec")
    assert lava_shim.patch_start_method("x = 1\n") == "x = 1\n"
    assert set(lava_shim.PATCHES) == {lava_shim.TARGET, lava_shim.START_METHOD_TARGET}


@pytest.mark.lava
def test_lava_imports_after_something_fixed_the_multiprocessing_context():
    """A tqdm bar (or any mp.RLock) fixes the start method; unpatched Lava then raises
    'context has already been set'."""
    code = ("import multiprocessing as mp; mp.RLock(); from hardware import lava_shim; lava_shim.install(); "
            "import lava.proc.io.source; print(mp.get_start_method())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "fork"
