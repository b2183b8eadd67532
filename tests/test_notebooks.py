"""The notebooks execute top to bottom (small parameters, offline) and are committed clean."""

import json

import nbformat
import pytest

from tests.conftest import REPO, run_tool


def test_committed_notebooks_have_no_outputs():
    proc = run_tool("check_notebooks")
    assert proc.returncode == 0, proc.stderr


def test_check_flags_a_notebook_with_outputs_and_fix_strips_it(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1+1")])
    nb.cells[0].execution_count = 3
    nb.cells[0].outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)
    ]
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    proc = run_tool("check_notebooks", str(path))
    assert proc.returncode == 1 and "dirty.ipynb has outputs" in proc.stderr
    assert run_tool("check_notebooks", "--fix", str(path)).returncode == 0
    cell = json.loads(path.read_text())["cells"][0]
    assert cell["outputs"] == [] and cell["execution_count"] is None


def test_every_notebook_has_a_parameters_cell():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name


@pytest.mark.slow
def test_notebooks_execute_top_to_bottom():
    proc = run_tool("run_notebooks", "--out_dir=runs/notebooks-test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    executed = sorted((REPO / "runs" / "notebooks-test").glob("*.ipynb"))
    assert [p.name for p in executed] == sorted(
        p.name for p in (REPO / "notebooks").glob("*.ipynb")
    )
