"""Every tutorial (docs/tutorials/*.py) runs top to bottom; run with ``python -m pytest -m tutorial``.

Each test executes one tutorial afresh in a new kernel (scripts/tutorials.py; a failing cell raises) and
refreshes the cache of executed notebooks that the docs site renders, so ``mkdocs build`` after this job
executes nothing again.
"""

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("nbclient", reason="the docs extra is needed: pip install -c constraints.txt -e '.[docs]'")
pytest.importorskip("jupytext", reason="the docs extra is needed")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_tutorials", ROOT / "scripts" / "tutorials.py")
tutorials = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tutorials)

pytestmark = pytest.mark.tutorial


def test_there_are_tutorials_and_each_is_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    names = [p.name for p in tutorials.sources()]
    assert names
    assert [name for name in names if f"tutorials/{name[:-3]}.ipynb" not in nav] == []


@pytest.mark.parametrize("source", tutorials.sources(), ids=lambda p: p.stem)
def test_tutorial_runs_and_shows_its_figures_and_measured_result(source):
    import nbformat

    notebook = nbformat.read(tutorials.execute(source), as_version=4)
    print(f"{source.name}: {tutorials.seconds(tutorials.CACHE / (source.stem + '.ipynb')):.1f} s")
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "a tutorial shows at least one figure"
    # it ends with "What you saw" and a code cell that prints the measured result of this run
    headings = [i for i, c in enumerate(notebook.cells)
                if c.cell_type == "markdown" and re.search(r"^#+ What you saw", c.source, re.M)]
    assert headings, "a tutorial ends with a 'What you saw' section"
    last = notebook.cells[-1]
    assert last.cell_type == "code" and headings[-1] == len(notebook.cells) - 2
    printed = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream")
    assert re.search(r"\d", printed), "the 'What you saw' cell prints measured numbers"
