"""report.md of a deployment: the recommendation first, then every variant, then the evidence
(data statistics, per-output fidelity, recovery trials, Edge TPU mapping, warnings)."""

from __future__ import annotations

from pathlib import Path


def _f(value, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _pct(value) -> str:
    return _f(None if value is None else 100 * value, ".2f")


def variants_table(result: dict) -> list[str]:
    labelled = result["evaluation"]["labels"]
    head = "| variant | target | weights | activations | I/O | size KB |"
    rule = "|---|---|---|---|---|---:|"
    if labelled:
        head += " top-1 % | top-5 % |"
        rule += "---:|---:|"
    head += " agreement % | worst SQNR dB | in budget | Edge TPU ops | p50 ms |"
    rule += "---:|---:|---|---:|---:|"
    lines = [head, rule]
    fm = result["float"]["metrics"]
    if labelled:
        lines.append(
            f"| float | | float32 | float32 | | | {_pct(fm.get('top1'))} | {_pct(fm.get('top5'))} "
            "| 100.00 | | | | |"
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
            row += f" {_pct(m.get('top1'))} | {_pct(m.get('top5'))} |"
        e = v.get("edgetpu")
        mapped = f"{e['mapped']}/{e['total']}" if e else ""
        lat = v.get("latency_ms") or {}
        row += (
            f" {_pct(m.get('agreement'))} | {_f(worst, '.1f', 'exact' if sqnr == [] and m else 'n/a')} "
            f"| {'yes' if v.get('within_budget') else 'no'} "
            f"| {mapped} | {_f(lat.get('p50'), '.3f', '')} |"
        )
        lines.append(row)
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


def stats_table(result: dict) -> list[str]:
    lines = [
        "| input | data | n | mean | std | min | max | distance |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in result["data_stats"].items():
        for which in ("calibration", "evaluation"):
            d = s[which]
            dist = f"{s['distance']:.3f}{' (mismatch)' if s['mismatch'] else ''}"
            lines.append(
                f"| {name} | {which} | {d['n']} | {d['mean']:.4g} | {d['std']:.4g} | "
                f"{d['min']:.4g} | {d['max']:.4g} | {dist if which == 'evaluation' else ''} |"
            )
    return lines


def write(result: dict, out_dir: str | Path) -> Path:
    model = result["model"]
    cal, ev = result["calibration"], result["evaluation"]
    rec = result["recommended"]
    io = ", ".join(f"`{t['name']}` {t['shape']}" for t in model["inputs"])
    outs = ", ".join(f"`{t['name']}` {t['shape']}" for t in model["outputs"])
    parts = [
        "# edgequant deployment report",
        "",
        f"Model `{model['path']}` ({model['format']}, signature `{model['signature']}`): "
        f"inputs {io}; outputs {outs}. Target: **{result['target']}**.",
        "",
        f"**Recommended: `{rec}`**" if rec else "**No variant meets the budget** (see Recovery).",
        "",
        f"Calibration: {cal['n']} samples from `{cal['source']}`. Evaluation: {ev['n']} samples "
        f"from `{ev['source']}`"
        + (
            " (a seeded hold-out of the data, never used for calibration)"
            if ev.get("held_out_from_data")
            else ""
        )
        + (", labelled." if ev["labels"] else ", unlabelled: fidelity to the float model only."),
        "",
        "## Variants",
        "",
        *variants_table(result),
        "",
        "Agreement is top-1 agreement with the float model; SQNR compares each output with the "
        "float model's on the same inputs (higher is better, 'exact' means identical).",
        "",
        "## Fidelity per output",
        "",
        *sqnr_table(result),
        "",
        "## Data",
        "",
        *stats_table(result),
        "",
    ]
    if result.get("preprocessing"):
        p = result["preprocessing"]
        mapping = (
            f"input_range {p['input_range']}"
            if p.get("input_range")
            else f"mean {p['mean']} std {p['std']}"
        )
        parts += [
            f"Preprocessing (`preprocessing.json`, also embedded in every .tflite): {p['color']}, "
            f"resize to {p['size']} ({p['fit']}, {p['method']}), pixels 0..255 -> {mapping} "
            f"(chosen by: {p['source']}).",
            "",
        ]
    if result.get("recovery"):
        parts += ["## Recovery", "", "Judged on validation data held apart from calibration.", ""]
        for t in result["recovery"]:
            detail = t.get("on_validation") or t.get("error") or t.get("skipped", "")
            verdict = (
                "meets the budget"
                if t.get("meets_budget")
                else "skipped"
                if "skipped" in t
                else "failed"
                if "error" in t
                else "misses"
            )
            parts.append(f"- {t['step']} `{t['name']}`: {verdict}: {detail}")
        parts.append("")
    if result.get("repair"):
        parts += [
            "## Edge TPU repair (--fix)",
            "",
            "The variants were converted from the rewritten model:",
            "",
            *(f"- {ln.strip()}" for ln in result["repair"]["summary"].splitlines() if ln.strip()),
            "",
        ]
    tpu = [v for v in result["variants"] if v.get("edgetpu")]
    if tpu:
        parts += ["## Edge TPU", ""]
        for v in tpu:
            e = v["edgetpu"]
            parts.append(
                f"- **{v['name']}**: gate {v['gate']}; {e['mapped']}/{e['total']} ops predicted "
                f"on the Edge TPU; compile: {e.get('compile_status')}. {e.get('advice', '')}"
            )
            if e.get("compile_status") not in ("compiled", None):
                parts.append(f"  {e.get('compile_reason', '')}")
        parts.append("")
    best = next((v for v in result["variants"] if v["name"] == rec), None)
    per_class = (best or {}).get("metrics", {}).get("per_class")
    if per_class:
        parts += ["## Per-class accuracy of the recommended variant", ""]
        parts += ["| class | accuracy % |", "|---|---:|"]
        parts += [f"| {k} | {100 * a:.2f} |" for k, a in per_class.items()]
        parts.append("")
    notes = list(result.get("warnings", [])) + [
        f"`{e['name']}`: {e['error']}" for e in result.get("errors", [])
    ]
    if notes:
        parts += ["## Warnings and errors", "", *(f"- {n}" for n in notes), ""]
    path = Path(out_dir) / "report.md"
    path.write_text("\n".join(parts))
    return path
