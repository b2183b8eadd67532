"""Latency across devices and models: a table, a plot, and pycoral-style reference checks.

A reference CSV (`model,device,p50_ms`) holds known-good numbers per device; a measurement
outside `tolerance` (fraction) of its reference is flagged, which catches a board running at a
low governor, a thermal throttle or a silently missing delegate.
"""

from __future__ import annotations

import csv
from pathlib import Path

from edgequant import atomic


def table(records: list[dict]) -> str:
    lines = [
        "| device | model | runtime | threads | p50 ms | p90 ms | p99 ms | n | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        if "error" in r:
            lines.append(
                f"| {r.get('device', 'host')} | {r.get('model', '?')} | | | | | | | "
                f"{r.get('kind', 'error')}: {r['error'][:80]} |"
            )
            continue
        s = r["latency_ms"]
        lines.append(
            f"| {r.get('device', 'host')} | {r['model']} | {r['runtime']} {r['runtime_version']} | "
            f"{r.get('num_threads') or ''} | {s['p50']:.3f} | {s['p90']:.3f} | {s['p99']:.3f} | "
            f"{s['n']} | ok |"
        )
    return "\n".join(lines)


def check_reference(
    records: list[dict], reference_csv: str | Path, tolerance: float = 0.1
) -> list[dict]:
    """One verdict per measured (model, device) that has a reference row."""
    refs = {}
    with open(reference_csv, newline="") as f:
        for row in csv.DictReader(f):
            refs[(row["model"], row["device"])] = float(row["p50_ms"])
    out = []
    for r in records:
        ref = refs.get((r.get("model"), r.get("device", "host")))
        if ref is None or "error" in r:
            continue
        p50 = r["latency_ms"]["p50"]
        out.append(
            {
                "model": r["model"],
                "device": r.get("device", "host"),
                "p50_ms": p50,
                "reference_ms": ref,
                "ratio": p50 / ref,
                "ok": abs(p50 / ref - 1) <= tolerance,
            }
        )
    return out


def plot(records: list[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if "error" not in r]
    models = sorted({r["model"] for r in ok})
    devices = sorted({f"{r.get('device', 'host')} ({r['runtime']})" for r in ok})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(models) * max(1, len(devices))), 4.5))
    width = 0.8 / max(1, len(devices))
    for j, dev in enumerate(devices):
        vals = []
        for m in models:
            match = [
                r
                for r in ok
                if r["model"] == m and f"{r.get('device', 'host')} ({r['runtime']})" == dev
            ]
            vals.append(match[-1]["latency_ms"]["p50"] if match else 0)
        ax.bar([i + j * width for i in range(len(models))], vals, width, label=dev)
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(models))], models, rotation=15, fontsize=8
    )
    ax.set_yscale("log")
    ax.set_ylabel("p50 latency per invoke [ms] (log scale)")
    ax.set_title("Latency per model and device")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic.target(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)
