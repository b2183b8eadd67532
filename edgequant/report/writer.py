"""report.md of a bundle (deploy.json): the recommendation first, then every variant, then the
evidence (plots, latency, devices, fidelity, data, recovery, Edge TPU, diagnosis, warnings,
provenance). THE report writer: a deployment of the user's model and the MNIST study (a zoo
model trained, then deployed) both end here; report.html is rendered from this file.

A section whose data is absent is left out, so one writer serves a bundle with or without
labels, devices, a training run or its QAT/diagnosis/search sections.
"""

from __future__ import annotations

from pathlib import Path

from edgequant import atomic
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


def data_section(result: dict) -> list[str]:
    lines = [
        "## Data",
        "",
        "| input | data | n | mean | std | min | max | distance |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in (result.get("data_stats") or {}).items():
        for which in ("calibration", "evaluation"):
            d = s[which]
            dist = f"{s['distance']:.3f}{' (mismatch)' if s['mismatch'] else ''}"
            lines.append(
                f"| {name} | {which} | {d['n']} | {d['mean']:.4g} | {d['std']:.4g} | "
                f"{d['min']:.4g} | {d['max']:.4g} | {dist if which == 'evaluation' else ''} |"
            )
    lines.append("")
    p = result.get("preprocessing")
    if p:
        mapping = (
            f"input_range {p['input_range']}"
            if p.get("input_range")
            else f"mean {p['mean']} std {p['std']}"
        )
        lines += [
            f"Preprocessing (`preprocessing.json`, also embedded in every .tflite): {p['color']}, "
            f"resize to {p['size']} ({p['fit']}, {p['method']}), pixels 0..255 -> {mapping} "
            f"(chosen by: {p['source']}).",
            "",
        ]
    return lines


def recovery_section(result: dict) -> list[str]:
    if not result.get("recovery"):
        return []
    lines = ["## Recovery", "", "Judged on validation data held apart from calibration.", ""]
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
        lines.append(f"- {t['step']} `{t['name']}`: {verdict}: {detail}")
    return [*lines, ""]


def repair_section(result: dict) -> list[str]:
    if not result.get("repair"):
        return []
    return [
        "## Edge TPU repair (--fix)",
        "",
        "The variants were converted from the rewritten model:",
        "",
        *(f"- {ln.strip()}" for ln in result["repair"]["summary"].splitlines() if ln.strip()),
        "",
    ]


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


def diagnosis_section(result: dict) -> list[str]:
    """Calibration warnings, per-layer error, QAT parity and the n-bit label, the search
    (the sections the study's stages add: result["diagnosis"], ["qat"]; the recovery ladder's
    trials have their own section)."""
    lines = []
    for w in result.get("calibration_warnings", []):
        lines.append(f"- calibration warning: {w}")
    d = result.get("diagnosis")
    if d:
        lines += [
            "",
            "### Per-layer quantization error",
            "",
            d["summary"],
            "",
            "![per-layer error](layer_errors.png)",
            "",
            d["edgetpu_note"],
            "",
        ]
    q = result.get("qat")
    if q:
        lines += ["", "### Quantization-aware training", "", *qat_lines(q), ""]
        if q.get("nbit"):
            n = q["nbit"]
            lines.append(
                f"Experimental {n['weight_bits']}-bit weights / {n['activation_bits']}-bit "
                f"activations: {100 * n['keras_accuracy']:.2f}% (simulated Keras model, not "
                "deployable to TFLite)."
            )
            lines.append("")
    return ["## Diagnosis", "", *lines] if lines else []


def qat_lines(q: dict) -> list[str]:
    """The QAT run: route, cost, targets, and per QAT variant its Keras-vs-TFLite parity
    (agreement, worst-output SQNR): the fake-quant simulation must predict the integer model."""
    how = "distillation from the float model's outputs" if q.get("distilled") else "labels"
    acc = q.get("keras_accuracy")
    cost = (
        f": {q['epochs']} epoch(s) in {q['seconds']:.1f} s" if q.get("seconds") is not None else ""
    )
    lines = [
        f"{q.get('route', 'tfmot')} QAT on {how}{cost}"
        + (f"; QAT Keras model test accuracy {100 * acc:.2f}%." if acc is not None else "."),
        "",
        "Keras-vs-TFLite parity on the evaluation data (the fake-quant model must predict the "
        "integer one):",
    ]
    for name, agreement in q["parity"].items():
        sqnr = [v for v in (q.get("sqnr_db") or {}).get(name, {}).values() if v is not None]
        parts = [f"{100 * agreement:.2f}% top-1 agreement"] if agreement is not None else []
        parts += [f"worst-output SQNR {min(sqnr):.1f} dB"] if sqnr else []
        lines.append(f"- {name}: {', '.join(parts) or 'not comparable'}")
    return lines


def training_section(result: dict) -> list[str]:
    """What a training run produced (the study trains a zoo model, then deploys it)."""
    t = result.get("trained")
    if not t:
        return []
    return [
        "## Training",
        "",
        *(f"- {k}: {v}" for k, v in t.items() if not isinstance(v, dict | list)),
        "",
    ]


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


def notes_section(result: dict) -> list[str]:
    notes = list(result.get("warnings", [])) + [
        f"`{e['name']}`: {e['error']}" for e in result.get("errors", [])
    ]
    return ["## Warnings and errors", "", *(f"- {n}" for n in notes), ""] if notes else []


def provenance_section(manifest: dict | None) -> list[str]:
    if not manifest:
        return []
    versions = manifest.get("versions", {})
    git = manifest.get("git") or {}
    lines = ["## Provenance", ""]
    for k, v in (manifest.get("dataset") or {}).items():
        lines.append(f"- {k}: `{v}`" if isinstance(v, str) else f"- {k}: {v}")
    lines += [
        f"- seed: {manifest.get('seed')}",
        f"- code: git {git.get('commit', 'unknown')}"
        + (" (with local changes)" if git.get("dirty") is True else ""),
        "- versions: " + ", ".join(f"{k} {val}" for k, val in versions.items()),
        "- every artifact's sha256 is in `manifest.json`; each `<name>.tflite` has its "
        "`<name>.recipe.json`.",
        "",
    ]
    return lines


def write(result: dict, out_dir: str | Path, manifest: dict | None = None) -> Path:
    """out_dir/report.md from deploy.json's content (and manifest.json's, for provenance)."""
    from edgequant.report import tasks as report_tasks

    out_dir = Path(out_dir)
    model = result["model"]
    cal, ev = result["calibration"], result["evaluation"]
    rec = result["recommended"]
    io = ", ".join(f"`{t['name']}` {t['shape']}" for t in model["inputs"])
    outs = ", ".join(f"`{t['name']}` {t['shape']}" for t in model["outputs"])
    ranked = result.get("ranked_by")
    parts = [
        "# edgequant report",
        "",
        f"Model `{model['path']}` ({model['format']}, signature `{model['signature']}`): "
        f"inputs {io}; outputs {outs}. Target: **{result['target']}**.",
        "",
        f"**Recommended: `{rec}`**" if rec else "**No variant meets the budget** (see Recovery).",
        "",
        *(f"- `{u['name']}`: {u['reason']}" for u in result.get("unmet", [])),
        *([""] if result.get("unmet") else []),
        *([f"Variants are {ranked}.", ""] if ranked else []),
        f"Calibration: {cal['n']} samples from `{cal['source']}`. Evaluation: {ev['n']} samples "
        f"from `{ev['source']}`"
        + (
            " (a seeded hold-out of the data, never used for calibration)"
            if ev.get("held_out_from_data")
            else ""
        )
        + (", labelled." if ev["labels"] else ", unlabelled: fidelity to the float model only."),
        "",
        *training_section(result),
        "## Variants",
        "",
        *variants_table(result),
        "",
        "Agreement is top-1 agreement with the float model; SQNR compares each output with the "
        "float model's on the same inputs (higher is better, 'exact' means identical).",
        "",
    ]
    parts += report_tasks.section(result)  # detection / segmentation: mAP or mIoU, latency
    if (out_dir / "tradeoff.png").is_file():
        parts += ["![accuracy vs latency](tradeoff.png)", ""]
    parts += [
        *latency_section(result),
        *devices_section(result),
        "## Fidelity per output",
        "",
        *sqnr_table(result),
        "",
        *data_section(result),
        *recovery_section(result),
        *repair_section(result),
        *edgetpu_section(result),
        *diagnosis_section(result),
        *per_class_section(result),
        *notes_section(result),
        *provenance_section(manifest),
    ]
    path = out_dir / "report.md"
    atomic.write_text(path, "\n".join(parts))
    return path
