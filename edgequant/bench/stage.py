"""The device stage: benchmark every variant on the devices named in config.bench.devices.

Results go to `<out_dir>/devices.jsonl` as they finish (a re-run skips what succeeded) and into
deploy.json as `devices`, so the report can put each board's latency beside the host's. It
runs last among the flow's stages (it needs every variant) and makes no variant itself; a
device run that failed is kept with its error, and the binary exits non-zero for it.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.bench import fleet, inventory
from edgequant.bench import settings as bench_settings
from edgequant.errors import UserError


def devices_stage(study, results: dict) -> list[dict]:
    cfg = study.config.bench
    names = tuple(cfg.get("devices", ()) or ())
    if not names or not results["variants"]:
        return []
    try:
        devices = [inventory.resolve(n, cfg.inventory, cfg.remote_python or None) for n in names]
        settings = bench_settings.from_config(cfg, runtime="auto")
        models = [v["path"] for v in results["variants"]]
        fleet.run_fleet(
            models, devices, settings, Path(study.out_dir) / "devices.jsonl", cfg.ssh_config or None
        )
    except (UserError, ValueError, RuntimeError, OSError) as e:
        results["errors"].append({"name": "devices", "error": str(e).splitlines()[0]})
        return []
    # Report the latest record per (device, model), including those from earlier runs.
    from edgequant.bench.store import ResultsStore

    latest = {}
    for r in ResultsStore(Path(study.out_dir) / "devices.jsonl").records():
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
    return []
