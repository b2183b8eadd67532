"""The pipeline's Edge TPU stage: every uint8 variant goes gate -> analyzer -> compiler.

A variant that fails the gate is recorded with the full violation list (and the run reports an
error); without the compiler the variant is marked "not_compiled" and keeps the analyzer's
prediction, so a machine without the x86-64 Debian compiler still gets a useful answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgequant.edgetpu.analyzer import analyze
from edgequant.edgetpu.cache import predict_cache
from edgequant.edgetpu.compiled import compare_with_prediction
from edgequant.edgetpu.compiler import CompileOptions, compile_model
from edgequant.edgetpu.gate import check_full_integer

log = logging.getLogger(__name__)


def edgetpu_variants(results: dict) -> list[dict]:
    """Variants in the Edge TPU form: full-integer with uint8 input and output."""
    return [
        v
        for v in results["variants"]
        if v.get("input_dtype") == "uint8" and v.get("output_dtype") == "uint8"
    ]


def check_variant(variant: dict, cfg, out_dir: Path) -> dict:
    path = variant["path"]
    gate = check_full_integer(path, "uint8")
    min_rt = cfg.min_runtime_version or None
    analysis = analyze(path, min_rt)
    entry = {
        "gate": gate.to_dict(),
        "mapped_count": analysis.mapped_count,
        "op_count": len(analysis.ops),
        "cpu_ops": [f"{v.index} {v.custom_code or v.op}" for v in analysis.cpu_ops],
        "first_unmapped": analysis.first_unmapped.to_dict() if analysis.first_unmapped else None,
        "fully_mapped": analysis.fully_mapped,
        "advice": analysis.advice,
        "parameter_cache": predict_cache(path, analysis).to_dict(),
    }
    if not gate.passed:
        entry.update(compile_status="gate_failed", compile_reason=gate.summary())
        return entry
    result = compile_model(
        path, out_dir, cfg.compiler or None, CompileOptions(min_runtime_version=min_rt)
    )
    entry.update(
        compile_status=result.status, compile_reason=result.reason, compile=result.to_dict()
    )
    compiled = [f for f in result.output_files if "_segment_" not in f]
    if result.status == "compiled" and compiled:
        entry["comparison"] = compare_with_prediction(analysis, compiled[0])
    return entry


def edgetpu_stage(study, results: dict) -> None:
    cfg = study.config.get("edgetpu")
    if cfg is None or not cfg.enabled:
        return
    for variant in edgetpu_variants(results):
        entry = check_variant(variant, cfg, Path(study.workdir) / "edgetpu")
        variant["edgetpu"] = entry
        log.info(
            "%s: %s/%s ops predicted on the Edge TPU; compile: %s",
            variant["name"],
            entry["mapped_count"],
            entry["op_count"],
            entry["compile_status"],
        )
        if entry["compile_status"] == "gate_failed":
            results["errors"].append({"name": variant["name"], "error": entry["compile_reason"]})
