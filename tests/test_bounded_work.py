"""Issue 21 item 5, bounded work: inputs whose calibration or evaluation would not fit in memory
are refused before any work with the size needed; a data callable has a sample cap; SIGINT and
SIGTERM during the data pass end the run promptly with rundir's truthful message."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from edgequant.data import sources
from edgequant.errors import UserError
from edgequant.flow import bounds, prepare
from tests import memcap
from tests import truth_fixtures as tf_
from tests.conftest import REPO, run_tool, signal_when
from tests.truth_fixtures import config, png_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


def test_available_memory_is_read_from_this_machine():
    available = bounds.available_bytes()
    meminfo = open("/proc/meminfo").read()
    total = int(next(ln for ln in meminfo.splitlines() if ln.startswith("MemTotal:")).split()[1])
    assert 0 < available <= total * 1024


def test_a_batch_is_bounded_by_its_bytes_as_well_as_its_count():
    mib = 1 << 20
    assert bounds.batch_size(28 * 28 * 4, 64) == 64  # small samples: the count decides
    assert bounds.batch_size(4096 * 4096 * 3 * 4, 64) == 1  # 192 MiB: one at a time
    assert bounds.batch_size(2048 * 2048 * 3 * 4, 64) == 5  # 48 MiB: 5 x 48 <= 256 MiB
    assert bounds.batch_size(10 * mib, 8) == 8
    assert bounds.batch_size(10_000 * mib, 64) == 1  # never zero


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_cap_is_this_process_cgroups_and_the_tightest_up_its_ancestors(version, tmp_path):
    """The cgroup files as the kernel lays them out: a job in a sub-cgroup of a capped container.
    The root's file (or its absence, under v1) is not the cap that kills the process."""
    gib = 1 << 30
    if version == "v1":
        own = "4:memory:/box/job\n1:cpu:/\n"
        base, limit, usage = tmp_path / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
        unlimited = "9223372036854771712"
    else:
        own = "0::/box/job\n"
        base, limit, usage = tmp_path, "memory.max", "memory.current"
        unlimited = "max"
    _write(base / limit, unlimited)
    _write(base / "box" / limit, str(8 * gib))  # the container: 8 GiB, 5 in use
    _write(base / "box" / usage, str(5 * gib))
    _write(base / "box" / "job" / limit, unlimited)
    _write(base / "box" / "job" / usage, str(1 * gib))
    assert bounds.cgroup_headroom(own, tmp_path) == 3 * gib
    _write(base / "box" / "job" / limit, str(2 * gib))  # the job's own cap is tighter
    assert bounds.cgroup_headroom(own, tmp_path) == 1 * gib
    assert bounds.cgroup_headroom("1:cpu:/\n", tmp_path) is None  # no memory controller


@pytest.mark.platform_limit("needs a cgroup v1 memory hierarchy this user can write (root)")
def test_a_process_under_a_real_memory_cap_sees_the_cap(tmp_path):
    limit = 3 << 30
    folder = memcap.make(tmp_path.name, limit)
    if folder is None:
        pytest.skip("no writable cgroup v1 memory hierarchy here")
    try:
        code = "from edgequant.flow import bounds; print(bounds.available_bytes())"
        proc = subprocess.run(
            ["sh", "-c", f'echo $$ > "{folder}/cgroup.procs" && exec "$0" -c "$1"',
             sys.executable, code],
            capture_output=True, text=True, cwd=REPO, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert 0 <= int(proc.stdout) <= limit
    finally:
        memcap.remove(folder)


def _need_more_than_available(per_sample: int) -> int:
    """Images so that the samples held (at least 1.8 per image with a 20% hold-out) exceed this
    machine's available memory: the refusal must come from the real number, not a fake one."""
    return max(12, math.ceil(bounds.available_bytes() / per_sample / 1.5) + 4)


@pytest.mark.slow
def test_a_4096x4096x3_model_is_refused_before_any_work_with_the_size(folder, tmp_path):
    model = tf_.image_model(folder, (4096, 4096, 3), name="huge.keras")
    n = _need_more_than_available(4096 * 4096 * 3 * 4)
    data = png_folder(tmp_path / "data", math.ceil(n / 3))
    cfg = config(model, data, **{"quantize.calibration_size": n})
    start = time.monotonic()
    with pytest.raises(UserError) as e:
        prepare.prepare(cfg, tmp_path / "out")
    msg = str(e.value)
    assert "GiB" in msg and "[4096, 4096, 3]" in msg and "192.0 MiB" in msg and "available" in msg
    assert time.monotonic() - start < 60  # refused, not attempted
    assert not list((tmp_path / "out").iterdir())


def test_resize_to_20000x20000_is_refused_with_the_size(folder, tmp_path):
    model = tf_.image_model(folder, (None, None, 3), name="free.keras")
    data = png_folder(tmp_path / "data", 4)
    cfg = config(model, data, **{"preprocess.resize": "20000,20000"})
    with pytest.raises(UserError) as e:
        prepare.prepare(cfg, tmp_path / "out")
    assert "[20000, 20000, 3]" in str(e.value) and "4577.6 MiB" in str(e.value)


def _arrays(tmp_path, n):
    x, y = tf_.vectors(n)
    np.savez(tmp_path / "d.npz", x=x, labels=y)
    return sources.open_arrays(tmp_path / "d.npz", [_Input()])


class _Input:
    name, sample_shape, dtype = "x", (4,), "float32"


# (calibration, evaluation, batch, available bytes, refused?) for 16-byte samples
MEMORY_CASES = {
    "fits with room": (100, 20, 64, 1 << 30, False),
    "exactly the bytes needed": (100, 20, 8, 16 * (200 + 20 + 32), False),
    "one byte short": (100, 20, 8, 16 * (200 + 20 + 32) - 1, True),
    "unknown memory refuses nothing": (10**9, 10, 64, None, False),
    "a huge calibration set": (10**9, 20, 64, 1 << 30, True),
    "statistics hold at most 256 evaluation samples": (1, 10**6, 1, 16 * (2 + 256 + 4), False),
    "batches in flight count": (1, 100, 64, 16 * (2 + 100 + 256) - 1, True),
    "a batch larger than the evaluation holds the evaluation": (1, 3, 64, 16 * (2 + 3 + 12), False),
    "no memory at all": (1, 1, 1, 0, True),
    "tiny machine, tiny run": (10, 10, 10, 16 * (20 + 10 + 40), False),
}


@pytest.mark.parametrize("case", sorted(MEMORY_CASES))
def test_samples_held_at_once_are_checked_against_available_memory(case, tmp_path):
    cal, ev, batch, available, refused = MEMORY_CASES[case]
    source = _arrays(tmp_path, 8)
    assert bounds.sample_bytes(source, [_Input()])[0] == 16
    if refused:
        with pytest.raises(UserError, match="GiB of samples in memory"):
            bounds.check_memory(source, [_Input()], cal, ev, batch, available)
    else:
        bounds.check_memory(source, [_Input()], cal, ev, batch, available)


# --- a data callable's sample cap -------------------------------------------------------------

ENDLESS = """
def data():
    i = 0
    while True:
        yield np.full(4, i % 7, np.float32), i % 3
        i += 1
"""


def _module(tmp_path, name, body):
    (tmp_path / f"{name}.py").write_text("import numpy as np\n" + body)
    sys.path.insert(0, str(tmp_path))
    return f"{name}:data"


CAP_CASES = {
    "an endless generator over a small cap": (ENDLESS, 500, "more than 500 samples"),
    "an endless generator over the default cap": (ENDLESS, None, "more than 100000 samples"),
    "a finite generator just over the cap": (
        "def data():\n    return [np.zeros(4, np.float32) for _ in range(51)]\n",
        50,
        "more than 50",
    ),
    "a finite generator at the cap is accepted": (
        "def data():\n    return [np.zeros(4, np.float32) for _ in range(50)]\n",
        50,
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CAP_CASES))
def test_a_data_callable_has_a_sample_cap(case, tmp_path):
    body, cap, refused = CAP_CASES[case]
    name = "cap_" + str(abs(hash(case)))
    spec = _module(tmp_path, name, body)
    kwargs = {} if cap is None else {"max_samples": cap}
    if refused is None:
        src = sources.open_source(spec, [_Input()], lambda: None, **kwargs)
        assert src.size == cap
        return
    with pytest.raises(UserError) as e:
        sources.open_source(spec, [_Input()], lambda: None, **kwargs)
    assert refused in str(e.value) and spec in str(e.value) and "data.max_samples" in str(e.value)


def test_the_config_cap_reaches_the_callable(folder, tmp_path):
    model = tf_.vector_model(folder, "capped.keras")
    spec = _module(tmp_path, "cap_config", ENDLESS)
    with pytest.raises(UserError, match="more than 300 samples"):
        prepare.prepare(config(model, spec, **{"data.max_samples": 300}), tmp_path / "out")


def test_a_callable_pass_stops_once_it_has_every_wanted_sample(tmp_path):
    """Later passes read only as far as the samples they need: a long generator is not drained."""
    body = (
        "CALLS = []\n\ndef data():\n    for i in range(1000):\n        CALLS.append(i)\n"
        "        yield np.full(4, i, np.float32)\n"
    )
    spec = _module(tmp_path, "cap_partial", body)
    src = sources.open_source(spec, [_Input()], lambda: None)
    module = sys.modules["cap_partial"]
    module.CALLS.clear()
    x, _ = src.take(np.array([3, 10]))
    assert x["x"][:, 0].tolist() == [3.0, 10.0]
    assert max(module.CALLS) <= 11


# --- signals during the data pass --------------------------------------------------------------

SLOW = """
import pathlib, time

def data():
    for i in range(100000):
        if i == 3:
            pathlib.Path(__file__).with_name("started").touch()
        time.sleep(0.02)
        yield np.zeros(4, np.float32), i % 3
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_data_counting_ends_the_run_promptly_and_truthfully(
    signum, folder, tmp_path
):
    model = tf_.vector_model(folder, f"sig{int(signum)}.keras")
    (tmp_path / "slow_data.py").write_text("import numpy as np\n" + SLOW)
    out, sent = tmp_path / "bundle", []
    started = signal_when(
        lambda pid: (tmp_path / "started").exists(), signum, timeout=120, sent=sent
    )
    proc = run_tool("deploy", f"--model={model}", "--data=slow_data:data", f"--out_dir={out}",
                    "--target=cpu", cwd=str(tmp_path), env={"PYTHONPATH": str(tmp_path)},
                    during=started)  # fmt: skip
    err = proc.stderr
    assert sent, f"the data pass never started: {err}"
    assert time.monotonic() - sent[0] < 10, "the run did not stop promptly"
    assert proc.returncode == 128 + signum, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and signal.Signals(signum).name in lines[0], err
    assert "nothing was kept" in lines[0] and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("bundle.staging-*"))
