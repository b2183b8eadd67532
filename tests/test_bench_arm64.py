"""The emulated arm64 board (make device-arm64): Debian bookworm arm64, Python 3.11 and
tflite-runtime 2.14 (aarch64 wheels) under qemu-user, behind the loopback sshd beside the x86
device. Runs are kept to a few invokes of small models: qemu makes every one ~100x slower."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from edgequant.bench import compare, fleet, history, remote, store
from edgequant.bench.inventory import Device
from edgequant.bench.ssh import Destination, RemoteError
from edgequant.report import writer
from tests.conftest import REPO
from tests.test_bench_ssh import DEVICE_PYTHON, NO_WAIT, _server, transport

pytestmark = pytest.mark.ssh
ARM64 = REPO / ".devices" / "arm64"
ARM64_PYTHON = ARM64 / "bin" / "python"
TINY = remote.Settings(
    "tflite_runtime", threads=1, num_runs=3, min_secs=0.0, warmup_runs=1, warmup_min_secs=0.0
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not ARM64_PYTHON.exists():
        pytest.skip(f"arm64 device missing at {ARM64} (make device-arm64 builds it)")
    s = _server(tmp_path_factory.mktemp("sshd"))
    yield s
    s.stop()


def arm64(tmp_path: Path, python: Path = ARM64_PYTHON) -> Device:
    return Device("arm64", Destination("loopdev"), str(python), str(tmp_path / "remote"))


def test_arm64_benchmark_is_labelled_emulated_and_checks_parity_in_lsb(server, tmp_path, coral_dir):
    r = remote.run_on_device(
        arm64(tmp_path), coral_dir / "mobilenet_v1_0.25_128_quant.tflite", TINY, transport(server)
    )
    env = r["environment"]
    assert env["machine"] == "aarch64" and env["python"].startswith("3.11")
    assert "bookworm" in env["os"] and "qemu-user" in env["emulated"]
    assert env["cpu_model"].endswith("(the host's CPU, emulating aarch64)")
    assert (r["runtime"], r["runtime_version"]) == ("tflite-runtime", "2.14.0")
    # the emulator's timing is kept for the record but is never a latency
    assert r["latency_ms"] is None and r["samples_ms"] is None
    assert r["emulated"]["label"] == "emulated: functional check, not a latency"
    assert r["emulated"]["latency_ms"]["n"] >= 3
    parity = r["parity"]
    assert parity["ok"] and 0 <= parity["max_lsb_diff"] <= parity["bound_lsb"] == 8.0
    assert parity["device_runtime"] == "tflite-runtime 2.14.0"
    assert parity["reference_runtime"].startswith("ai-edge-litert")
    row = compare.table([r]).splitlines()[-1]
    assert row.startswith("| arm64 | mobilenet_v1_0.25_128_quant.tflite | tflite-runtime 2.14.0 |")
    assert "| - | - | - |" in row and "emulated: functional check, not a latency" in row


def test_fleet_runs_the_x86_and_the_arm64_board_together(server, tmp_path, coral_dir):
    x86 = Device("x86", Destination("loopdev"), str(DEVICE_PYTHON), str(tmp_path / "rx"))
    store_path = tmp_path / "results.jsonl"
    records = fleet.run_fleet(
        [coral_dir / "split_concat.tflite"],
        [x86, arm64(tmp_path)],
        TINY,
        store_path,
        str(server.ssh_config),
        NO_WAIT,
        120,
    )
    by_device = {r["device"]: r for r in records}
    assert set(by_device) == {"x86", "arm64"} and not any("error" in r for r in records)
    assert by_device["x86"]["environment"]["machine"] == "x86_64"
    assert by_device["x86"]["latency_ms"]["n"] >= 3 and by_device["x86"]["emulated"] is None
    assert by_device["arm64"]["environment"]["machine"] == "aarch64"
    assert by_device["arm64"]["latency_ms"] is None and by_device["arm64"]["emulated"]
    assert all(r["parity"]["ok"] for r in records)  # split_concat only moves bytes: 0 LSB
    assert all(r["parity"]["max_lsb_diff"] == 0 for r in records)
    # the history keeps the x86 latency and leaves the emulated record out
    kept, emulated = history.load(tmp_path)
    assert [r["device"] for r in kept] == ["x86"] and emulated == 1
    assert len(store.ResultsStore(store_path).records()) == 2
    # the pipeline report's Devices section prints the label, not the emulator's timing
    report = "\n".join(writer.devices_section({"devices": records, "variants": []}))
    assert (
        "| arm64 | split_concat.tflite | tflite-runtime 2.14.0 | emulated: functional check, "
        "not a latency |" in report
    )


def test_arm64_board_without_a_runtime_says_so(server, tmp_path, coral_dir):
    site = tmp_path / "site"  # numpy only: a board where tflite-runtime was never installed
    site.mkdir()
    (site / "numpy").symlink_to(ARM64 / "site" / "numpy")
    (site / "numpy.libs").symlink_to(ARM64 / "site" / "numpy.libs")
    wrapper = tmp_path / "python"
    wrapper.write_text(
        ARM64_PYTHON.read_text().replace(f"PYTHONPATH={ARM64 / 'site'}", f"PYTHONPATH={site}")
    )
    wrapper.chmod(0o755)
    auto = remote.Settings("auto", num_runs=1, min_secs=0.0, warmup_runs=0, warmup_min_secs=0.0)
    with pytest.raises(RemoteError, match="arm64: no TFLite runtime found: install"):
        remote.run_on_device(
            arm64(tmp_path, wrapper), coral_dir / "split_concat.tflite", auto, transport(server)
        )


def _runner_pid(marker: str, deadline: float) -> int:
    """The device runner process (qemu running python3.11) whose command line has marker."""
    while time.monotonic() < deadline:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                words = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                words
                and words[0].endswith(b"qemu-aarch64-static")
                and any(marker.encode() in w for w in words)
            ):
                return int(cmdline.parent.name)
        time.sleep(0.2)
    raise AssertionError("the device runner never started")


def test_arm64_runner_killed_mid_run_is_a_structured_error(server, tmp_path, coral_dir):
    long = remote.Settings("tflite_runtime", num_runs=10**6, min_secs=120, max_secs=300)
    dev, outcome = arm64(tmp_path), {}

    def run():
        try:
            remote.run_on_device(
                dev, coral_dir / "split_concat.tflite", long, transport(server), 200
            )
        except RemoteError as e:
            outcome["error"] = str(e)

    worker = threading.Thread(target=run)
    worker.start()
    pid = _runner_pid(str(tmp_path / "remote"), time.monotonic() + 60)
    time.sleep(6.0)  # past start-up and imports (~3 s under qemu): inside the measuring loop
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    worker.join(60)
    assert not worker.is_alive()
    assert "arm64: device runner killed by SIGKILL" in outcome["error"]
