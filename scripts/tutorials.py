"""Execute the tutorials once and keep the executed notebooks, for the docs site and for CI.

The tutorials are jupytext percent scripts, ``docs/tutorials/*.py`` (plain Python that diffs well;
``jupytext --to notebook`` turns one into a notebook).  This module executes one with nbclient in a
fresh kernel started in the repository root, and caches the executed notebook (outputs and figures)
in ``.cache/tutorials/NAME.ipynb`` under a key::

    key = sha256(tutorial source, this script, every .py file of spiking_rhm/rate_models/experiments/hardware)

so a cached notebook is reused only while neither the tutorial nor the code it runs has changed.
It is used three ways:

* ``mkdocs.yml`` lists it under ``hooks:``: it replaces each script by its executed notebook (executed now
  on a cache miss; a failing cell fails the build), the page ``tutorials/NAME.ipynb`` that mkdocs-jupyter
  renders with its outputs and figures;
* ``python -m pytest -m tutorial`` (``tests/test_tutorials.py``) executes every tutorial afresh, fails on
  any failing cell and refreshes the cache, so that the site build after it in CI executes nothing again;
* ``python scripts/tutorials.py [NAME ...] [--force]`` executes by hand and prints the time of each.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
CACHE = ROOT / ".cache" / "tutorials"
PACKAGES = ("spiking_rhm", "rate_models", "experiments", "hardware")
KERNEL = "python3"
CELL_TIMEOUT_S = 600
_META = "spiking_rhm_tutorial"
log = logging.getLogger("mkdocs.hooks.tutorials")


def sources() -> list[Path]:
    """The tutorial scripts, in name order."""
    return sorted(p for p in TUTORIALS.glob("*.py") if not p.name.startswith("_"))


def cache_key(source: Path) -> str:
    """sha256 of the tutorial, of this executor and of every Python file of the packages it runs."""
    digest = hashlib.sha256(source.read_bytes())
    digest.update(Path(__file__).read_bytes())
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cached(source: Path) -> Path | None:
    """The executed notebook of ``source`` if the cache holds one for its current key."""
    import nbformat

    path = CACHE / f"{source.stem}.ipynb"
    if not path.exists():
        return None
    nb = nbformat.read(path, as_version=4)
    return path if nb.metadata.get(_META, {}).get("key") == cache_key(source) else None


def execute(source: Path) -> Path:
    """Execute ``source`` top to bottom (raises ``nbclient.exceptions.CellExecutionError`` on a failing
    cell) and write the executed notebook to the cache; returns its path."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    key = cache_key(source)
    nb = jupytext.read(source)
    start = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL, coalesce_streams=True,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    nb.metadata[_META] = {"key": key, "seconds": round(time.perf_counter() - start, 1)}
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{source.stem}.ipynb"
    tmp = path.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(path)
    return path


def executed(source: Path, force: bool = False) -> Path:
    """The executed notebook of ``source``: from the cache, or executed now."""
    hit = None if force else cached(source)
    if hit is not None:
        return hit
    log.info("executing tutorial %s (not in the cache)", source.name)
    return execute(source)


def seconds(notebook: Path) -> float:
    """Execution time recorded in an executed notebook."""
    import nbformat

    return float(nbformat.read(notebook, as_version=4).metadata[_META]["seconds"])


# -- mkdocs hook ------------------------------------------------------------------------------------
try:
    from mkdocs.plugins import event_priority
except ImportError:  # used as a script or from the tests without mkdocs
    def event_priority(_):
        return lambda f: f


@event_priority(100)  # before mkdocs-jupyter turns the file into a notebook page
def on_files(files, config):
    """Replace every ``tutorials/NAME.py`` script by its executed notebook, the page ``tutorials/NAME.ipynb``
    that the nav names and mkdocs-jupyter renders (the cache mirrors the docs layout: ``.cache/tutorials/``)."""
    from mkdocs.structure.files import File

    docs = Path(config["docs_dir"]).resolve()
    for file in list(files):
        path = Path(file.abs_src_path or "")
        if path.parent.resolve() != docs / "tutorials" or path.name.startswith("_"):
            continue
        if path.suffix == ".ipynb":  # a notebook made from a script by hand: the script is the source
            files.remove(file)
        elif path.suffix == ".py":
            notebook = executed(path)
            files.remove(file)
            files.append(File(f"tutorials/{notebook.name}", src_dir=str(CACHE.parent), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files


def main(argv: list[str]) -> int:
    force = "--force" in argv
    names = [a for a in argv if not a.startswith("--")]
    chosen = [p for p in sources() if not names or p.stem in names]
    unknown = sorted(set(names) - {p.stem for p in chosen})
    if unknown:
        print(f"unknown tutorial(s): {', '.join(unknown)}; valid: {', '.join(p.stem for p in sources())}",
              file=sys.stderr)
        return 2
    for source in chosen:
        notebook = executed(source, force=force)
        print(f"{source.relative_to(ROOT)} -> {notebook.relative_to(ROOT)} ({seconds(notebook):.1f} s to execute)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
