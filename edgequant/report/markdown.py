"""report.md of the study's results.json (the training pipeline, edgequant/pipeline.py).

Transitional: THE report writer is report/writer.py over deploy.json; this file only lays out
the study's older results.json with the writer's sections, until the study trains a zoo model
and deploys it through flow.run.execute (then this file goes).
"""

from __future__ import annotations

from pathlib import Path

from edgequant import atomic
from edgequant.report.writer import devices_section, diagnosis_section, edgetpu_section


def _fmt(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def table_rows(results: dict) -> list[dict]:
    """One row per variant with the derived columns (change vs float, speed-up vs fp32)."""
    float_acc = results.get("float", {}).get("accuracy")
    fp32 = next((v for v in results["variants"] if v["name"] == "fp32"), None)
    fp32_p50 = fp32["latency_ms"]["p50"] if fp32 and fp32.get("latency_ms") else None
    rows = []
    for v in results["variants"]:
        p50 = v["latency_ms"]["p50"] if v.get("latency_ms") else None
        acc = v.get("accuracy")
        rows.append(
            {
                "variant": v["name"],
                "size_kb": v["size_bytes"] / 1024,
                "accuracy_pct": None if acc is None else 100 * acc,
                "delta_pp": None if acc is None or float_acc is None else 100 * (acc - float_acc),
                "p50_ms": p50,
                "speedup": None if not p50 or not fp32_p50 else fp32_p50 / p50,
                "io": f"{v['input_dtype']}/{v['output_dtype']}",
            }
        )
    return rows


def summary_table(results: dict) -> str:
    """The comparison as a Markdown table (also printed on stdout at the end of a run)."""
    threads = next(
        (v["latency_ms"].get("threads") for v in results["variants"] if v.get("latency_ms")), None
    )
    lines = [
        f"| variant | I/O | size KB | accuracy % | vs float pp | p50 ms ({threads or '?'} thr) | speed-up vs fp32 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    fa = results.get("float", {}).get("accuracy")
    if fa is not None:
        lines.append(f"| float (Keras) | float32 | | {100 * fa:.2f} | 0.00 | | |")
    for r in table_rows(results):
        lines.append(
            f"| {r['variant']} | {r['io']} | {r['size_kb']:.1f} | {_fmt(r['accuracy_pct'], '.2f')} | "
            f"{_fmt(r['delta_pp'], '+.2f')} | {_fmt(r['p50_ms'], '.3f')} | {_fmt(r['speedup'], '.2f', '')}{'x' if r['speedup'] else ''} |"
        )
    return "\n".join(lines)


def write(results: dict, manifest: dict, workdir: str | Path) -> Path:
    ds = results["dataset"]
    v = manifest["versions"]
    parts = [
        "# edgequant report",
        "",
        f"Model `{results.get('model', '?')}` on {ds['name']} ({ds['source']}); test split of "
        f"{ds['split_sizes']['test']} images, never used for training, calibration or selection.",
        "",
        "## Variants",
        "",
        summary_table(results),
        "",
        "![accuracy vs latency](tradeoff.png)",
        "",
        "## Latency",
        "",
        "| variant | threads | p50 ms | p90 ms | p99 ms | runs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for var in results["variants"]:
        for lat in var.get("latency_runs", []):
            s = lat["latency_ms"]
            parts.append(
                f"| {var['name']} | {lat['threads']} | {s['p50']:.3f} | {s['p90']:.3f} | {s['p99']:.3f} | {s['n']} |"
            )
    env = results.get("host", {})
    parts += [
        "",
        f"Host: {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores; runtime "
        f"{env.get('runtime', '?')} {env.get('runtime_version', '')}. Warm-up runs excluded; "
        "percentiles are nearest-rank over all measured invokes.",
        "",
        *diagnosis_section(results),
        *edgetpu_section(results),
        *devices_section(results),
        *errors_section(results),
        "## Provenance",
        "",
        f"- dataset source: `{ds['source']}`; splits {ds['split_sizes']}",
        f"- seed: {manifest['seed']}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- every artifact's sha256 is in `manifest.json`; each `<name>.tflite` has its `<name>.recipe.json`.",
        "",
    ]
    path = Path(workdir) / "report.md"
    atomic.write_text(path, "\n".join(parts))
    return path


def errors_section(results: dict) -> list[str]:
    if not results.get("errors"):
        return []
    return ["## Errors", "", *(f"- `{e['name']}`: {e['error']}" for e in results["errors"]), ""]
