"""The full-integer gate: may this .tflite be handed to the Edge TPU compiler at all?

The compiler's own refusals are terse ("Model not quantized", "Model could not be parsed") and
arrive only after a compile, on x86-64 Debian. This gate names every violation up front with the
op index, op, tensor and rule, so a dynamic-range, float16, float-I/O or dynamic-batch model is
refused with the reason and what to change.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from edgequant.edgetpu import versions
from edgequant.tflite.model import WEIGHTED_OPS, WEIGHTS_INPUT, Operator, TFLiteModel, bias_input

INTEGER = {"INT8", "UINT8"}
# Tensor types an Edge TPU model may carry besides 8-bit activations/weights: int32 biases and
# shape/axis constants, int16 LSTM cell state, int64 ARG_MAX results at the CPU tail.
_AUX_TYPES = {"INT32", "INT64", "INT16", "BOOL"}


@dataclasses.dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    op_index: int | None = None
    op: str | None = None
    tensor: str | None = None

    def __str__(self) -> str:
        where = f"op {self.op_index} {self.op}" if self.op_index is not None else "model"
        tensor = f" tensor '{self.tensor}'" if self.tensor else ""
        return f"[{self.rule}] {where}{tensor}: {self.message}"


@dataclasses.dataclass(frozen=True)
class GateReport:
    path: str
    io_dtype: str
    violations: tuple[Violation, ...]

    @property
    def passed(self) -> bool:
        return not self.violations

    def grouped(self) -> list[ViolationGroup]:
        """Repeats of one problem as one entry: a dynamic batch flags every tensor of the model
        with the same message, which is one fix, not twelve. Grouped by rule, op type and the
        message with its shapes blanked; each group keeps its first violation and a count."""
        groups: dict[tuple, list[Violation]] = {}
        for v in self.violations:
            key = (v.rule, v.op, re.sub(r"\[[^\]]*\]", "[..]", v.message))
            groups.setdefault(key, []).append(v)
        return [ViolationGroup(vs[0], len(vs)) for vs in groups.values()]

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "io_dtype": self.io_dtype,
            "violations": [dataclasses.asdict(v) | {"text": str(v)} for v in self.violations],
            "grouped": [
                dataclasses.asdict(g.first) | {"count": g.count, "text": str(g)}
                for g in self.grouped()
            ],
        }

    def summary(self) -> str:
        if self.passed:
            return f"{Path(self.path).name}: passes the full-integer {self.io_dtype} gate"
        groups = self.grouped()
        head = (
            f"{Path(self.path).name}: {len(self.violations)} Edge TPU gate violation(s) "
            f"of {len(groups)} kind(s)"
        )
        return "\n".join([head, *(f"  {g}" for g in groups)])


@dataclasses.dataclass(frozen=True)
class ViolationGroup:
    first: Violation
    count: int

    def __str__(self) -> str:
        if self.count == 1:
            return str(self.first)
        v = self.first
        where = f"{v.op} ops" if v.op else "model"
        first = f"first: op {v.op_index} " if v.op_index is not None else "first: "
        first += f"tensor '{v.tensor}'" if v.tensor else ""
        return f"[{v.rule}] {where}: {v.message} ({self.count}x, {first.strip()})"


def _op_violations(model: TFLiteModel, op: Operator) -> list[Violation]:
    out: list[Violation] = []
    tensors = model.tensors

    def add(rule: str, message: str, tensor: int | None = None) -> None:
        name = tensors[tensor].name if tensor is not None else None
        out.append(Violation(rule, message, op.index, op.label, name))

    finding = versions.judge_version(op.op, op.version) if op.op != "CUSTOM" else None
    if finding is not None and finding.verdict == "refused":
        how = finding.fix.setting if finding.fix else finding.model_change or "an older TensorFlow"
        add(
            "op-version",
            f"version {op.version} is refused by compiler 16 (it accepts <= {finding.accepted}; "
            f"{finding.evidence}); fix: {how}",
        )
    if op.op == "DEQUANTIZE":
        t = op.inputs[0]
        kind = "float16 weights" if tensors[t].dtype == "FLOAT16" else "a dequantized tensor"
        add("float-op", f"DEQUANTIZE produces float from {kind}; use a full-integer recipe", t)
        return out
    if op.op == "QUANTIZE" and tensors[op.inputs[0]].dtype == "FLOAT32":
        add(
            "float-io",
            "float input is quantized inside the model; convert with inference_input_type=uint8",
            op.inputs[0],
        )
        return out
    if op.op == "QUANTIZE" and tensors[op.outputs[0]].dtype == "FLOAT32":
        add(
            "float-io",
            "output is dequantized to float inside the model; convert with "
            "inference_output_type=uint8",
            op.outputs[0],
        )
        return out
    for i in [*op.inputs, *op.outputs]:
        if i < 0:
            continue
        t = tensors[i]
        if t.dtype == "FLOAT32" or t.dtype == "FLOAT16":
            if (
                op.op in WEIGHTED_OPS
                and i in op.inputs
                and not t.is_constant
                and any(tensors[w].dtype in INTEGER for w in op.inputs[1:2] if w >= 0)
            ):
                add(
                    "dynamic-range",
                    "float activations with int8 weights (dynamic-range "
                    "quantization); the Edge TPU needs calibrated full-integer activations",
                    i,
                )
                break
            add(
                "float-tensor",
                f"{t.dtype.lower()} tensor; every activation and weight must be int8/uint8",
                i,
            )
            break
        if t.dtype not in INTEGER | _AUX_TYPES:
            add("dtype", f"{t.dtype} tensors are not supported", i)
    if op.op in WEIGHTED_OPS and len(op.inputs) > 1 and op.inputs[WEIGHTS_INPUT] >= 0:
        w = tensors[op.inputs[WEIGHTS_INPUT]]
        if w.dtype not in INTEGER:
            add("weights", f"weights are {w.dtype}, need int8/uint8", op.inputs[WEIGHTS_INPUT])
        b = bias_input(op.op)
        if len(op.inputs) > b and op.inputs[b] >= 0 and tensors[op.inputs[b]].dtype != "INT32":
            add("bias", f"bias is {tensors[op.inputs[b]].dtype}, need int32", op.inputs[b])
    return out


def _shape_violations(model: TFLiteModel) -> list[Violation]:
    out = []
    for t in model.tensors:
        if any(d < 0 for d in t.shape_signature):
            rule = "dynamic-batch" if t.shape_signature[0] < 0 else "dynamic-shape"
            out.append(
                Violation(
                    rule,
                    f"shape {list(t.shape_signature)} is not static; fix the "
                    "batch to 1 (e.g. input.set_shape((1, ...)) before conversion)",
                    tensor=t.name,
                )
            )
    for i in model.inputs:
        t = model.tensors[i]
        if t.shape and t.shape[0] != 1:
            out.append(
                Violation("batch-1", f"input batch is {t.shape[0]}, must be 1", tensor=t.name)
            )
    return out


def _rank_violations(model: TFLiteModel) -> list[Violation]:
    out = []
    for op in model.operators:
        for i in [*op.inputs, *op.outputs]:
            if i < 0:
                continue
            t = model.tensors[i]
            # Weights are laid out by the compiler; the rule is about activation tensors.
            if not t.is_constant and len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
                out.append(
                    Violation(
                        "rank",
                        f"shape {list(t.shape)}: only the 3 innermost "
                        "dimensions may be larger than 1",
                        op.index,
                        op.label,
                        t.name,
                    )
                )
                break
    return out


def check_full_integer(path: str | Path, io_dtype: str = "uint8") -> GateReport:
    """Checks a .tflite against the Edge TPU's whole-model requirements."""
    model = TFLiteModel.load(path)
    want = io_dtype.upper()
    if want not in INTEGER:
        raise ValueError(f"io_dtype must be uint8 or int8, got {io_dtype}")
    violations: list[Violation] = []
    for kind, indices in (("input", model.inputs), ("output", model.outputs)):
        for i in indices:
            t = model.tensors[i]
            if t.dtype != want:
                violations.append(
                    Violation(
                        "io-dtype",
                        f"model {kind} is {t.dtype.lower()}, must be {io_dtype}",
                        tensor=t.name,
                    )
                )
    violations += _shape_violations(model)
    for op in model.operators:
        if op.op == "CUSTOM":
            continue  # custom ops are not a quantization problem; the analyzer reports them
        violations += _op_violations(model, op)
    violations += _rank_violations(model)
    return GateReport(str(path), io_dtype, tuple(violations))
