"""The diagnosis stage: per-layer int8 error and mixed-precision variants (config.diagnose).

Mixed precision keeps the k worst layers in float and is measured like every other variant. It
is for CPU targets only: the Edge TPU runs full-integer models, so these variants (float I/O,
float ops) are never handed to the Edge TPU checks, and the report says so. Whether the
calibration set is large enough and distributed like the evaluation data is the flow's own
check (flow/prepare.py, flow/bundle.py), for every run.
"""

from __future__ import annotations

import logging

from edgequant.diagnose import layers
from edgequant.errors import UserError
from edgequant.flow import variants
from edgequant.flow.study import Study
from edgequant.quantize import recipes

log = logging.getLogger(__name__)
EDGETPU_NOTE = (
    "Mixed-precision variants keep float ops: they run on CPUs only. Edge TPU targets must "
    "stay full-integer; use QAT (qat_uint8) to recover accuracy there."
)


def diagnose_stage(study: Study, result: dict) -> list[dict]:
    """Ranks the layers by int8 error on validation data, writes layer_errors.csv/.png and
    builds one `mixed_k<k>` variant per configured k."""
    cfg = study.config.get("diagnose")
    if cfg is None or not cfg.enabled:
        return []
    try:
        debug_x, _ = study.validation.subset(cfg.debug_samples, study.config.seed).arrays()
        errors = layers.layer_errors(
            study.model, study.samples, debug_x, study.config.quantize.weights
        )
    except (UserError, ValueError, RuntimeError) as e:
        result["errors"].append({"name": "diagnose", "error": str(e).splitlines()[0]})
        return []
    layers.write_csv(errors, study.out_dir / "layer_errors.csv")
    layers.plot(errors, study.out_dir / "layer_errors.png")
    result["diagnosis"] = {
        "worst_layers": [e.to_dict() for e in errors[:10]],
        "summary": layers.summary_sentence(errors),
        "edgetpu_note": EDGETPU_NOTE,
    }
    q = study.config.quantize
    made = []
    for k in cfg.denylist_k:
        names = tuple(e.tensor_name for e in errors[:k])
        c = variants.Candidate(
            f"mixed_k{k}",
            recipes.get("int8_fallback", q.weights),
            step="diagnose",
            denylist=names,
        )
        try:
            made.append(variants.build(study, c))
        except (UserError, ValueError, RuntimeError) as e:
            result["errors"].append({"name": c.name, "error": str(e).splitlines()[0]})
    return made
