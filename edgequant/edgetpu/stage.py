"""The pipeline's Edge TPU stage: every uint8 variant goes through `check.check_and_compile`.

A variant that fails the gate is recorded with the full violation list (and the run reports an
error); without the compiler the variant is marked "not_compiled" and keeps the analyzer's
prediction, so a machine without the x86-64 Debian compiler still gets a useful answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgequant.edgetpu.check import CheckOptions, check_and_compile
from edgequant.edgetpu.compiler import CompileOptions

log = logging.getLogger(__name__)


def is_edgetpu_variant(variant: dict) -> bool:
    """Full-integer with uint8 input and output: the form the Edge TPU stage checks."""
    return variant.get("input_dtype") == "uint8" and variant.get("output_dtype") == "uint8"


def edgetpu_variants(results: dict) -> list[dict]:
    return [v for v in results["variants"] if is_edgetpu_variant(v)]


def options(cfg) -> CheckOptions:
    """The check options a config's `edgetpu` block asks for (0 / "" = the compiler's default)."""
    min_rt = cfg.min_runtime_version or None
    return CheckOptions(CompileOptions(min_runtime_version=min_rt), cfg.compiler or None)


def check_variant(variant: dict, cfg, out_dir: Path) -> dict:
    """The variant's `edgetpu` entry: the same JSON `tools/compile_edgetpu.py --json` prints."""
    return check_and_compile(variant["path"], out_dir, options(cfg)).entries()[0]


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
