"""The pipeline's diagnosis stage: calibration check, per-layer error, mixed-precision variants.

Mixed precision keeps the k worst layers in float and is measured like every other variant. It
is for CPU targets only: the Edge TPU runs full-integer models, so these variants (float I/O,
float ops) are never handed to the Edge TPU stage, and the report says so.
"""

from __future__ import annotations

import logging

from edgequant.data import stats
from edgequant.diagnose import layers
from edgequant.quantize import convert, recipes
from edgequant.study import Artifact

log = logging.getLogger(__name__)
EDGETPU_NOTE = (
    "Mixed-precision variants keep float ops: they run on CPUs only. Edge TPU targets must "
    "stay full-integer; use QAT (qat_uint8) to recover accuracy there."
)


def diagnose_stage(study, results: dict) -> list[Artifact]:
    cfg = study.config.get("diagnose")
    if cfg is None:
        return []
    x_val = study.data.require("val").x
    rep = study.representative[: study.config.quantize.calibration_size]
    warnings = stats.check({"x": rep}, {"x": x_val}, cfg.min_calibration, study.config.seed)
    for w in warnings:
        log.warning("calibration: %s", w)
    results["calibration_warnings"] = warnings
    if not cfg.enabled:
        return []

    rep = study.representative[: study.config.quantize.calibration_size]
    debug_x = x_val[: cfg.debug_samples]
    weights = study.config.quantize.weights
    errors = layers.layer_errors(study.model, rep, debug_x, weights)
    layers.write_csv(errors, study.workdir / "layer_errors.csv")
    layers.plot(errors, study.workdir / "layer_errors.png")
    results["diagnosis"] = {
        "worst_layers": [e.to_dict() for e in errors[:10]],
        "summary": layers.summary_sentence(errors),
        "edgetpu_note": EDGETPU_NOTE,
    }
    made = []
    for k in cfg.denylist_k:
        names = [e.tensor_name for e in errors[:k]]
        content = layers.denylisted_model(study.model, rep, debug_x, names, weights)
        note = f"int8 with the {k} worst layer(s) by per-layer error kept in float"
        recipe = recipes.mixed(names, weights, len(rep), note)
        path = convert.write(content, recipe, study.workdir)
        made.append(Artifact(recipe.name, path, {"recipe": recipe.to_dict(), "target": "cpu-only"}))
    return made
