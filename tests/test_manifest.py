"""The manifest names the code that made a run: the project's git commit and whether it was dirty."""

import subprocess
from pathlib import Path

from edgequant import workspace
from edgequant.report import manifest


def _git(root, *args):
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_git_state_is_the_checkout_commit_and_dirty_once_a_tracked_file_changes(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert manifest.git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert manifest.git_state(tmp_path) == {"commit": head, "dirty": True}


def test_git_state_is_unknown_outside_a_checkout(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    assert manifest.git_state(tmp_path) == {"commit": "unknown", "dirty": "unknown"}
    # a folder inside some other repository is not the project's checkout either
    _git(tmp_path, "init", "-q")
    (tmp_path / "pkg").mkdir()
    assert manifest.git_state(tmp_path / "pkg") == {"commit": "unknown", "dirty": "unknown"}


def test_the_project_manifest_records_this_checkout():
    state = manifest.git_state()
    head = subprocess.run(
        ["git", "-C", str(workspace.ROOT), "rev-parse", "--show-toplevel", "HEAD"],
        capture_output=True,
        text=True,
    )
    top, _, commit = head.stdout.partition("\n")
    if head.returncode != 0 or Path(top).resolve() != workspace.ROOT:  # an exported tree
        assert state == {"commit": "unknown", "dirty": "unknown"}
        return
    assert state["commit"] == commit.strip() and len(state["commit"]) == 40
    assert isinstance(state["dirty"], bool)
