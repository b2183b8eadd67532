"""The notebooks are generated from readable sources (notebooks/src/*.py, jupytext percent
format), committed clean and up to date, and execute top to bottom (small parameters, offline)."""

import json
import shutil

import nbformat
import pytest

from tests.conftest import REPO, run_tool

SOURCE = REPO / "notebooks" / "src" / "01_ptq_quickstart.py"


def _workspace(tmp_path):
    """A notebooks/ folder with one source, the shared set-up and the generated notebook."""
    (tmp_path / "src").mkdir()
    shutil.copy(SOURCE, tmp_path / "src")
    shutil.copy(SOURCE.parent / "_setup.py", tmp_path / "src")
    shutil.copy(REPO / "notebooks" / f"{SOURCE.stem}.ipynb", tmp_path)
    return tmp_path / f"{SOURCE.stem}.ipynb", tmp_path / "src" / SOURCE.name


def test_committed_notebooks_are_clean_and_match_their_sources():
    proc = run_tool("dev/check_notebooks")
    assert proc.returncode == 0, proc.stderr
    sources = sorted(p.stem for p in (REPO / "notebooks" / "src").glob("[0-9]*.py"))
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sources == notebooks and len(sources) == 4


def test_check_flags_outputs_a_stale_notebook_and_a_missing_source(tmp_path):
    notebook, source = _workspace(tmp_path)
    assert run_tool("dev/check_notebooks", f"--dir={tmp_path}").returncode == 0

    nb = nbformat.read(notebook, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 3
    code.outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)
    ]
    nbformat.write(nb, notebook)
    proc = run_tool("dev/check_notebooks", f"--dir={tmp_path}")
    assert proc.returncode == 1
    assert f"{notebook.name} has outputs or execution counts in cells [1]" in proc.stderr
    assert "run python dev/make_notebooks.py" in proc.stderr

    shutil.copy(REPO / "notebooks" / notebook.name, notebook)  # clean again, then edit the source
    source.write_text(source.read_text() + '\n# %%\nprint("a new cell")\n')
    proc = run_tool("dev/check_notebooks", str(notebook))
    assert proc.returncode == 1 and f"{notebook.name} is out of date with {source}" in proc.stderr

    source.rename(tmp_path / "src" / "01_renamed.py")
    proc = run_tool("dev/check_notebooks", f"--dir={tmp_path}")
    assert proc.returncode == 1
    assert f"{notebook.name} has no source {source}" in proc.stderr
    assert "01_renamed.py has no notebook" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_generated_notebook_carries_the_colab_setup_and_papermill_parameters():
    nb = json.loads((REPO / "notebooks" / f"{SOURCE.stem}.ipynb").read_text())
    assert nb["metadata"] == {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
    }
    setup = "".join(nb["cells"][1]["source"])
    assert setup == (SOURCE.parent / "_setup.py").read_text().strip()
    assert "google.colab" in setup and "requirements.txt" in setup
    assert nb["cells"][1]["metadata"] == {}  # the "setup" placeholder tag is not carried over
    ids = [c["id"] for c in nb["cells"]]
    assert len(set(ids)) == len(ids)


def test_every_notebook_has_a_parameters_cell():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), path.name


@pytest.mark.slow
def test_notebooks_execute_top_to_bottom():
    proc = run_tool("dev/run_notebooks", "--out_dir=runs/notebooks-test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    executed = sorted((REPO / "runs" / "notebooks-test").glob("*.ipynb"))
    assert [p.name for p in executed] == sorted(
        p.name for p in (REPO / "notebooks").glob("*.ipynb")
    )
