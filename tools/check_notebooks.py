"""Fails when a committed notebook carries outputs or execution counts; --fix strips them.

python tools/check_notebooks.py [--fix]
"""

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def dirty_cells(nb) -> list[int]:
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true")
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.paths] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    bad = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        cells = dirty_cells(nb)
        if not cells:
            continue
        if args.fix:
            for c in nb.cells:
                if c.cell_type == "code":
                    c.outputs, c.execution_count = [], None
            nbformat.write(nb, path)
            print(f"stripped {path.name}")
        else:
            bad += 1
            print(
                f"error: {path.name} has outputs or execution counts in cells {cells}; "
                "run tools/check_notebooks.py --fix",
                file=sys.stderr,
            )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
