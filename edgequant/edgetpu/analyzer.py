"""Predicts what `edgetpu_compiler` will map, without the compiler.

Two steps. First each op is judged on its own against the supported-op table (ops.py): op type,
data types, rank, op version, runtime version and the documented per-op constraints. Then the
compiler's partitioning is replayed on the dataflow graph, not on the operator list: the
compiler builds one Edge TPU subgraph (without -a), so the first op that cannot be mapped *after
mapping has started* cuts the graph, and that op and everything downstream of it run on the CPU,
even ops that are supported. Ops that cannot be mapped *before* anything is mapped (an input
QUANTIZE from float, a CAST) stay on the CPU in front of the Edge TPU op and do not cut. Ops in
a branch that does not depend on the cut keep their mapping.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgequant.edgetpu import ops as op_table
from edgequant.tflite.model import WEIGHTED_OPS, WEIGHTS_INPUT, Operator, TFLiteModel

MAPPED = "Mapped to Edge TPU"
DOWNSTREAM = "More than one subgraph is not supported"
UNSPECIFIED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
DATA_TYPE = "Operation is working on an unsupported data type"
VERSION = "Operation version not supported"
RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
NOT_CONSTANT = "Filter, bias, or other param is not constant at compile-time"
UNSUPPORTED = "Operation not supported"
COMPILED = "edgetpu-custom-op"
_INT8 = {"INT8", "UINT8"}
_AUX = {"INT32", "INT64"}  # shapes, axes, biases, indices


@dataclasses.dataclass(frozen=True)
class OpVerdict:
    index: int
    op: str
    custom_code: str | None
    version: int
    mapped: bool
    status: str  # the compiler's status string this op would get
    reason: str  # why, in words
    confidence: str  # documented / observed / uncertain

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Analysis:
    path: str
    ops: tuple[OpVerdict, ...]
    multiple_subgraphs: bool
    min_runtime_version: int | None
    num_subgraphs: int
    first_unmapped: OpVerdict | None  # the op that cut the graph (single-subgraph mode)
    advice: str

    @property
    def mapped_count(self) -> int:
        return sum(v.mapped for v in self.ops)

    @property
    def cpu_ops(self) -> list[OpVerdict]:
        return [v for v in self.ops if not v.mapped]

    @property
    def fully_mapped(self) -> bool:
        return not self.cpu_ops

    @property
    def uncertain_ops(self) -> list[OpVerdict]:
        """Ops whose verdict rests on thin evidence (size-dependent or undocumented rules)."""
        return [v for v in self.ops if v.confidence == "uncertain"]

    def to_dict(self) -> dict:
        return {
            "model": self.path,
            "ops": [v.to_dict() for v in self.ops],
            "mapped_count": self.mapped_count,
            "cpu_count": len(self.cpu_ops),
            "cpu_ops": [
                {"index": v.index, "op": v.op, "custom_code": v.custom_code, "status": v.status}
                for v in self.cpu_ops
            ],
            "first_unmapped": self.first_unmapped.to_dict() if self.first_unmapped else None,
            "uncertain_ops": [f"{v.index} {v.op}" for v in self.uncertain_ops],
            "num_subgraphs": self.num_subgraphs,
            "multiple_subgraphs": self.multiple_subgraphs,
            "min_runtime_version": self.min_runtime_version,
            "advice": self.advice,
        }


def _activations(model: TFLiteModel, op: Operator) -> list[int]:
    return [i for i in [*op.inputs, *op.outputs] if i >= 0 and not model.tensors[i].is_constant]


def _axis_values(model: TFLiteModel, op: Operator) -> list[int] | None:
    """Reduction/pack/split axes, normalised to non-negative, from options or a constant input."""
    rank = len(model.tensors[op.inputs[0 if op.op != "SPLIT" else 1]].shape)
    if op.op == "PACK":
        axes = [op.options.get("Axis", 0)]
        rank += 1
    elif op.op == "SPLIT":
        value = model.constant(op.inputs[0])
        axes = None if value is None else [int(v) for v in value.reshape(-1)]
    else:
        value = model.constant(op.inputs[1]) if len(op.inputs) > 1 else None
        axes = None if value is None else [int(v) for v in value.reshape(-1)]
    return None if axes is None else [a % rank if rank else a for a in axes]


def _constraint(model: TFLiteModel, op: Operator, rule: str) -> str | None:
    """Returns why `rule` fails for `op`, or None when it holds."""
    t = model.tensors
    if (
        rule == "no_fused_activation"
        and op.options.get("FusedActivationFunction", "NONE") != "NONE"
    ):
        return (
            f"fused activation {op.options['FusedActivationFunction']} is not supported on this op"
        )
    if rule == "same_dilation" and op.options.get("DilationWFactor", 1) != op.options.get(
        "DilationHFactor", 1
    ):
        return "dilation differs in x and y"
    if rule == "fc_output_1d":
        shape = t[op.outputs[0]].shape
        if len([d for d in shape[:-1] if d > 1]) > 0:
            return f"output {list(shape)} is not one-dimensional"
    if rule == "fc_default_weights" and op.options.get("WeightsFormat", 0) != 0:
        return "shuffled fully-connected weight format"
    if rule == "softmax_1d":
        shape = t[op.inputs[0]].shape
        if any(d > 1 for d in shape[:-1]) or (shape and shape[-1] > 16000):
            return f"input {list(shape)}: only a 1-D input of at most 16,000 elements"
    if rule == "no_batch_axis":
        axes = _axis_values(model, op)
        if axes is not None and 0 in axes and len(t[op.inputs[0]].shape) >= 4:
            return "operates on the batch dimension"
    if rule == "mean_z_multiple_of_4":
        axes = _axis_values(model, op)
        shape = t[op.inputs[0]].shape
        if axes and len(shape) >= 1 and (len(shape) - 1) in axes and shape[-1] % 4:
            return f"z-reduction over {shape[-1]} channels (not a multiple of 4)"
    if rule == "mean_spatial_size":
        axes = _axis_values(model, op) or []
        shape = t[op.inputs[0]].shape
        area = int(np.prod([shape[a] for a in axes if 0 < a < len(shape) - 1] or [1]))
        if len(shape) == 4 and area > op_table.MEAN_MAX_SPATIAL:
            return (
                f"reduces {area} elements per channel (> {op_table.MEAN_MAX_SPATIAL}; "
                f"uncertain, {op_table.UNCERTAIN_RULES[rule]})"
            )
    if rule == "no_batch_pad":
        pads = model.constant(op.inputs[1]) if len(op.inputs) > 1 else None
        if pads is not None and pads.ndim == 2 and pads.shape[0] >= 4 and pads[0].any():
            return "pads the batch dimension"
    if rule == "prelu_alpha_1d":
        alpha = t[op.inputs[1]].shape
        if any(d > 1 for d in alpha[:-1]):
            return f"alpha {list(alpha)} is not 1-D (use shared_axes=[1, 2])"
    if rule == "strides_one":
        strides = model.constant(op.inputs[3]) if len(op.inputs) > 3 else None
        if strides is not None and (strides != 1).any():
            return f"strides {strides.tolist()} (only 1 is supported)"
        if op.options.get("EllipsisMask", 0) or op.options.get("NewAxisMask", 0):
            return "ellipsis or new-axis mask set"
    if rule == "concat_constant_zero":
        consts = [i for i in op.inputs if i >= 0 and t[i].is_constant]
        if consts:
            value = model.constant(consts[0])
            zero = value is not None and not value.any()
            if len(op.inputs) != 2 or not zero:
                return "a constant input must be all zeros with exactly 2 inputs"
    if rule == "quantize_int_to_int" and t[op.inputs[0]].dtype not in _INT8:
        return "quantizes a float tensor (the model's float input stays on the CPU)"
    if rule == "resize_exact":
        return _resize_reason(model, op)
    if rule == "resize_large":
        return _resize_size_reason(model, op)
    if rule == "reshape_large":
        n = int(np.prod(t[op.outputs[0]].shape or (1,)))
        if n > op_table.RESHAPE_MAX_ELEMENTS:
            return (
                f"reshape of {n:,} elements (> {op_table.RESHAPE_MAX_ELEMENTS:,}; uncertain, "
                f"{op_table.UNCERTAIN_RULES[rule]})"
            )
    return None


def _resize_size_reason(model: TFLiteModel, op: Operator) -> str | None:
    """A resize to a large output or by a large factor stays on the CPU (see ops.py)."""
    src, dst = model.tensors[op.inputs[0]].shape, model.tensors[op.outputs[0]].shape
    if len(src) != 4 or len(dst) != 4:
        return None
    area = dst[1] * dst[2]
    factor = max(dst[1] / max(src[1], 1), dst[2] / max(src[2], 1))
    why = op_table.UNCERTAIN_RULES["resize_large"]
    if area > op_table.RESIZE_MAX_OUTPUT_AREA:
        return (
            f"resize to {dst[1]}x{dst[2]} (> {op_table.RESIZE_MAX_OUTPUT_AREA:,} pixels per "
            f"channel; uncertain, {why})"
        )
    if factor > op_table.RESIZE_MAX_FACTOR:
        return f"resize by {factor:g}x (> {op_table.RESIZE_MAX_FACTOR}x; uncertain, {why})"
    return None


def _resize_reason(model: TFLiteModel, op: Operator) -> str | None:
    """Resizes are mapped only when sampling is exact: integer scale factors (uncertain rule).

    Coral: "Depending on input/output size, this operation might not be mapped to the Edge TPU to
    avoid loss in precision." Observed: DeepLab's 1x1 -> 33x33 align_corners resize stays on the
    CPU; YOLO/FPN 2x nearest-neighbour upsampling is mapped.
    """
    src, dst = model.tensors[op.inputs[0]].shape, model.tensors[op.outputs[0]].shape
    if len(src) != 4 or len(dst) != 4:
        return "input/output must be [1, H, W, C]"
    align = op.options.get("AlignCorners", False)
    for a, b in ((src[1], dst[1]), (src[2], dst[2])):
        if align:
            if a == 1 or b == 1 or (b - 1) % (a - 1) and (a - 1) % (b - 1):
                return f"align_corners resize {src[1]}x{src[2]} -> {dst[1]}x{dst[2]} has no exact scale"
        elif b % a and a % b:
            return f"resize {src[1]}x{src[2]} -> {dst[1]}x{dst[2]} has a non-integer scale"
    return None


def judge(
    model: TFLiteModel,
    op: Operator,
    min_runtime: int | None = None,
    compiler_major: int = op_table.COMPILER_MAJOR,
) -> OpVerdict:
    """Verdict for one op on its own, ignoring its position in the graph."""

    def verdict(
        mapped: bool, status: str, reason: str, confidence: str = "documented"
    ) -> OpVerdict:
        return OpVerdict(
            op.index, op.op, op.custom_code, op.version, mapped, status, reason, confidence
        )

    if op.op == "CUSTOM":
        if op.custom_code == COMPILED:
            return verdict(True, MAPPED, "already compiled for the Edge TPU", "observed")
        return verdict(False, UNSUPPORTED, f"{op.custom_code}: {op_table.CUSTOM_NOTE}")
    if op.op in op_table.NEVER_MAPPED:
        return verdict(False, op_table.NEVER_MAPPED[op.op], f"{op.op} is never mapped", "observed")
    row = op_table.SUPPORTED.get(op.op)
    if row is None:
        return verdict(False, UNSUPPORTED, f"{op.op} is not in the Edge TPU's supported operations")
    if min_runtime is not None and row.min_runtime and min_runtime < row.min_runtime:
        return verdict(False, UNSUPPORTED, f"needs Edge TPU runtime >= {row.min_runtime}")
    tensors = model.tensors
    types = {tensors[i].dtype for i in _activations(model, op)}
    if op.op == "QUANTIZE" and tensors[op.inputs[0]].dtype not in _INT8:
        return verdict(
            False, UNSPECIFIED, _constraint(model, op, "quantize_int_to_int"), "observed"
        )
    allowed = _INT8 | _AUX | ({"INT16"} if op.op == "UNIDIRECTIONAL_SEQUENCE_LSTM" else set())
    if types - allowed or not types & _INT8:
        return verdict(False, DATA_TYPE, f"activation types {sorted(types)}; needs int8/uint8")
    if min_runtime is not None and min_runtime < 12 and "INT8" in types:
        return verdict(False, DATA_TYPE, "int8 tensors need Edge TPU runtime >= 12")
    limit = row.version_limit(compiler_major)
    if limit is not None and op.version > limit:
        extra = " (half_pixel_centers)" if op.op.startswith("RESIZE") else ""
        return verdict(
            False,
            VERSION,
            f"op version {op.version}{extra} > {limit}, the highest compiler "
            f"{compiler_major} maps (compiler 16 maps it)",
            "observed",
        )
    for i in _activations(model, op):
        shape = tensors[i].shape
        if len(shape) > 3 and any(d > 1 for d in shape[:-3]):
            return verdict(False, RANK, f"tensor {list(shape)} has more than 3 dims above 1")
    if op.op in WEIGHTED_OPS:
        weights = op.inputs[WEIGHTS_INPUT]
        if weights >= 0 and not tensors[weights].is_constant:
            return verdict(False, NOT_CONSTANT, "weights are not a constant tensor")
    for rule in row.constraints:
        why = _constraint(model, op, rule)
        if why:
            uncertain = row.confidence == "uncertain" or rule in op_table.UNCERTAIN_RULES
            status = UNSPECIFIED if uncertain else UNSUPPORTED
            return verdict(False, status, why, "uncertain" if uncertain else row.confidence)
    if row.confidence == "uncertain":
        return verdict(True, MAPPED, f"supported (uncertain): {row.note}", row.confidence)
    return verdict(True, MAPPED, "supported", row.confidence)


def _components(model: TFLiteModel, mapped: set[int]) -> int:
    """Edge TPU subgraphs with -a: mapped ops grouped so that no group's data leaves for the CPU
    and comes back (that would be a cycle through one delegate node). An op's level counts the
    CPU ops on the longest path reaching it; mapped neighbours of equal level share a subgraph."""
    level: dict[int, int] = {}
    for op in model.operators:
        preds = model.predecessors(op)
        level[op.index] = max((level[p] + (p not in mapped) for p in preds), default=0)
    parent = {i: i for i in mapped}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for op in model.operators:
        if op.index in mapped:
            for p in model.predecessors(op):
                if p in mapped and level[p] == level[op.index]:
                    parent[find(p)] = find(op.index)
    return len({find(i) for i in mapped})


def partition(
    model: TFLiteModel, verdicts: list[OpVerdict], multiple_subgraphs: bool
) -> tuple[list[OpVerdict], OpVerdict | None]:
    """Applies the compiler's partitioning to per-op verdicts (ops are in execution order)."""
    if multiple_subgraphs:
        return verdicts, None
    out: list[OpVerdict] = []
    cut: set[int] = set()  # ops that run on the CPU after mapping started, and their descendants
    mapped_above: dict[int, bool] = {}  # op -> has a mapped op among its ancestors (or is one)
    first: OpVerdict | None = None
    for op, v in zip(model.operators, verdicts, strict=True):
        preds = model.predecessors(op)
        after_mapping = any(mapped_above.get(p, False) for p in preds)
        if any(p in cut for p in preds):
            if v.mapped:
                v = dataclasses.replace(
                    v,
                    mapped=False,
                    status=DOWNSTREAM,
                    reason=f"downstream of op {first.index} {first.op}"
                    if first
                    else "downstream of a CPU op",
                )
            cut.add(op.index)
        elif not v.mapped and after_mapping:
            cut.add(op.index)
            first = first or v
        mapped_above[op.index] = v.mapped or after_mapping
        out.append(v)
    return out, first


def advise(model: TFLiteModel, verdicts: list[OpVerdict], first: OpVerdict | None) -> str:
    """What to change, in words: the op that cut the graph and the layers feeding it."""
    cpu = [v for v in verdicts if not v.mapped]
    if not cpu:
        return "All ops are predicted to map to the Edge TPU: one Edge TPU subgraph, nothing on the CPU."
    lines = []
    if first is not None:
        op = model.operators[first.index]
        feeding = [
            model.tensors[i].name for i in op.inputs if i >= 0 and not model.tensors[i].is_constant
        ]
        tail = sum(1 for v in verdicts if v.status == DOWNSTREAM)
        lines.append(
            f"The graph is cut at op {first.index} {first.custom_code or first.op} ({first.reason}); it and "
            f"{tail} supported op(s) after it run on the CPU. It is fed by: {', '.join(feeding[:3])}."
        )
        lines.append(_fix_hint(first))
        lines.append(
            "Alternatives: compile with -i <tensor> to end the Edge TPU part before it, or -a "
            "for several Edge TPU subgraphs (more CPU<->TPU transfers)."
        )
    leading = [
        v
        for v in cpu
        if v.status != DOWNSTREAM and v is not first and (first is None or v.index < first.index)
    ]
    if leading:
        names = ", ".join(f"{v.index} {v.custom_code or v.op}" for v in leading[:5])
        lines.append(
            f"On the CPU without cutting the graph: {names} (input/output conversion or tail ops)."
        )
    return " ".join(lines)


def _fix_hint(v: OpVerdict) -> str:
    if v.op.startswith("RESIZE"):
        return (
            "Fix: use integer scale factors (e.g. UpSampling2D(size=2)), convert without "
            "half_pixel_centers, or move the resize after the model's last layer."
        )
    if v.status == DATA_TYPE or "float" in v.reason:
        return "Fix: convert with a full-integer recipe (uint8) so every tensor is 8-bit."
    if v.op == "CUSTOM":
        return "Fix: this is expected for post-processing at the end of a model; keep it last."
    return f"Fix: replace {v.op} with a supported op (see coral.ai/docs/edgetpu/models-intro) or move it to the end."


def analyze(
    path: str | Path,
    min_runtime_version: int | None = None,
    multiple_subgraphs: bool = False,
    compiler_version: int = op_table.COMPILER_MAJOR,
) -> Analysis:
    """Per-op verdicts and the predicted Edge TPU / CPU partition of a .tflite model.

    `compiler_version` is the edgetpu_compiler major version to predict (14, 15 or 16): a few
    rules changed between releases (resize op version 3).
    """
    model = TFLiteModel.load(path)
    verdicts = [judge(model, op, min_runtime_version, compiler_version) for op in model.operators]
    verdicts, first = partition(model, verdicts, multiple_subgraphs)
    mapped = {v.index for v in verdicts if v.mapped}
    subgraphs = _components(model, mapped) if multiple_subgraphs else int(bool(mapped))
    return Analysis(
        str(path),
        tuple(verdicts),
        multiple_subgraphs,
        min_runtime_version,
        subgraphs,
        first,
        advise(model, verdicts, first),
    )
