"""Writes notebooks/NN_*.ipynb from their readable sources, notebooks/src/NN_*.py.

  python dev/make_notebooks.py            # after editing a source
The sources are jupytext percent-format scripts (`# %%` starts a cell, `# %% [markdown]` a text
cell, `# %% tags=["parameters"]` the cell papermill overrides): edit them in any editor, lint them
with ruff, and diff them in review. The .ipynb files are generated, committed without outputs so
Colab can open them, and `dev/check_notebooks.py` (`make lint`) fails when one differs from what
this script writes.

The cell tagged "setup" in each source is filled with notebooks/src/_setup.py (in Colab: clone the
workspace and install its pinned requirements; locally: put the workspace root on sys.path), so
the four notebooks share one copy of it.
"""

import hashlib
import sys
from pathlib import Path

import jupytext
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = NOTEBOOKS / "src"
SETUP_TAG = "setup"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def sources(folder: Path = SOURCES) -> list[Path]:
    """The notebook sources: NN_*.py (the `_setup.py` snippet is not a notebook)."""
    return sorted(p for p in folder.glob("[0-9]*.py"))


def target(source: Path) -> Path:
    """notebooks/src/NN_x.py -> notebooks/NN_x.ipynb."""
    return source.parent.parent / f"{source.stem}.ipynb"


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook for one source: its cells, the shared set-up cell, no outputs."""
    nb = jupytext.reads(source.read_text(), fmt="py:percent")
    setup = (source.parent / "_setup.py").read_text().strip()
    filled = 0
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if SETUP_TAG in tags:
            cell.source, filled = setup, filled + 1
            tags.remove(SETUP_TAG)
            if not tags:
                del cell.metadata["tags"]
        # Stable ids, so that regenerating an unchanged source gives the same bytes (nbformat's
        # own ids are random, which would make every regeneration a diff).
        cell.id = hashlib.sha1(f"{source.stem}:{i}".encode()).hexdigest()[:8]
    if filled != 1:
        raise ValueError(
            f'{source.name}: expected one cell tagged "{SETUP_TAG}" (where the set-up from '
            f"_setup.py goes), found {filled}"
        )
    nb.metadata = nbformat.NotebookNode(kernelspec=dict(KERNELSPEC))
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def render(source: Path) -> str:
    """The exact .ipynb text committed for `source`."""
    return jupytext.writes(build(source), fmt="ipynb")


def main() -> int:
    for source in sources():
        path = target(source)
        path.write_text(render(source))
        print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
