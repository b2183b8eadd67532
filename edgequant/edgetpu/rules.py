"""The analyzer's first step: each op judged on its own, ignoring its place in the graph, against
the supported-op table (ops.py): op type, data types, rank, op version, runtime version and the
per-op constraints (`_constraint` implements every constraint name a row of ops.py may carry).

A verdict carries the status string edgetpu_compiler would print for the op, so a prediction
reads like the compiler's own log. Where the op sits (after mapping started, downstream of a
cut) is the partition walk's business, in analyzer.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgequant.edgetpu import ops as op_table
from edgequant.tflite.model import WEIGHTED_OPS, WEIGHTS_INPUT, Operator, TFLiteModel

MAPPED = "Mapped to Edge TPU"
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
