"""Repairs a Keras model so more of it maps to the Edge TPU, and says what it changed.

    result = repair(model, calibration_samples=None, approximate=False)
    result.model        the rewritten Keras model (same flavour, standard layers only)
    result.rewrites     one AppliedRewrite per rule application, with its measured error
    result.before/after the predicted mapping of the uint8 conversion, before and after

The loop: convert to uint8 TFLite (faithfully: a dynamic batch stays dynamic), run the gate and
the analyzer, find rule matches (rewrites.find: in the Keras graph, and through the converted
model's tensor names for patterns the converter fuses), rebuild the model with the replacements
of one rule, measure the float output change on the calibration samples, and repeat until no
rule applies. Exact rules are always applied; approximate ones only with `approximate=True`,
otherwise they are listed as available with their cost in words.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from edgequant.edgetpu import keras_graph, rewrites
from edgequant.edgetpu.analyzer import DOWNSTREAM, analyze
from edgequant.edgetpu.gate import check_full_integer
from edgequant.tflite.model import TFLiteModel

MAX_ROUNDS = 8


@dataclasses.dataclass(frozen=True)
class Mapping:
    """The predicted mapping of one uint8 conversion."""

    mapped: int
    total: int
    cpu_ops: tuple[str, ...]  # "index OP: reason" for the ops that stay on the CPU
    gate: tuple[str, ...]  # grouped gate violations
    uncertain: tuple[str, ...]  # verdicts resting on thin evidence

    @property
    def percent(self) -> float:
        return 100.0 * self.mapped / self.total if self.total else 0.0

    @property
    def fully_mapped(self) -> bool:
        return self.mapped == self.total and not self.gate

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"percent": round(self.percent, 1)}


@dataclasses.dataclass(frozen=True)
class AppliedRewrite:
    rule: str
    exact: bool
    targets: tuple[str, ...]  # what was rewritten, in words
    max_abs_error: float  # max |new - old| over all outputs and calibration samples
    max_rel_error: float  # max_abs_error / max |old|

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RepairResult:
    model: object
    rewrites: tuple[AppliedRewrite, ...]
    before: Mapping
    after: Mapping
    skipped: tuple[str, ...]  # approximate rewrites that would apply, not applied
    calibration: str  # where the samples came from

    def to_dict(self) -> dict:
        return {
            "rewrites": [r.to_dict() for r in self.rewrites],
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "skipped": list(self.skipped),
            "calibration": self.calibration,
        }

    def summary(self) -> str:
        b, a = self.before, self.after
        lines = [
            f"before: {b.mapped}/{b.total} ops predicted on the Edge TPU ({b.percent:.0f}%)"
            + (f", {len(b.gate)} gate problem(s)" if b.gate else ""),
            *(f"  gate: {g}" for g in b.gate),
        ]
        for r in self.rewrites:
            kind = "exact" if r.exact else "approximate"
            lines.append(
                f"  {r.rule} ({kind}): {'; '.join(r.targets)}: max error "
                f"{r.max_abs_error:.3g} abs, {r.max_rel_error:.3g} rel"
            )
        lines.append(
            f"after: {a.mapped}/{a.total} ops predicted on the Edge TPU ({a.percent:.0f}%)"
            + (f", {len(a.gate)} gate problem(s)" if a.gate else "")
        )
        lines += [f"  CPU: {c}" for c in a.cpu_ops]
        lines += [f"  gate: {g}" for g in a.gate]
        lines += [f"  not applied (needs --approximate): {s}" for s in self.skipped]
        if a.uncertain:
            lines.append(f"  uncertain verdicts: {', '.join(a.uncertain)}")
        lines.append(f"errors measured on {self.calibration}")
        return "\n".join(lines)


def _mapping(tflite: bytes) -> tuple[Mapping, TFLiteModel, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(tflite)
        analysis = analyze(path)
        gate = check_full_integer(path)
        tfl = TFLiteModel.load(path)
    cpu = tuple(
        f"{v.index} {v.custom_code or v.op}: {v.reason}"
        for v in analysis.cpu_ops
        if v.status != DOWNSTREAM
    )
    tail = sum(v.status == DOWNSTREAM for v in analysis.cpu_ops)
    if tail:
        cpu += (f"{tail} supported op(s) downstream of the first CPU op",)
    # The uint8 conversion keeps float QUANTIZE/DEQUANTIZE pairs around float-only kernels;
    # those are reported through the ops, not again as gate problems.
    gate = tuple(
        str(g)
        for g in gate.grouped()
        if g.first.rule not in ("float-tensor", "float-op", "float-io", "io-dtype")
    )
    mapping = Mapping(
        analysis.mapped_count,
        len(analysis.ops),
        cpu,
        gate,
        tuple(f"{v.index} {v.op}" for v in analysis.uncertain_ops),
    )
    return mapping, tfl, analysis


def _convert(model, samples) -> tuple[Mapping, TFLiteModel, object, dict[str, str]]:
    with keras_graph.tagged_names(model) as tags:
        tflite = keras_graph.to_uint8_tflite(model, samples)
    return (*_mapping(tflite), tags)


def _errors(old: list[np.ndarray], new: list[np.ndarray]) -> tuple[float, float]:
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(old, new, strict=True))
    scale = max(float(np.max(np.abs(a))) for a in old) or 1.0
    return diff, diff / scale


def repair(
    model,
    calibration_samples: list[np.ndarray] | np.ndarray | None = None,
    approximate: bool = False,
) -> RepairResult:
    """Rewrites `model` (tf_keras or Keras 3, functional or Sequential) until no rule applies.

    calibration_samples: per model input an array (N, *input_shape), or one array for a
    single-input model; None uses 32 seeded standard-normal samples (and says so).
    """
    if calibration_samples is None:
        samples = keras_graph.synthetic_calibration(model)
        source = "32 synthetic standard-normal samples (pass calibration data for real errors)"
    else:
        samples = (
            [calibration_samples]
            if isinstance(calibration_samples, np.ndarray)
            else list(calibration_samples)
        )
        shapes = keras_graph.input_shapes(model)
        if len(samples) != len(shapes) or any(
            s.shape[1:] != shape for s, shape in zip(samples, shapes, strict=False)
        ):
            raise ValueError(
                f"calibration samples {[s.shape for s in samples]} do not match the model's "
                f"inputs {shapes} (one array (N, ...) per input)"
            )
        samples = [np.asarray(s, np.float32) for s in samples]
        source = f"{len(samples[0])} calibration samples"
    current = model
    reference = keras_graph.predict(current, samples)
    before, tfl, analysis, tags = _convert(current, samples)
    after = before  # the mapping of the latest conversion, which always describes `current`
    applied: list[AppliedRewrite] = []
    skipped: dict[str, str] = {}
    fresh = True  # tfl/analysis describe `current`; TFLite-level matches need a fresh one

    def apply(rule: str, exact: bool, targets: tuple[str, ...], rebuilt) -> None:
        nonlocal current, reference, fresh
        new = keras_graph.predict(rebuilt, samples)
        applied.append(AppliedRewrite(rule, exact, targets, *_errors(reference, new)))
        current, reference, fresh = rebuilt, new, False

    for _ in range(MAX_ROUNDS):
        if keras_graph.has_dynamic_batch(current):
            rebuilt = keras_graph.rebuild(current, batch_size=1)
            apply("dynamic_batch", True, ("inputs: batch None -> 1",), rebuilt)
        while True:
            matches = rewrites.find(current, *((tfl, analysis, tags) if fresh else ()))
            group: list[rewrites.Match] = []
            for rule in rewrites.RULES:
                group = [m for m in matches if m.rule == rule]
                if group and not group[0].exact and not approximate:
                    skipped[rule] = f"{rewrites.RULES[rule][1]}: " + "; ".join(
                        m.what for m in group
                    )
                    group = []
                if group:
                    break
            if not group:
                break
            rebuilt = keras_graph.rebuild(current, {m.layer: m.make for m in group})
            apply(group[0].rule, group[0].exact, tuple(m.what for m in group), rebuilt)
        if fresh:
            break  # nothing changed since the last conversion: no rule applies
        after, tfl, analysis, tags = _convert(current, samples)
        fresh = True
    return RepairResult(current, tuple(applied), before, after, tuple(skipped.values()), source)


def repair_file(
    path: str | Path,
    out: str | Path,
    calibration_samples: list[np.ndarray] | np.ndarray | None = None,
    approximate: bool = False,
    trust_code: bool = False,
) -> RepairResult:
    """repair() on a saved model; writes the result in the input's format and Keras flavour.

    The model is loaded safely (usermodel.load_keras): a Lambda layer's code runs only with
    `trust_code`."""
    from edgequant import usermodel

    path, out = Path(path), Path(out)
    if out.suffix != path.suffix:
        raise ValueError(f"output {out} must keep the input's format ({path.suffix})")
    result = repair(usermodel.load_keras(path, trust_code), calibration_samples, approximate)
    keras_graph.save(result.model, out)
    return result
