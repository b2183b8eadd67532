"""The pipeline's device stage: benchmark every variant on the devices named in the config.

Results go to `<workdir>/devices.jsonl` as they finish (a re-run skips what succeeded) and into
results.json as `devices`, so the report can put each board's latency beside the host's.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.bench import fleet, inventory
from edgequant.bench import settings as bench_settings


def devices_stage(study, results: dict) -> None:
    if results["variants"]:
        records = run_devices(
            study.config.bench, [v["path"] for v in results["variants"]], study.workdir
        )
        if records:
            results["devices"] = records


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
)


def run_devices(cfg, models: list, out_dir) -> list[dict]:
    """Every model on every device named in `cfg.devices` (a config's bench block); returns
    the latest record per (device, model file name), including those of earlier runs in
    `out_dir/devices.jsonl`; empty when no device is named. The pipeline's stage and the
    deployment flow (edgequant/flow/devices.py) both measure through it."""
    names = tuple(cfg.get("devices", ()) or ())
    if not names or not models:
        return []
    devices = [inventory.resolve(n, cfg.inventory, cfg.remote_python or None) for n in names]
    settings = bench_settings.from_config(cfg, runtime="auto")
    store_path = Path(out_dir) / "devices.jsonl"
    fleet.run_fleet(models, devices, settings, store_path, cfg.ssh_config or None)
    from edgequant.bench.store import ResultsStore

    latest = {}
    for r in ResultsStore(store_path).records():
        latest[(r["device"], r["model"])] = r
    return [{k: r[k] for k in FIELDS if k in r} for r in latest.values()]
