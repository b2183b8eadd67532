"""Latency across devices and models: a table, a plot, and pycoral-style reference checks.

A reference CSV (`model,device,p50_ms`) holds known-good numbers per device; a measurement
outside `tolerance` (fraction) of its reference is flagged, which catches a board running at a
low governor, a thermal throttle or a silently missing delegate.

An emulated record (an aarch64 Python under qemu-user) carries no `latency_ms`: every table here
shows its label instead of a number, so an emulator's timing is never read as a board's.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


def is_latency(record: dict) -> bool:
    """A successful measurement on real hardware (not an error, not an emulator's timing, not
    a run that measured nothing: p50 nan from zero invokes is no latency)."""
    stats = record.get("latency_ms")
    if "error" in record or not isinstance(stats, dict):
        return False
    p50 = stats.get("p50")
    return isinstance(p50, int | float) and math.isfinite(p50) and stats.get("n", 1) > 0


def status(record: dict) -> str:
    """ok, or what makes the number suspect: emulation, output parity, oversubscribed threads."""
    notes = []
    stats = record.get("latency_ms")
    if isinstance(stats, dict) and not is_latency(record):
        notes.append(f"NO LATENCY ({stats.get('n', 0)} measured invokes)")
    if record.get("emulated"):
        notes.append(record["emulated"].get("label", "emulated"))
    parity = record.get("parity")
    if parity and not parity.get("ok"):
        notes.append(f"PARITY FAILED ({_lsb(parity)} LSB > {parity.get('bound_lsb'):g})")
    if record.get("golden_check") and not record["golden_check"].get("ok"):
        notes.append("GOLDEN MISMATCH")
    if record.get("threads_over_cores"):
        cores = record.get("environment", {}).get("cores")
        notes.append(f"warning: {record.get('num_threads')} threads > {cores} cores")
    return "; ".join(notes) or "ok"


def _lsb(parity: dict | None) -> str:
    if not parity or parity.get("max_lsb_diff") is None:
        return ""
    return f"{parity['max_lsb_diff']:g}"


def table(records: list[dict]) -> str:
    lines = [
        "| device | model | runtime | threads | p50 ms | p90 ms | p99 ms | n | parity LSB | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        if "error" in r:
            lines.append(
                f"| {r.get('device', 'host')} | {r.get('model', '?')} | | | | | | | | "
                f"{r.get('kind', 'error')}: {r['error'][:80]} |"
            )
            continue
        head = (
            f"| {r.get('device', 'host')} | {r['model']} | {r['runtime']} {r['runtime_version']} | "
            f"{r.get('num_threads') or ''} |"
        )
        if not is_latency(r):  # emulated: the number is not shown at all
            lines.append(f"{head} - | - | - | | {_lsb(r.get('parity'))} | {status(r)} |")
            continue
        s = r["latency_ms"]
        lines.append(
            f"{head} {s['p50']:.3f} | {s['p90']:.3f} | {s['p99']:.3f} | {s['n']} | "
            f"{_lsb(r.get('parity'))} | {status(r)} |"
        )
    return "\n".join(lines)


def runtime_table(records: list[dict]) -> str:
    """One row per (device, model, threads), one p50 column per runtime, and the fastest:
    the table that says what to install on a board."""
    ok = [r for r in records if is_latency(r)]
    runtimes = sorted({f"{r['runtime']} {r['runtime_version']}" for r in ok})
    rows: dict[tuple, dict[str, float]] = {}
    for r in ok:
        row = rows.setdefault((r.get("device", "host"), r["model"], r.get("num_threads")), {})
        row[f"{r['runtime']} {r['runtime_version']}"] = r["latency_ms"]["p50"]
    lines = [
        "| device | model | threads | "
        + " | ".join(f"{rt} p50 ms" for rt in runtimes)
        + " | fastest |",
        "|---|---|---:|" + "---:|" * len(runtimes) + "---|",
    ]
    for (device, model, threads), row in rows.items():
        best = min(row, key=row.get)
        cells = [f"{row[rt]:.3f}" if rt in row else "" for rt in runtimes]
        speedup = max(row.values()) / row[best] if len(row) > 1 else 1.0
        lines.append(
            f"| {device} | {model} | {threads or ''} | "
            + " | ".join(cells)
            + f" | {best}"
            + (f" ({speedup:.1f}x)" if len(row) > 1 else "")
            + " |"
        )
    return "\n".join(lines)


def check_reference(
    records: list[dict], reference_csv: str | Path, tolerance: float = 0.1
) -> list[dict]:
    """One verdict per measured (model, device) that has a reference row."""
    refs = read_reference(reference_csv)
    out = []
    for r in records:
        ref = refs.get((r.get("model"), r.get("device", "host")))
        if ref is None or not is_latency(r):
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


def read_reference(path: str | Path) -> dict[tuple[str, str], float]:
    """{(model, device): p50 ms} of a reference CSV; a bad row is an error naming its line."""
    refs = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"model", "device", "p50_ms"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path}: reference CSV needs the columns model,device,p50_ms; "
                f"missing {', '.join(sorted(missing))}"
            )
        for row in reader:
            try:
                p50 = float(row["p50_ms"])
            except (TypeError, ValueError):
                p50 = float("nan")
            if not math.isfinite(p50) or p50 <= 0:
                raise ValueError(
                    f"{path} line {reader.line_num}: p50_ms must be a positive number of "
                    f"milliseconds, got {row['p50_ms']!r}"
                )
            refs[(row["model"], row["device"])] = p50
    return refs


def plot(records: list[dict], path: str | Path) -> Path:
    from edgequant.report import plots

    plt = plots.pyplot()

    ok = [r for r in records if is_latency(r)]
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
    return plots.save(fig, path)
