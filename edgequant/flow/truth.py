"""What a deployment must be true of before any work: a float reference, one set of classes,
a model whose outputs are numbers.

Each of these used to run to the end and say only "no variant meets the budget" (or score
quantized against quantized): an int8 .tflite taken as the float reference, a model with an
integer input fed float data, a float .tflite with no recipe to apply, evaluation class folders
other than calibration's (indices shifted without a word), a model whose weights make NaN.
"""

from __future__ import annotations

import logging

import numpy as np

from edgequant.errors import UserError
from edgequant.flow import devices

log = logging.getLogger(__name__)

FLOAT_DTYPES = ("float32", "float16", "float64")
_QUANTIZED = ("INT8", "UINT8", "INT16", "FLOAT16")
CHECK_SAMPLES = 64  # calibration samples the float model runs on before any conversion


def refuse_non_float_reference(model, config) -> None:
    """The model is the float reference every variant is measured against: it must take float
    inputs and, as a .tflite, hold no quantized tensors; a float .tflite needs an AEQ recipe."""
    for t in model.inputs:
        if str(t.dtype) not in FLOAT_DTYPES:
            raise UserError(
                f"{model.path}: input '{t.name}' is {t.dtype}, but edgequant calibrates and "
                "evaluates with float32 data; give the float model with float32 inputs (an "
                "already quantized model cannot be the float reference)"
            )
    if model.format != "tflite":
        return
    from edgequant.tflite.model import TFLiteModel

    tensors = TFLiteModel.load(model.path).tensors
    quantized = [t for t in tensors if t.dtype in _QUANTIZED and (t.scales or t.dtype == "FLOAT16")]
    if quantized:
        kinds = sorted({t.dtype.lower() for t in quantized})
        raise UserError(
            f"{model.path} is already quantized ({len(quantized)} {'/'.join(kinds)} tensors, "
            f"e.g. '{quantized[0].name}'): give the float model (.keras, .h5, SavedModel or a "
            "float32 .tflite); quantizing it again would measure quantized against quantized"
        )
    if not tuple(config.quantize.get("aeq_recipes", ()) or ()):
        raise UserError(
            f"{model.path} is a float .tflite: only the AI Edge Quantizer takes one, and "
            "config.quantize.aeq_recipes is empty; set --config.quantize.aeq_recipes "
            "(see edgequant/quantize/aeq.py RECIPES) or give the Keras/SavedModel model"
        )


def refuse_other_classes(source, eval_source) -> None:
    """--data and --eval_data must name the same classes in the same order: a class index is a
    position in that list, so eval folders missing one class shift every later label."""
    a, b = source.class_names, eval_source.class_names
    if a is None or b is None or list(a) == list(b):
        return
    raise UserError(
        f"--data and --eval_data have different classes: {eval_source.description} has "
        f"{list(b)}, {source.description} has {list(a)}; give both the same class folders, "
        "or --labels=labels.txt naming every class in the model's order"
    )


def refuse_non_finite_outputs(
    model, samples: dict[str, np.ndarray], where: str, max_batch: int = CHECK_SAMPLES
) -> None:
    """Runs the float model on the first calibration samples: a model that outputs NaN or Inf
    (broken weights) is refused here, naming the output and sample, instead of every variant
    failing its budget for a reason nowhere in the report."""
    n = min(CHECK_SAMPLES, len(next(iter(samples.values()))))
    fixed = model.inputs[0].shape[0] if model.inputs and model.inputs[0].shape else None
    step = fixed if isinstance(fixed, int) and fixed > 0 else min(n, max_batch)  # batch-1: 1 by 1
    n -= n % step
    try:
        if model.format == "tflite":
            from edgequant.evaluate.runner import SignatureModel

            runner = SignatureModel(model.path, step, signature=model.signature)
        else:
            runner = model
        parts = [
            runner.predict({k: v[i : i + step] for k, v in samples.items()})
            for i in range(0, n, step)
        ]
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - a model this check cannot run fails later, named
        log.warning("the float model's outputs were not checked: %s", str(e).splitlines()[0])
        return
    if not parts:
        return
    outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    for name, y in outputs.items():
        y = np.asarray(y, np.float64).reshape(n, -1)
        bad = np.flatnonzero(~np.isfinite(y).all(axis=1))
        if len(bad):
            raise UserError(
                f"{model.path}: output '{name}' is NaN or Inf for calibration sample "
                f"{int(bad[0])} of {where} (and {len(bad) - 1} more of the first {n}); the float "
                "model itself is broken (check its weights), so no variant can be measured"
            )


def why_none(study, variants: list[dict], errors: list[dict], device=None) -> list[dict]:
    """Why no variant is recommended, one entry per variant (and per failed step): the budget
    it missed (top-1 drop or SQNR, as measured), the Edge TPU gate it failed, the target
    device it did not run on, or the error that stopped it. deploy.json's `unmet`; the summary
    and the report print it."""
    out = []
    for v in variants:
        reasons = []
        if device is not None and devices.device_p50(v, device) is None:
            status = devices.on_device(v, device).get("status", "not measured")
            reasons.append(f"did not run on the target device {device}: {status}")
        if not v.get("within_budget"):
            reasons.append(f"misses the budget: {v.get('budget') or 'not measured'}")
        if study.config.target == "edgetpu" and v.get("gate") != "pass":
            grouped = ((v.get("edgetpu") or {}).get("gate") or {}).get("grouped") or []
            first = f" ({grouped[0]['text']})" if grouped else ""
            reasons.append(f"fails the Edge TPU gate{first}")
        if reasons:
            out.append({"name": v["name"], "reason": "; ".join(reasons)})
    out += [{"name": e["name"], "reason": f"failed: {e['error']}"} for e in errors]
    if not out:
        out.append({"name": "-", "reason": "no variant was built for this target and model"})
    return out
