"""The recovery ladder: the one accuracy search, for a user's model and for the study's own.

When the plain full-integer variant misses the budget (config.budget: at most max_drop_pp
top-1 points below float with labels, else min_sqnr_db on every output), the ladder tries
rungs cheapest first, as quantization guides advise, until one meets the budget on the
VALIDATION data (the evaluation data only reports) or the ladder is exhausted:

    more calibration data -> the other weight granularity -> (CPU) 16-bit activations
      -> (CPU) the k worst layers kept in float -> QAT on the labelled training data

Recovery starts from what exists. When full-integer conversion is impossible (ops with no
integer kernel: the converter names them, `convert.FullIntegerBlocked`), the result names
the blocking ops and the layers they come from, and on a CPU target the ladder starts from the
best variant that converts: int8 with the converter's float fallback, then the AI Edge
Quantizer's int8 and int16-activation recipes (which leave unsupported ops float), then the
worst layers in float. Every trial is recorded in result["recovery"] with its per-output SQNR.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from edgequant.errors import UserError
from edgequant.flow import variants
from edgequant.flow.measure import measure, within_budget
from edgequant.flow.study import Study
from edgequant.flow.variants import Candidate
from edgequant.quantize import convert, recipes

log = logging.getLogger(__name__)
FAILURES = (UserError, ValueError, RuntimeError)


def recovery_stage(study: Study, result: dict) -> list[dict]:
    """The flow's recovery stage: the ladder, when the plain full-integer variant misses the
    budget or cannot be made at all."""
    trials = result.setdefault("recovery", [])
    if not study.config.recovery.enabled or study.model.format == "tflite":
        return []
    mode = "uint8" if study.config.target == "edgetpu" else "int8"
    plain = next(
        (v for v in result["variants"] if v["name"] == mode and v["step"] == "plain"), None
    )
    float_path = variants.float_path(study)
    if plain is not None:
        m = measure(study, [plain], study.validation, float_path)
        ok, why = within_budget(study, m[plain["name"]], m["float"])
        trials.append(_trial("plain", plain, m[plain["name"]], ok, why))
        if ok:
            return []
        return climb(study, rungs(study, mode, blocked=False), float_path, trials, result, mode)
    blocked = blocking_ops(study, mode)
    if not blocked:
        return []  # the plain variant was not asked for, or failed for another reason
    result["blocking_ops"] = blocked
    trials.append(
        {
            "step": "plain",
            "name": mode,
            "error": "full-integer conversion is impossible: "
            + ", ".join(f"{o['op']} (layer {o['layer'] or o['tensor']})" for o in blocked),
        }
    )
    if study.config.target == "edgetpu":
        trials.append(
            {
                "step": "fallback",
                "name": "int8_fallback",
                "skipped": "the Edge TPU runs full-integer models only: replace or remove the "
                "blocking ops (--fix rewrites some), or target cpu",
            }
        )
        return []
    return climb(study, rungs(study, mode, blocked=True), float_path, trials, result, mode)


def blocking_ops(study: Study, mode: str) -> list[dict]:
    """The ops that keep `mode` (a full-integer recipe) from converting, with their layers."""
    q = study.config.quantize
    try:
        convert.convert(
            study.model, recipes.get(mode, q.weights, q.calibration_size), study.samples
        )
    except convert.FullIntegerBlocked as e:
        return e.ops
    except FAILURES:
        return []
    return []


def rungs(study: Study, mode: str, blocked: bool) -> list[Candidate]:
    """The rungs after the plain variant, cheapest first. A blocked model starts from the
    converter's float fallback (int8_fallback) instead of the full-integer `mode`."""
    cfg = study.config.recovery
    q = study.config.quantize
    n = len(next(iter(study.samples.values())))
    big = min(cfg.large_calibration_size, len(study.calibration))
    other = "per_tensor" if q.weights == "per_channel" else "per_channel"
    base = "int8_fallback" if blocked else mode
    out = []
    if blocked:
        out.append(Candidate(base, recipes.get(base, q.weights, n), step="fallback"))
    if big > n:
        out.append(
            Candidate(f"{base}_cal{big}", recipes.get(base, q.weights, big), samples=big,
                      step="calibration")
        )  # fmt: skip
    r = recipes.get(base, other, big)
    out.append(Candidate(f"{r.name}_cal{big}", r, samples=big, step="granularity"))
    if study.config.target != "cpu":
        return out
    one_input = len(study.model.inputs) == 1
    if blocked and one_input:  # the AI Edge Quantizer leaves ops without a kernel float
        for name, step in (("static_wi8_ai8", "aeq int8"), ("static_wi8_ai16", "aeq int16")):
            out.append(Candidate(f"aeq_{name}", None, name, step=step))
    elif not blocked:
        r = recipes.get("int16x8", q.weights, n)
        out.append(Candidate(r.name, r, step="16-bit activations"))
    if one_input:
        for k in cfg.denylist_k:
            out.append(
                Candidate(f"mixed_k{k}", recipes.get("int8_fallback", q.weights),
                          step=f"mixed precision k={k}", worst_k=k)
            )  # fmt: skip
    return out


def _layers_by_error(study: Study) -> list[str]:
    """The model's layers, worst int8 error first (one QuantizationDebugger run)."""
    from edgequant.diagnose import layers

    val, _ = study.validation.subset(32, study.config.seed).arrays()
    errors = layers.layer_errors(study.model, study.samples, val, study.config.quantize.weights)
    return [e.tensor_name for e in errors]


def _trial(step: str, v: dict, m: dict, ok: bool, why: str) -> dict:
    return {
        "step": step,
        "name": v["name"],
        "activations": v["activations"],
        "meets_budget": ok,
        "on_validation": why,
        "sqnr_db": m.get("sqnr_db", {}),
        **({"top1": m["top1"]} if "top1" in m else {}),
    }


def climb(
    study: Study, ladder: list[Candidate], float_path: Path, trials: list, result: dict, mode: str
) -> list[dict]:
    """Builds and judges each rung on the validation data until one meets the budget; a rung
    a stage already built (same name) is judged, not rebuilt. Returns the new variants."""
    existing = {v["name"]: v for v in result["variants"]}
    built: list[dict] = []
    float_val = None
    ranking: list[str] | None = None  # computed once, when the first mixed rung is tried
    for c in ladder:
        try:
            v = existing.get(c.name)
            if v is None:
                if c.worst_k:
                    ranking = _layers_by_error(study) if ranking is None else ranking
                    c = dataclasses.replace(c, denylist=tuple(ranking[: c.worst_k]))
                v = variants.build(study, c)
                built.append(v)
        except FAILURES as e:
            trials.append({"step": c.step, "name": c.name, "error": str(e).splitlines()[0]})
            continue
        m = measure(study, [v], study.validation, float_path)
        float_val = float_val or m["float"]
        ok, why = within_budget(study, m[v["name"]], float_val)
        trials.append(_trial(c.step, v, m[v["name"]], ok, why))
        log.info("recovery %s: %s (%s)", c.name, why, "meets the budget" if ok else "misses")
        if ok:
            return built
    if "blocking_ops" in result:
        trials.append(
            {"step": "qat", "name": "qat", "skipped": "QAT cannot give the blocking ops kernels"}
        )
        return built
    return built + qat_rung(study, float_path, trials, result, mode)


def qat_rung(study: Study, float_path: Path, trials: list, result: dict, mode: str) -> list[dict]:
    """The last rung: the one QAT (train/qat_stage.py) with config.recovery's epochs."""
    from edgequant.train import qat_stage

    cfg = study.config.recovery
    try:
        reason = qat_stage.why_not(study) or (None if cfg.qat_epochs else "recovery.qat_epochs=0")
        if reason:
            trials.append({"step": "qat", "name": "qat", "skipped": reason})
            return []
        v = next((v for v in result["variants"] if v["name"] == f"qat_{mode}"), None)
        made = []
        if v is None:
            tuned = qat_stage.fine_tune(
                study, cfg.qat_epochs, cfg.qat_learning_rate, "recovery_qat",
                max_samples=cfg.qat_samples,
            )  # fmt: skip
            v = qat_stage.build(study, tuned, mode, "qat")
            made.append(v)
    except FAILURES as e:
        trials.append({"step": "qat", "name": f"qat_{mode}", "error": str(e).splitlines()[0]})
        return []
    m = measure(study, [v], study.validation, float_path)
    ok, why = within_budget(study, m[v["name"]], m["float"])
    trials.append(_trial("qat", v, m[v["name"]], ok, why))
    return made
