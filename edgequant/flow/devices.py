"""Every variant on the target devices (config.bench.devices), over SSH, beside the host.

The measuring is the fleet's (bench/stage.run_devices -> bench/fleet.py): one job per device
at a time, retries on transport failures, the host's LiteRT outputs as the parity reference.
Here the records become each variant's `devices` entry, and a device that fails becomes one
line in result["errors"] instead of stopping the run: every other result is still written,
and the binary exits non-zero. A variant the device's runtime cannot load (an op or op version
newer than its TFLite: fleet's `unsupported`) is not a failing device: it is a warning, and
that variant cannot be recommended for the device. An unknown device name is bad input,
refused before any work by config_check (like every config key).
"""

from __future__ import annotations

from pathlib import Path

from edgequant.bench import compare, fleet, inventory
from edgequant.bench import stage as bench_stage
from edgequant.flow.study import Study


def names(config) -> tuple[str, ...]:
    return tuple(config.bench.get("devices", ()) or ())


def entry(record: dict) -> dict:
    """One device's numbers for one variant, as deploy.json holds them."""
    if "error" in record:
        return {
            "runtime": record.get("runtime"),
            "runtime_version": record.get("runtime_version"),
            "p50": None,
            "p90": None,
            "p99": None,
            "status": f"{record.get('kind', 'error')}: {str(record['error']).splitlines()[0]}",
            "emulated": False,
            "parity_vs_host": None,
        }
    lat = record.get("latency_ms") or {}  # an emulated board has no latency, by design
    parity = record.get("parity")
    emulated = record.get("emulated")
    chained = (record.get("postprocess") or {}).get("latency_ms") or {}
    return {
        "runtime": record["runtime"],
        "runtime_version": record["runtime_version"],
        **({"end_to_end_p50": chained.get("p50")} if record.get("postprocess") else {}),
        "p50": lat.get("p50"),
        "p90": lat.get("p90"),
        "p99": lat.get("p99"),
        "status": compare.status(record),
        "emulated": emulated.get("label", "emulated") if emulated else False,
        "parity_vs_host": (
            {k: parity.get(k) for k in ("ok", "max_lsb_diff", "bound_lsb", "message")}
            if parity
            else None
        ),
    }


def measure_on_devices(study: Study, variants: list[dict], result: dict) -> None:
    """Fills each variant's `devices` and result["devices"] (the fleet records, the shape the
    study's device stage writes too); a failing device is one line in result["errors"]."""
    if not names(study.config) or not variants:
        return
    task = getattr(study, "task", None)
    records = bench_stage.run_devices(
        study.config.bench,
        [v["path"] for v in variants],
        study.out_dir,
        postprocess=task.tail_path if task is not None else None,  # body + float tail, chained
    )
    result["devices"] = records
    by_key = {(r["device"], r["model"]): r for r in records}
    for v in variants:
        file = Path(v["path"]).name
        v["devices"] = {
            d: entry(by_key[(d, file)]) for d in _device_names(study) if (d, file) in by_key
        }
    for d in _device_names(study):
        mine = [r for r in records if r["device"] == d and "error" in r]
        unsupported = [r for r in mine if r.get("kind") == "unsupported"]
        if unsupported:
            study.warnings.append(
                f"device {d}: its runtime cannot load {len(unsupported)} variant(s) "
                f"({', '.join(r['model'] for r in unsupported)}), which need a newer TFLite "
                f"runtime and are not recommended for it: {_tflite_words(unsupported[0])}"
            )
        failed = [r for r in mine if r.get("kind") != "unsupported"]
        if failed:
            first = failed[0]
            result["errors"].append(
                {
                    "name": f"device {d}",
                    "error": f"{len(failed)} of {len(variants)} variants failed: "
                    f"{first.get('kind', 'error')}: {str(first['error']).splitlines()[0]}",
                }
            )


def _tflite_words(record: dict) -> str:
    """The runtime's own sentence (which op, which version) from a load failure."""
    error = str(record["error"]).splitlines()[0]
    return error[error.find(fleet.UNSUPPORTED_OP) :]


def _device_names(study: Study) -> list[str]:
    """The devices' record names (an inventory name, or the user@host:port given)."""
    cfg = study.config.bench
    return [
        inventory.resolve(n, cfg.inventory, cfg.remote_python or None).name
        for n in names(study.config)
    ]


def on_device(variant: dict, device: str) -> dict:
    """The variant's entry for `device` (see `entry`); {} when it was not sent there."""
    return (variant.get("devices") or {}).get(device) or {}


def device_p50(variant: dict, device: str) -> float | None:
    """The variant's p50 on `device`; None when it did not run there."""
    return on_device(variant, device).get("p50")


def latency_key(study: Study, variants: list[dict]) -> tuple[str | None, str]:
    """(the device whose p50 ranks the variants, the sentence saying what ranks them). The
    first device named is the target; without one, or when it measured nothing, the host's
    CPU latency ranks them, and the report says so."""
    for d in _device_names(study)[:1]:
        if any(device_p50(v, d) is not None for v in variants):
            return d, f"ranked by p50 latency on the target device `{d}`"
        return None, (
            f"ranked by host CPU p50 latency: the target device `{d}` measured no latency, "
            "so this is not the target's ranking"
        )
    return None, (
        "ranked by host CPU p50 latency (ai-edge-litert on this machine), not the target "
        "device's: name one with --device to rank by its latency"
    )
