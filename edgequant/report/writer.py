"""report.md of a bundle (deploy.json): the recommendation first, then every variant, then the
evidence (plots, latency, devices, fidelity, data, recovery, Edge TPU, diagnosis, warnings,
provenance). THE report writer: a deployment of the user's model and the MNIST study (a zoo
model trained, then deployed) both end here; report.html is rendered from this file.

A section whose data is absent is left out, so one writer serves a bundle with or without
labels, devices, a training run or its QAT/diagnosis/search sections. This module lays the
sections out and writes the file: variants.py builds the per-variant numbers, findings.py how
the variants came to be, tasks.py the detection/segmentation metrics.
"""

from __future__ import annotations

from pathlib import Path

from edgequant import atomic
from edgequant.report.findings import (
    data_section,
    diagnosis_section,
    notes_section,
    provenance_section,
    recovery_section,
    repair_section,
    training_section,
)
from edgequant.report.variants import (
    devices_section,
    edgetpu_section,
    latency_section,
    per_class_section,
    sqnr_table,
    variants_table,
)


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
