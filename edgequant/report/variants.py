"""The report's per-variant numbers: the variants table (accuracy, fidelity, budget, Edge TPU
ops, host and target-device latency), every host latency run, the devices beside the host, SQNR
per output, the Edge TPU mapping of each uint8 variant and the recommended variant's per-class
accuracy. A number that was not measured prints as n/a (or blank), never as an error.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.bench import compare


def _f(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _pct(value) -> str:
    return _f(None if value is None else 100 * value, ".2f")


def target_device(result: dict) -> str | None:
    """The first device any variant was measured on (the target: it ranks the variants)."""
    for v in result["variants"]:
        if v.get("devices"):
            return next(iter(v["devices"]))
    return None


def variants_table(result: dict) -> list[str]:
    labelled = result["evaluation"]["labels"]
    device = target_device(result)
    head = "| variant | target | weights | activations | I/O | size KB |"
    rule = "|---|---|---|---|---|---:|"
    if labelled:
        head += " top-1 % | vs float pp | top-5 % |"
        rule += "---:|---:|---:|"
    head += " agreement % | worst SQNR dB | in budget | Edge TPU ops | host p50 ms |"
    rule += "---:|---:|---|---:|---:|"
    if device:
        head += f" {device} p50 ms |"
        rule += "---:|"
    lines = [head, rule]
    fm = result["float"]["metrics"]
    if labelled:
        lines.append(
            f"| float | | float32 | float32 | | | {_pct(fm.get('top1'))} | 0.00 "
            f"| {_pct(fm.get('top5'))} | 100.00 | | | | |" + (" |" if device else "")
        )
    for v in result["variants"]:
        m = v.get("metrics", {})
        sqnr = [s for s in (m.get("sqnr_db") or {}).values() if s is not None]
        worst = min(sqnr) if sqnr else None
        row = (
            f"| {'**' + v['name'] + '**' if v['name'] == result['recommended'] else v['name']} "
            f"| {v['target']} | {v['weights']} | {v['activations']} "
            f"| {v['input_dtype']}/{v['output_dtype']} | {v['size_bytes'] / 1024:.1f} |"
        )
        if labelled:
            top1, ftop1 = m.get("top1"), fm.get("top1")
            delta = None if top1 is None or ftop1 is None else 100 * (top1 - ftop1)
            row += f" {_pct(top1)} | {_f(delta, '+.2f')} | {_pct(m.get('top5'))} |"
        e = v.get("edgetpu")
        mapped = f"{e['mapped']}/{e['total']}" if e else ""
        lat = v.get("latency_ms") or {}
        row += (
            f" {_pct(m.get('agreement'))} | {_f(worst, '.1f', 'exact' if sqnr == [] and m else 'n/a')} "
            f"| {'yes' if v.get('within_budget') else 'no'} "
            f"| {mapped} | {_f(lat.get('p50'), '.3f', '')} |"
        )
        if device:
            d = (v.get("devices") or {}).get(device) or {}
            missing = (d.get("emulated") or "failed") if d else ""
            row += f" {_f(d.get('p50'), '.3f', missing)} |"
        lines.append(row)
    return lines


def latency_section(result: dict) -> list[str]:
    """Every host run (each configured thread count), warm-up excluded."""
    runs = [(v["name"], r) for v in result["variants"] for r in v.get("latency_runs", [])]
    if not runs:
        return []
    lines = [
        "## Host latency",
        "",
        "| variant | threads | p50 ms | p90 ms | p99 ms | runs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in runs:
        s = r["latency_ms"]
        lines.append(
            f"| {name} | {r['threads']} | {s['p50']:.3f} | {s['p90']:.3f} | {s['p99']:.3f} | "
            f"{s['n']} |"
        )
    env = result.get("host") or {}
    runtime = next((r.get("runtime") for _, r in runs if r.get("runtime")), "?")
    version = next((r.get("runtime_version") for _, r in runs if r.get("runtime")), "")
    where = f"{env.get('cpu_model', 'this host')}, {env.get('cores', '?')} cores; " if env else ""
    lines += [
        "",
        f"Host: {where}runtime {runtime} {version}, each model in a fresh process. Warm-up "
        "runs excluded; percentiles are nearest-rank over all measured invokes.",
        "",
    ]
    return lines


def devices_section(result: dict) -> list[str]:
    """Device latencies beside the host's (result["devices"]: the fleet's records, as the
    deployment and the study's device stage both write them)."""
    records = result.get("devices") or []
    if not records:
        return []
    host = {
        Path(v["path"]).name: (v.get("latency_ms") or {}).get("p50") for v in result["variants"]
    }
    lines = [
        "## Devices",
        "",
        "| device | variant | runtime | p50 ms | host p50 ms (LiteRT) | device / host | "
        "parity vs host (LSB) | status |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in records:
        if r.get("error"):
            lines.append(
                f"| {r['device']} | {r['model']} | | {r.get('kind')}: {r['error'][:70]} | | | | "
                "failed |"
            )
            continue
        runtime = f"{r['runtime']} {r['runtime_version']}"
        parity = r.get("parity") or {}
        lsb = _f(parity.get("max_lsb_diff"), "g", "")
        if not r.get("latency_ms"):  # an emulated board: a functional check, never a latency
            lines.append(
                f"| {r['device']} | {r['model']} | {runtime} | "
                f"emulated: functional check, not a latency | | | {lsb} | {compare.status(r)} |"
            )
            continue
        p50, h = r["latency_ms"]["p50"], host.get(r["model"])
        ratio = f"{p50 / h:.1f}x" if h else ""
        lines.append(
            f"| {r['device']} | {r['model']} | {runtime} | {p50:.3f} | {_f(h, '.3f')} | "
            f"{ratio} | {lsb} | {compare.status(r)} |"
        )
    lines += [
        "",
        "The host runs ai-edge-litert (XNNPACK); boards run tflite-runtime, which is often "
        "several times slower on int8 models: compare like with like. Parity is the largest "
        "difference of the device's outputs from the host's on the same seeded inputs.",
        "",
    ]
    return lines


def sqnr_table(result: dict) -> list[str]:
    outputs = [o["name"] for o in result["model"]["outputs"]]
    lines = [
        "| variant | " + " | ".join(f"{o} SQNR dB / cosine" for o in outputs) + " |",
        "|---|" + "---:|" * len(outputs),
    ]
    for v in result["variants"]:
        m = v.get("metrics", {})
        cells = []
        for o in outputs:
            s = (m.get("sqnr_db") or {}).get(o)
            c = (m.get("cosine") or {}).get(o)
            cells.append(f"{_f(s, '.1f', 'exact')} / {_f(c, '.4f')}")
        lines.append(f"| {v['name']} | " + " | ".join(cells) + " |")
    return lines


def edgetpu_section(result: dict) -> list[str]:
    """Edge TPU mapping of the uint8 variants: gate, predicted mapping, compile status, advice."""
    rows = [v for v in result["variants"] if v.get("edgetpu")]
    if not rows:
        return []
    lines = [
        "## Edge TPU",
        "",
        "| variant | gate | ops on Edge TPU (predicted) | CPU ops | compile |",
        "|---|---|---:|---|---|",
    ]
    for v in rows:
        e = v["edgetpu"]
        gate = "pass" if e["gate"]["passed"] else f"{len(e['gate']['violations'])} violation(s)"
        cpu = ", ".join(e["cpu_ops"]) or "none"
        lines.append(
            f"| {v['name']} | {gate} | {e['mapped_count']}/{e['op_count']} | {cpu} | "
            f"{e['compile_status']} |"
        )
    lines.append("")
    for v in rows:
        e = v["edgetpu"]
        lines.append(f"- **{v['name']}**: {e['advice']}")
        if e["compile_status"] != "compiled":
            lines.append(f"  Compile: {e['compile_reason']}")
        if "comparison" in e:
            c = e["comparison"]
            lines.append(
                "  The compiler's real mapping matches the prediction."
                if c["matches"]
                else f"  The compiler differs from the prediction: {c}"
            )
    lines.append("")
    return lines


def per_class_section(result: dict) -> list[str]:
    best = next((v for v in result["variants"] if v["name"] == result["recommended"]), None)
    per_class = (best or {}).get("metrics", {}).get("per_class")
    if not per_class:
        return []
    return [
        "## Per-class accuracy of the recommended variant",
        "",
        "| class | accuracy % |",
        "|---|---:|",
        *(f"| {k} | {100 * a:.2f} |" for k, a in per_class.items()),
        "",
    ]
