"""Shared fixtures: repository paths, the offline MNIST digits, and tiny trained Keras models.

Models are trained once per session on a few hundred real digits: enough for meaningful
predictions in parity tests, small enough that the whole suite stays fast.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "platform_limit(reason): a skip this platform forces (named); the only kind "
        "of skip CI accepts",
    )


# The three files that each take two to three minutes, handed out first: `make test` gives
# xdist whole files in collection order (--dist loadfile --no-loadscope-reorder; xdist's own
# reorder sends the files with the most tests first, which left a three-minute file to start
# last on one worker while the other sat idle).
LONGEST_FIRST = ("test_distribute.py", "test_notebooks.py", "test_probe.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other file keeps its order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test fails the run, unless it is marked as a platform limit:
    a test that silently does not run proves nothing to the next person who clones this."""
    outcome = yield
    report = outcome.get_result()
    if (
        os.environ.get("CI") == "true"
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("platform_limit") is None
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true (only platform limits may skip): {report.longrepr}"
        )


_zygote = None
_zygote_lock = threading.Lock()


def shared_zygote():
    """This worker's zygote (tests/probe/runner.py), started on first use: run_tool and the
    probe's session fork every binary from it, so the worker imports TensorFlow for them once."""
    from tests.probe import runner

    global _zygote
    with _zygote_lock:
        if _zygote is None:
            _zygote = runner.Zygote()
    return _zygote


def run_tool(name: str, *args: str, timeout: int = 600, fresh: bool = False, during=None,
             **where):  # fmt: skip
    """Runs tools/<name>.py (or a script named by its repo path, e.g. "benchmarks/byom") in the
    repository; returns CompletedProcess (text).

    The binary runs as its own process, forked from one per-worker zygote that imported
    TensorFlow once (tests/probe/runner.py): TensorFlow's ~6 s of start-up CPU per call is what
    made this suite slow, and a forked child is still the real binary with its own argv, flags,
    streams, exit status and signals. `fresh=True` (or EDGEQUANT_TEST_FRESH=1) starts a plain
    interpreter instead, for what only a fresh start shows. `during(pid)` runs once the binary
    started (to signal it at a chosen moment, see `signal_when`); a binary killed by signal N
    exits 128 + N. `where`: runner.run's cwd, env (PYTHONPATH is added to the repository) and
    tmpfs ("PATH[:ro,size=16k]": the binary sees a private tmpfs mounted there)."""
    import subprocess

    from tests.probe import runner

    fresh = fresh or os.environ.get("EDGEQUANT_TEST_FRESH") == "1"
    with tempfile.TemporaryDirectory(prefix="run_tool-") as folder:
        out = runner.run(
            None if fresh else shared_zygote(),
            name,
            list(args),
            Path(folder),
            timeout=timeout,
            during=during,
            **where,
        )
    if out.exit is None:
        raise subprocess.TimeoutExpired([name, *args], timeout, out.stdout, out.stderr)
    return subprocess.CompletedProcess([name, *args], out.exit, out.stdout, out.stderr)


def alive(pid: int) -> bool:
    """Whether pid is still running. A zombie still answers kill(0): it has exited, its parent
    (the test, or the zygote for a forked binary) just has not reaped it yet."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):  # gone, also between the two calls
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def signal_when(condition, signum: int, timeout: float = 300, settle: float = 0.0, sent=None):
    """A run_tool `during`: sends signum once condition(pid) holds (polled every 1 ms), after
    `settle` more seconds, and appends the monotonic time it did to `sent` (a list) if given. A
    binary that ends first, or never gets there, is left to the test's exit-status assertion
    (it is killed after `timeout`), which then shows its stderr."""
    import time

    def during(pid: int) -> None:
        deadline = time.monotonic() + timeout
        while not condition(pid):
            if not alive(pid):
                return
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.001)
        time.sleep(settle)
        os.kill(pid, signum)
        if sent is not None:
            sent.append(time.monotonic())

    return during


def pytest_sessionfinish(session, exitstatus):
    if _zygote is not None:
        _zygote.close()


def assert_one_line_error(proc, *needles: str) -> None:
    """A failed binary: non-zero exit, no traceback, and an error line naming the problem."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    error_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(("error:", "FATAL"))]
    assert len(error_lines) == 1, proc.stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]


@pytest.fixture(scope="session")
def coral_dir() -> Path:
    """Coral's real test models, vendored with their source and sha256 (tests/data/coral)."""
    return DATA / "coral"


@pytest.fixture(scope="session")
def digits():
    """The seeded splits of the 5,000 offline MNIST digits, as stored (uint8 [N, 28, 28])."""
    from edgequant.datasets import mnist

    return mnist.read(download=False, seed=0)


def ready(images: np.ndarray) -> np.ndarray:
    """Stored digits -> the study's model inputs (float32 [N, 28, 28, 1] in [0, 1])."""
    from edgequant import datasets
    from edgequant.data import preprocess

    return preprocess.apply_batch(images, datasets.preprocessing((28, 28, 1)))


@pytest.fixture(scope="session")
def prepared(digits):
    """The same splits, preprocessed once, as datasets.load gives them to training."""
    from edgequant import datasets

    return datasets.prepare(digits, (28, 28, 1))


@pytest.fixture(scope="session")
def tiny_model(digits):
    """A small mnist_cnn trained for two epochs on the offline training split (~90% accurate)."""
    from edgequant import zoo
    from edgequant.train import fit

    fit.set_seed(0)
    model = zoo.build("mnist_cnn", (28, 28, 1), 10, filters=(8, 16), dense_units=32, dropout=0.0)
    x = ready(digits.train.x[:2000])
    fit.compile_model(model, 3e-3, 200)
    model.fit(x, digits.train.y[:2000], batch_size=32, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="session")
def test_images(digits):
    return ready(digits.test.x[:300]), digits.test.y[:300]


@pytest.fixture(scope="session")
def representative(prepared):
    from edgequant.data import calibration
    from edgequant.data.dataset import INPUT

    return calibration.build(prepared.train, 100, 0, {INPUT: (28, 28, 1)})[INPUT]


def class_scores(path, x: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """A one-input classifier .tflite's scores for float inputs x, read by output name."""
    from edgequant.evaluate import metrics, runner

    model = runner.SignatureModel(path, batch_size=100)
    out = model.predict({model.inputs[0].name: x})
    return out[metrics.classifier_output(model.outputs, num_classes)]


def float_outputs(model, x: np.ndarray) -> np.ndarray:
    return model.predict(x, batch_size=300, verbose=0)
