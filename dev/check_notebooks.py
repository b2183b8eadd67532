"""Fails when a committed notebook is not exactly what dev/make_notebooks.py writes from its
source: outputs or execution counts left in, a source edited without regenerating, a notebook
without a source, or a source without its notebook.

  python dev/check_notebooks.py [--dir=notebooks] [path/to/NN_x.ipynb ...]
Without paths it checks every notebook in --dir and every source in --dir/src.
The fix is always the same: edit notebooks/src/NN_x.py, then run dev/make_notebooks.py.
"""

import argparse
import sys
from pathlib import Path

import make_notebooks  # the generator beside this file (dev/ is on sys.path for a script)
import nbformat

FIX = "edit notebooks/src/ and run python dev/make_notebooks.py"


def dirty_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]


def _shown(path: Path) -> str:
    """A path as the user typed it: relative to the working folder when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def problems(notebook: Path) -> list[str]:
    """What is wrong with one notebook (empty when it is clean and up to date)."""
    out = []
    cells = dirty_cells(nbformat.read(notebook, as_version=4))
    if cells:
        out.append(f"has outputs or execution counts in cells {cells}")
    source = notebook.parent / "src" / f"{notebook.stem}.py"
    if not source.is_file():
        out.append(f"has no source {_shown(source)}")
    elif notebook.read_text() != make_notebooks.render(source):
        out.append(f"is out of date with {_shown(source)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=make_notebooks.NOTEBOOKS)
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args(argv)
    if args.paths:
        notebooks, orphans = [Path(p) for p in args.paths], []
    else:
        notebooks = sorted(args.dir.glob("*.ipynb"))
        sources = make_notebooks.sources(args.dir / "src")
        orphans = [s for s in sources if not make_notebooks.target(s).is_file()]
    bad = 0
    for notebook in notebooks:
        for problem in problems(notebook):
            bad += 1
            print(f"error: {notebook.name} {problem}; {FIX}", file=sys.stderr)
    for source in orphans:
        bad += 1
        print(f"error: {source.name} has no notebook; {FIX}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
