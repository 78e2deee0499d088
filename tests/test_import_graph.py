"""Layers import one way (an AST walk over the source files, imports inside functions included).

    core      spiking_rhm (without spiking_rhm.cli)
    backends  rate_models, hardware   (import the core, not each other)
    uses      experiments
    cli       spiking_rhm.cli         (may import everything)

A module may import its own layer and those below it, never above or beside it; the core names
no module above it even as a string (``importlib.import_module("rate_models...")``).  Reading a
NIR graph, deploying or learning on chip needs no training loop.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spiking_rhm", "rate_models", "hardware", "experiments")
RANK = {"core": 0, "rate_models": 1, "hardware": 1, "experiments": 2, "cli": 3}
TRAINING_LOOPS = {"spiking_rhm.training", "spiking_rhm.backends.norse.train", "rate_models.train"}
UPWARD_STRING = re.compile(r"^(rate_models|hardware|experiments)([.:]|$)")


def layer(module: str) -> str:
    if module == "spiking_rhm.cli" or module.startswith("spiking_rhm.cli."):
        return "cli"
    top = module.split(".")[0]
    return "core" if top == "spiking_rhm" else top


@cache
def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


@cache
def imports(module: str) -> tuple[set[str], set[str]]:
    """(modules imported anywhere in ``module``, string constants of it that name an upper layer)."""
    tree = ast.parse(modules()[module].read_text())
    found, strings = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules())
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and UPWARD_STRING.match(node.value):
            strings.add(node.value)
    return {m for m in found if m.split(".")[0] in PACKAGES}, strings


def upward_imports() -> list[str]:
    bad = []
    for module in sorted(modules()):
        here = layer(module)
        found, strings = imports(module)
        for target in sorted(found):
            there = layer(target)
            if there != here and RANK[there] >= RANK[here]:
                bad.append(f"{module} ({here}) imports {target} ({there})")
        if here == "core":
            bad.extend(f"{module} (core) names {s!r}" for s in sorted(strings))
    return bad


def closure(module: str) -> set[str]:
    """Every package module ``module`` may import, directly or through others (parents included)."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen or m not in modules():
            continue
        seen.add(m)
        parts = m.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a.b.c runs a and a.b
        todo.extend(imports(m)[0])
    return seen


def test_no_upward_import():
    assert upward_imports() == []


def test_the_walk_sees_an_upward_import(tmp_path, monkeypatch):
    """The check can fail: a core module importing rate_models, or naming it as a string, is reported."""
    fake = tmp_path / "spiking_rhm" / "fake.py"
    fake.parent.mkdir()
    fake.write_text("def f():\n    import rate_models.train\n    return 'hardware.deploy:run'\n")
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: {**_real(), "spiking_rhm.fake": fake})
    imports.cache_clear()
    try:
        assert upward_imports() == ["spiking_rhm.fake (core) imports rate_models.train (rate_models)",
                                    "spiking_rhm.fake (core) names 'hardware.deploy:run'"]
    finally:
        imports.cache_clear()


_real = modules


@pytest.mark.parametrize("module", ["hardware.nir_graph", "hardware.deploy", "hardware.loihi.network",
                                    "hardware.loihi.learning", "spiking_rhm.backends.norse.deployed",
                                    "spiking_rhm.checkpoint"])
def test_deployment_needs_no_training_loop(module):
    assert closure(module) & TRAINING_LOOPS == set()


def test_an_installed_back_end_is_found_through_its_entry_point(tmp_path):
    """Without ``import rate_models``, the rate trainer comes from the ``spiking_rhm.backends`` entry point."""
    dist = tmp_path / "rate_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rate-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[spiking_rhm.backends]\nrate = rate_models.train:train_rate\n")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from spiking_rhm import api
        assert "rate" not in api.BACKEND_TRAINERS and "rate_models" not in sys.modules
        print(api.backend_trainer("rate").__module__)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "rate_models.train"
