"""The suite's own rules: under CI=true a skip fails the run unless it names a platform limit."""

import os
import subprocess
import sys

from tests.conftest import REPO

BODY = """
import pytest

def test_silently_skipped():
    pytest.skip("no reason a reader could check")

@pytest.mark.platform_limit("needs an Edge TPU board")
def test_skipped_for_a_named_platform_limit():
    pytest.skip("no Edge TPU here")
"""


def _run(tmp_path, ci: str):
    test = tmp_path / "test_sample.py"
    test.write_text(BODY)
    env = {**os.environ, "CI": ci}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", str(test)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def test_under_ci_a_silent_skip_fails_and_a_platform_limit_may_skip(tmp_path):
    proc = _run(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    assert "1 failed, 1 skipped" in proc.stdout
    assert "skipped under CI=true" in proc.stdout


def test_outside_ci_both_skips_are_reported_as_skips(tmp_path):
    proc = _run(tmp_path, "")
    assert proc.returncode == 0, proc.stdout
    assert "2 skipped" in proc.stdout
