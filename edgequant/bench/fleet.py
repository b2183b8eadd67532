"""Many models x many devices: at most one job per device at a time, a capped number at once.

Scheduling: each device with missing results is one unit of work. `max_parallel` worker
threads each lease one device, run its missing jobs one after another over one SSH master
connection, close it, and lease the next device. A device is leased by one thread at a time, so
two benchmarks never share a board (they would disturb each other's timing), and the number of
open SSH connections stays at most `max_parallel`.

Failures: a device that fails never stops the others. Only transport failures (ssh exit 255:
refused, unreachable, timed-out connect) are retried, with capped exponential backoff; a failing
model or a missing runtime is reported once as a structured error. A device that stays
unreachable gets one error record for each of its remaining jobs instead of a wait on each.

Exactly once: every job of a run ends with one record in the store, appended as soon as it
exists; the store refuses a second success for a key, and a re-run schedules only the jobs
without a success (`missing`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edgequant import progress
from edgequant.bench import device_runner, remote, store
from edgequant.bench.inventory import Device
from edgequant.bench.ssh import RemoteError, Transport, TransportError

# Jobs in flight at once. Each holds one ssh master connection and one session process on this
# host, and mostly waits on its device; 8 keeps a laptop responsive. Raise it for large fleets.
DEFAULT_MAX_PARALLEL = 8


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_secs: float = 1.0
    max_backoff_secs: float = 8.0


@dataclasses.dataclass(frozen=True)
class Job:
    device: Device
    model: Path
    key: str


# TFLite's words (tflite-runtime and LiteRT alike) when the runtime has no kernel for an op, or
# for the op's version, in the model: e.g. tflite-runtime 2.14 cannot load TF 2.21's hybrid
# FULLY_CONNECTED (version 12). The variant needs a newer runtime; the device itself works.
UNSUPPORTED_OP = "Didn't find op for builtin opcode"


def _error(kind: str, message: str, **extra) -> dict:
    return {"error": message, "kind": kind, **extra}


def job_key(model_sha256: str, device: str, python: str, settings: dict) -> str:
    """The results-store key of one model on one device. The device's Python is part of it:
    another interpreter on the same board is another runtime, and a success with one must not
    stand for a run with another."""
    return store.key(model_sha256, device, {**settings, "python": python})


def plan(
    models: Sequence[str | Path],
    devices: Sequence[Device],
    settings: remote.Settings,
    results: store.ResultsStore,
    postprocess: str | Path | None = None,
) -> dict[str, list[Job]]:
    """Device name -> its jobs without a success in the store (one per distinct model). With a
    `postprocess` tail, the key holds the tail's hash too (body alone and body + tail differ)."""
    tail = "+" + device_runner.sha256_file(postprocess) if postprocess else ""
    hashes = {
        Path(m): device_runner.sha256_file(m) + tail for m in models
    }  # each model read once, not per device
    done = results.done()
    out: dict[str, list[Job]] = {}
    for d in devices:
        seen, jobs = set(), []
        for model, sha in hashes.items():
            k = job_key(sha, d.name, d.python, settings.to_dict())
            if k not in done and k not in seen:
                seen.add(k)
                jobs.append(Job(d, model, k))
        if jobs:
            out[d.name] = jobs
    return out


class _Leases:
    """Which devices are busy; leasing a busy device is a scheduler bug, so it raises."""

    def __init__(self):
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def acquire(self, name: str) -> None:
        with self._lock:
            if name in self._busy:
                raise AssertionError(f"device {name} leased twice")
            self._busy.add(name)

    def release(self, name: str) -> None:
        with self._lock:
            self._busy.discard(name)


def run_device_jobs(
    jobs: Sequence[Job],
    settings: remote.Settings,
    results: store.ResultsStore,
    ssh_config: str | None,
    retry: RetryPolicy,
    step_timeout: float,
    accept_new: bool,
    on_result: Callable[[dict], None] | None = None,
    postprocess: str | Path | None = None,
) -> list[dict]:
    """Runs one device's jobs in order over one transport; one record per job."""
    device = jobs[0].device
    transport = Transport(device.destination, ssh_config, accept_new=accept_new)
    out = []
    try:
        for i, job in enumerate(progress.track(jobs, device.name, unit="model")):
            started = time.time()
            record = _run_with_retries(
                device, job.model, settings, transport, retry, step_timeout, postprocess
            )
            record.update(
                key=job.key,
                device=device.name,
                model=job.model.name,
                started_at=started,
                finished_at=time.time(),
                commands=[" ".join(c) for c in transport.log[-4:]],
            )
            if results.append(record):
                out.append(record)
                if on_result:
                    on_result(record)
            if record.get("kind") == "transport":
                # The device is gone: report the rest of its jobs instead of waiting on each.
                for rest in jobs[i + 1 :]:
                    now = time.time()
                    r = _error(
                        "transport",
                        f"skipped: {device.name} unreachable ({record['error']})",
                        key=rest.key,
                        device=device.name,
                        model=rest.model.name,
                        started_at=now,
                        finished_at=now,
                    )
                    results.append(r)
                    out.append(r)
                break
    finally:
        _close(transport)
    return out


def _close(transport: Transport, wait_secs: float = 5.0) -> None:
    """Ends the device's master connection and waits until its process is gone, so that the
    next device's connection never overlaps it (`ssh -O exit` returns before the master has
    closed its socket): at most `max_parallel` connections are ever open."""
    args = [*transport.base(), "-O", "check", *transport.destination.args()]
    try:
        check = subprocess.run(args, capture_output=True, text=True, timeout=10)
        transport.close()
    except Exception:  # noqa: BLE001 - closing a dead master connection may fail
        return
    found = re.search(r"pid=(\d+)", check.stderr)
    deadline = time.monotonic() + wait_secs
    while found and time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{found.group(1)}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return  # exited (or no /proc: nothing more to wait for)
        if state == "Z":
            return
        time.sleep(0.01)


def _run_with_retries(
    device, model, settings, transport, retry, step_timeout, postprocess=None
) -> dict:
    delay = retry.backoff_secs
    for attempt in range(1, retry.attempts + 1):
        try:
            return remote.run_on_device(
                device, model, settings, transport, step_timeout, postprocess
            )
        except TransportError as e:
            if attempt == retry.attempts:
                return _error("transport", str(e), attempts=attempt)
            time.sleep(delay)
            delay = min(delay * 2, retry.max_backoff_secs)
        except RemoteError as e:
            kind = "unsupported" if UNSUPPORTED_OP in str(e) else "remote"
            return _error(kind, str(e), attempts=attempt)
        except (OSError, ValueError) as e:
            return _error("local", str(e), attempts=attempt)
    raise AssertionError("unreachable")


def run_fleet(
    models: Sequence[str | Path],
    devices: Sequence[Device],
    settings: remote.Settings,
    store_path: str | Path,
    ssh_config: str | None = None,
    retry: RetryPolicy = RetryPolicy(),
    step_timeout: float = 300.0,
    accept_new: bool = False,
    on_result: Callable[[dict], None] | None = None,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    postprocess: str | Path | None = None,
) -> list[dict]:
    """Benchmarks every model on every device that has no result for it yet; returns the new
    records (also in the store). At most `max_parallel` devices are busy at once."""
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    names = [d.name for d in devices]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"device(s) listed twice: {', '.join(twice)}")
    results = store.ResultsStore(store_path)
    pending = collections.deque(plan(models, devices, settings, results, postprocess).values())
    queue_lock, leases = threading.Lock(), _Leases()

    def worker() -> list[dict]:
        out = []
        while True:
            with queue_lock:
                if not pending:
                    return out
                jobs = pending.popleft()
            name = jobs[0].device.name
            leases.acquire(name)
            try:
                out += run_device_jobs(
                    jobs,
                    settings,
                    results,
                    ssh_config,
                    retry,
                    step_timeout,
                    accept_new,
                    on_result,
                    postprocess,
                )
            finally:
                leases.release(name)

    threads = max(1, min(max_parallel, len(pending)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        return [r for f in futures for r in f.result()]
