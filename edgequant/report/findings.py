"""The report's sections on how the variants came to be and what went wrong: the training run,
the calibration and evaluation data, the recovery ladder's trials, the --fix rewrite, diagnosis
and QAT, warnings and errors, and the provenance (manifest.json). Each returns [] when its part
of deploy.json is absent, so the writer lays them out without asking which stages ran.
"""

from __future__ import annotations


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
