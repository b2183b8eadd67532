"""Benchmark every variant on the devices named in a config's bench block (the flow's device
measurement, edgequant/flow/devices.py, runs every study and deployment through it).

Results go to `<out_dir>/devices.jsonl` as they finish (a re-run skips what succeeded) and into
deploy.json as `devices`, so the report can put each board's latency beside the host's.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.bench import fleet, inventory
from edgequant.bench import settings as bench_settings

# What a report needs of a fleet record (compare.status reads the last five).
FIELDS = (
    "device",
    "model",
    "runtime",
    "runtime_version",
    "latency_ms",
    "error",
    "kind",
    "environment",
    "parity",
    "emulated",
    "golden_check",
    "num_threads",
    "threads_over_cores",
    "postprocess",
)


def run_devices(cfg, models: list, out_dir, postprocess=None) -> list[dict]:
    """Every model on every device named in `cfg.devices` (a config's bench block); returns
    the latest record per (device, model file name), including those of earlier runs in
    `out_dir/devices.jsonl`; empty when no device is named. The deployment flow
    (edgequant/flow/devices.py) measures through it, for the study and a deployment alike."""
    names = tuple(cfg.get("devices", ()) or ())
    if not names or not models:
        return []
    devices = [inventory.resolve(n, cfg.inventory, cfg.remote_python or None) for n in names]
    settings = bench_settings.from_config(cfg, runtime="auto")
    store_path = Path(out_dir) / "devices.jsonl"
    fleet.run_fleet(
        models, devices, settings, store_path, cfg.ssh_config or None, postprocess=postprocess
    )
    from edgequant.bench.store import ResultsStore

    latest = {}
    for r in ResultsStore(store_path).records():
        latest[(r["device"], r["model"])] = r
    return [{k: r[k] for k in FIELDS if k in r} for r in latest.values()]
