"""The pipeline's device stage: benchmark every variant on the devices named in the config.

Results go to `<workdir>/devices.jsonl` as they finish (a re-run skips what succeeded) and into
results.json as `devices`, so the report can put each board's latency beside the host's.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.bench import fleet, inventory
from edgequant.bench import settings as bench_settings


def devices_stage(study, results: dict) -> None:
    cfg = study.config.bench
    names = tuple(cfg.get("devices", ()) or ())
    if not names or not results["variants"]:
        return
    devices = [inventory.resolve(n, cfg.inventory, cfg.remote_python or None) for n in names]
    settings = bench_settings.from_config(cfg, runtime="auto")
    models = [v["path"] for v in results["variants"]]
    fleet.run_fleet(
        models, devices, settings, Path(study.workdir) / "devices.jsonl", cfg.ssh_config or None
    )
    # Report the latest record per (device, model), including those from earlier runs.
    from edgequant.bench.store import ResultsStore

    latest = {}
    for r in ResultsStore(Path(study.workdir) / "devices.jsonl").records():
        latest[(r["device"], r["model"])] = r
    results["devices"] = [
        {
            k: r.get(k)
            for k in (
                "device",
                "model",
                "runtime",
                "runtime_version",
                "latency_ms",
                "error",
                "kind",
                "environment",
            )
        }
        for r in latest.values()
    ]
