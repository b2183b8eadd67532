"""Many models x many devices: one job at a time per device, devices in parallel.

A device that fails never stops the others. Only transport failures (ssh exit 255: refused,
unreachable, timed-out connect) are retried, with capped exponential backoff; a failing model
or a missing runtime is reported once as a structured error. Every result is appended to the
store as soon as it exists, and a re-run skips what already succeeded.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edgequant import progress
from edgequant.bench import remote, store
from edgequant.bench.inventory import Device
from edgequant.bench.ssh import RemoteError, Transport, TransportError


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_secs: float = 1.0
    max_backoff_secs: float = 8.0


def _error(kind: str, message: str, **extra) -> dict:
    return {"error": message, "kind": kind, **extra}


def run_device_jobs(
    device: Device,
    models: Sequence[Path],
    settings: remote.Settings,
    results: store.ResultsStore,
    ssh_config: str | None,
    retry: RetryPolicy,
    step_timeout: float,
    accept_new: bool,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    transport = Transport(device.destination, ssh_config, accept_new=accept_new)
    done = results.done()
    out = []
    try:
        for model in progress.track(models, f"{device.name}", unit="model"):
            k = store.key(remote.sha256(model), device.name, settings.to_dict())
            if k in done:
                continue
            record = _run_with_retries(device, model, settings, transport, retry, step_timeout)
            record.update(
                key=k,
                device=device.name,
                model=Path(model).name,
                commands=[" ".join(c) for c in transport.log[-4:]],
            )
            results.append(record)
            out.append(record)
            if on_result:
                on_result(record)
            if record.get("kind") == "transport":
                # The device is gone: report the rest of its jobs instead of waiting on each.
                for rest in models[models.index(model) + 1 :]:
                    r = _error(
                        "transport",
                        f"skipped: {device.name} unreachable ({record['error']})",
                        key=store.key(remote.sha256(rest), device.name, settings.to_dict()),
                        device=device.name,
                        model=Path(rest).name,
                    )
                    results.append(r)
                    out.append(r)
                break
    finally:
        try:
            transport.close()
        except Exception:  # noqa: BLE001 - closing a dead master connection may fail
            pass
    return out


def _run_with_retries(device, model, settings, transport, retry, step_timeout) -> dict:
    delay = retry.backoff_secs
    for attempt in range(1, retry.attempts + 1):
        try:
            return remote.run_on_device(device, model, settings, transport, step_timeout)
        except TransportError as e:
            if attempt == retry.attempts:
                return _error("transport", str(e), attempts=attempt)
            time.sleep(delay)
            delay = min(delay * 2, retry.max_backoff_secs)
        except RemoteError as e:
            return _error("remote", str(e), attempts=attempt)
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
) -> list[dict]:
    """Benchmarks every model on every device; returns the new records (also in the store)."""
    results = store.ResultsStore(store_path)
    paths = [Path(m) for m in models]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(devices))) as pool:
        futures = [
            pool.submit(
                run_device_jobs,
                d,
                paths,
                settings,
                results,
                ssh_config,
                retry,
                step_timeout,
                accept_new,
                on_result,
            )
            for d in devices
        ]
        return [r for f in futures for r in f.result()]
