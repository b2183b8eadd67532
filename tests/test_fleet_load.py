"""The device fleet under load: exactly-once results, one job per device at a time, resume.

A small version of benchmarks/fleet_load.py (4 loopback sshd devices, 3 tiny models, a power
cut on one device mid-run), checked from the store files themselves, not from the tool's own
summary; plus the store's guarantee against a second success for one job.
"""

import json
import threading
from collections import Counter

import pytest

from edgequant.bench import device_runner, fleet, remote, store
from tests.conftest import REPO, run_tool

DEVICE_PYTHON = REPO / ".venv-device" / "bin" / "python"


def test_store_records_one_success_per_job_even_with_concurrent_writers(tmp_path):
    path = tmp_path / "results.jsonl"
    writers = [store.ResultsStore(path) for _ in range(8)]  # like 8 fleets sharing one store
    accepted = []

    def write(s: store.ResultsStore) -> None:
        for i in range(20):
            s.append({"key": f"job{i % 5}", "error": "refused", "kind": "transport"})
            accepted.append(s.append({"key": f"job{i % 5}", "latency_ms": {"p50": 1.0}}))

    threads = [threading.Thread(target=write, args=(s,)) for s in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = store.ResultsStore(path)
    assert sum(accepted) == 5 and reader.duplicates() == {}
    assert reader.done() == {f"job{i}" for i in range(5)}
    assert all("error" not in r for r in reader.latest().values())


def test_fleet_rejects_a_bad_parallelism_and_a_device_listed_twice(tmp_path):
    from edgequant.bench.inventory import Device
    from edgequant.bench.ssh import Destination

    d = Device("d", Destination("d"))
    with pytest.raises(ValueError, match="max_parallel must be at least 1"):
        fleet.run_fleet([], [d], remote.Settings(), tmp_path / "s.jsonl", max_parallel=0)
    with pytest.raises(ValueError, match="listed twice: d"):
        fleet.run_fleet([], [d, d], remote.Settings(), tmp_path / "s.jsonl")


def _intervals_overlap(intervals) -> bool:
    intervals = sorted(intervals)
    return any(b[0] < a[1] for a, b in zip(intervals, intervals[1:], strict=False))


@pytest.mark.slow
@pytest.mark.ssh
def test_fleet_under_load_records_every_job_once_and_resumes_only_the_missing(tmp_path):
    if not DEVICE_PYTHON.exists():
        pytest.skip(f"device venv missing at {DEVICE_PYTHON} (make device-venv creates it)")
    out = tmp_path / "fleet.json"
    proc = run_tool(
        "benchmarks/fleet_load",
        "--devices=4",
        "--models=3",
        "--max_parallel=3",
        "--kill=1",
        "--min_secs=0.05",
        f"--workdir={tmp_path / 'w'}",
        f"--output_json={out}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    clean, chaos, resume = report["passes"]
    jobs = report["jobs"]
    assert jobs == 12
    # Read the stores back independently: expected keys from the models and device names.
    models = sorted((tmp_path / "w" / "models").glob("*.tflite"))
    settings = report["settings"]
    keys = {
        fleet.job_key(
            device_runner.sha256_file(m), f"dev{d:02d}", report["device_python"], settings
        )
        for m in models
        for d in range(4)
    }
    for name, expect_errors in (("clean", False), ("chaos", True)):
        records = store.ResultsStore(tmp_path / "w" / f"{name}.jsonl").records()
        assert {r["key"] for r in records} == keys  # nothing lost, nothing foreign
        successes = Counter(r["key"] for r in records if "error" not in r)
        assert max(successes.values()) == 1  # no duplicate
        by_device = {}
        for r in records:
            by_device.setdefault(r["device"], []).append((r["started_at"], r["finished_at"]))
        assert not any(_intervals_overlap(v) for v in by_device.values())
        if not expect_errors:
            assert len(records) == jobs and set(successes) == keys
    # The chaos pass: every job has one record (success or error) before the resume.
    assert chaos["jobs_run"] == jobs and chaos["lost"] == 0
    missing = resume["missing_before"]
    errors = [
        r for r in store.ResultsStore(tmp_path / "w" / "chaos.jsonl").records() if "error" in r
    ]
    assert chaos["killed"] == ["dev03"]
    assert missing == len(errors) > 0 and all(r["device"] == "dev03" for r in errors)
    # The resume ran exactly the missing jobs, and now every job has exactly one success.
    assert resume["jobs_run"] == missing == resume["jobs_ok"]
    assert resume["successes"] == jobs and resume["duplicates"] == 0 and resume["lost"] == 0
    # The cap: never more jobs at once than max_parallel (from the records' own intervals).
    # Open SSH connections follow it; ssh may briefly hold one more while a device's master
    # connection is being set up, so the sampled peak gets one connection of slack.
    assert clean["max_jobs_at_once"] <= report["max_parallel"]
    assert clean["peak_ssh_connections"] <= report["max_parallel"] + 1
