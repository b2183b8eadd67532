"""A read-only view of a .tflite flatbuffer: operators, tensors, quantization and dataflow.

An interpreter cannot load every model we must judge (an Edge TPU model without libedgetpu,
an unknown custom op), and it hides op versions and shape signatures, so checks read the
flatbuffer directly through TF's generated schema. Buffer contents are never copied: only the
sizes of constant tensors are read, so a 100 MB model is inspected in milliseconds.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

_BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_ACTIVATION_NAMES = {
    v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")
}
# Ops with constant weights. Weights are input 1 of all four; the bias is input 2, except for
# TRANSPOSE_CONV whose inputs are (output_shape, weights, input, bias):
# tensorflow/lite/kernels/transpose_conv.cc.
WEIGHTED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"})
WEIGHTS_INPUT = 1


def bias_input(op: str) -> int:
    """The input index of a weighted op's bias."""
    return 3 if op == "TRANSPOSE_CONV" else 2


@dataclasses.dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: str  # schema name: FLOAT32, INT8, UINT8, INT32, ...
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dimension
    is_constant: bool  # backed by a non-empty buffer (weights, bias, constant operand)
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Operator:
    index: int
    op: str  # builtin name such as CONV_2D, or CUSTOM
    custom_code: str | None
    version: int
    inputs: tuple[int, ...]  # tensor indices, -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict  # the builtin options that checks need (activation, strides, dilation, ...)

    @property
    def label(self) -> str:
        return self.custom_code if self.op == "CUSTOM" and self.custom_code else self.op


def _options(op, code: str) -> dict:
    """Decodes the few builtin options the Edge TPU rules look at."""
    table = op.BuiltinOptions()
    if table is None:
        return {}
    name = "".join(part.capitalize() for part in code.lower().split("_")) + "Options"
    aliases = {
        "Conv2dOptions": "Conv2DOptions",
        "DepthwiseConv2dOptions": "DepthwiseConv2DOptions",
        "MaxPool2dOptions": "Pool2DOptions",
        "AveragePool2dOptions": "Pool2DOptions",
        "ConcatenationOptions": "ConcatenationOptions",
        "UnidirectionalSequenceLstmOptions": "UnidirectionalSequenceLSTMOptions",
        "BidirectionalSequenceLstmOptions": "BidirectionalSequenceLSTMOptions",
        "StridedSliceOptions": "StridedSliceOptions",
    }
    cls = getattr(schema, aliases.get(name, name), None)
    if cls is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for field in (
        "FusedActivationFunction",
        "DilationWFactor",
        "DilationHFactor",
        "StrideW",
        "StrideH",
        "EllipsisMask",
        "NewAxisMask",
        "ShrinkAxisMask",
        "Axis",
        "KeepDims",
        "WeightsFormat",
        "KeepNumDims",
        "NumSplits",
        "AlignCorners",
        "HalfPixelCenters",
    ):
        getter = getattr(opts, field, None)
        if callable(getter):
            value = getter()
            if field == "FusedActivationFunction":
                value = _ACTIVATION_NAMES.get(value, str(value))
            out[field] = value
    return out


class TFLiteModel:
    """One parsed .tflite file (first subgraph = the model's main graph)."""

    def __init__(self, content: bytes, path: str = "<bytes>"):
        self.path = path
        self.content = content
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise ValueError(f"{path} is not a TFLite flatbuffer (missing 'TFL3' identifier)")
        try:
            self._model = schema.Model.GetRootAsModel(content, 0)
            if self._model.SubgraphsLength() == 0:
                raise ValueError("no subgraphs")
            self._graph = self._model.Subgraphs(0)
            _ = self.operators, self.tensors
        except ValueError as e:
            raise ValueError(f"{path} is not a valid TFLite model: {e}") from None
        except Exception:  # noqa: BLE001 - a truncated flatbuffer fails anywhere inside
            raise ValueError(
                f"{path} is corrupt or truncated: its flatbuffer cannot be read"
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> TFLiteModel:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model not found: {path}")
        return cls(path.read_bytes(), str(path))

    @property
    def num_subgraphs(self) -> int:
        return self._model.SubgraphsLength()

    @cached_property
    def tensors(self) -> list[Tensor]:
        out = []
        for i in range(self._graph.TensorsLength()):
            t = self._graph.Tensors(i)
            q = t.Quantization()
            scales = tuple(float(s) for s in q.ScaleAsNumpy()) if q and q.ScaleLength() else ()
            zps = tuple(int(z) for z in q.ZeroPointAsNumpy()) if q and q.ZeroPointLength() else ()
            buf = (
                self._model.Buffers(t.Buffer())
                if t.Buffer() < self._model.BuffersLength()
                else None
            )
            constant = bool(buf is not None and (buf.DataLength() > 0 or buf.Offset() > 1))
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            sig = (
                tuple(int(d) for d in t.ShapeSignatureAsNumpy())
                if t.ShapeSignatureLength()
                else shape
            )
            name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor_{i}"
            out.append(
                Tensor(
                    i,
                    name,
                    _TYPE_NAMES.get(t.Type(), str(t.Type())),
                    shape,
                    sig,
                    constant,
                    scales,
                    zps,
                )
            )
        return out

    @cached_property
    def operators(self) -> list[Operator]:
        codes = []
        for i in range(self._model.OperatorCodesLength()):
            c = self._model.OperatorCodes(i)
            # Newer files keep large op ids in BuiltinCode; DeprecatedBuiltinCode tops out at 127.
            code = max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
            custom = c.CustomCode().decode("utf-8", "replace") if c.CustomCode() else None
            codes.append((_BUILTIN_NAMES.get(code, f"BUILTIN_{code}"), custom, c.Version()))
        ops = []
        for i in range(self._graph.OperatorsLength()):
            o = self._graph.Operators(i)
            name, custom, version = codes[o.OpcodeIndex()]
            inputs = tuple(int(x) for x in o.InputsAsNumpy()) if o.InputsLength() else ()
            outputs = tuple(int(x) for x in o.OutputsAsNumpy()) if o.OutputsLength() else ()
            ops.append(Operator(i, name, custom, version, inputs, outputs, _options(o, name)))
        return ops

    @cached_property
    def inputs(self) -> list[int]:
        return [int(x) for x in self._graph.InputsAsNumpy()] if self._graph.InputsLength() else []

    @cached_property
    def outputs(self) -> list[int]:
        return [int(x) for x in self._graph.OutputsAsNumpy()] if self._graph.OutputsLength() else []

    @cached_property
    def producer(self) -> dict[int, int]:
        """tensor index -> index of the op that writes it."""
        return {t: op.index for op in self.operators for t in op.outputs if t >= 0}

    def predecessors(self, op: Operator) -> list[int]:
        """Indices of the ops whose outputs feed `op` (its dataflow parents)."""
        return sorted({self.producer[t] for t in op.inputs if t in self.producer})

    def constant(self, tensor_index: int) -> np.ndarray | None:
        """The value of a small constant tensor (axes, paddings, strides), or None."""
        t = self.tensors[tensor_index]
        dtype = dtype_of(t.dtype)
        if not t.is_constant or dtype is None:
            return None
        buf = self._model.Buffers(self._graph.Tensors(tensor_index).Buffer())
        if buf.DataLength() == 0 or buf.DataLength() > 1 << 16:
            return None
        return buf.DataAsNumpy().view(dtype).reshape(t.shape or ())

    def op_histogram(self) -> dict[str, int]:
        """{op label: count} of the main graph, sorted by label (custom ops by their code)."""
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.label] = counts.get(op.label, 0) + 1
        return dict(sorted(counts.items()))

    def float_ops(self) -> list[str]:
        """Ops (as 'INDEX:LABEL') with a float32 input or output tensor, ignoring the QUANTIZE
        and DEQUANTIZE that only convert at the model boundary (float I/O of an integer model)."""
        boundary = set(self.inputs) | set(self.outputs)
        out = []
        for op in self.operators:
            used = [i for i in (*op.inputs, *op.outputs) if i >= 0]
            is_float = any(self.tensors[i].dtype == "FLOAT32" for i in used)
            at_boundary = op.op in ("QUANTIZE", "DEQUANTIZE") and any(i in boundary for i in used)
            if is_float and not at_boundary:
                out.append(f"{op.index}:{op.label}")
        return out


def dtype_of(name: str):
    return {
        "FLOAT32": np.float32,
        "INT8": np.int8,
        "UINT8": np.uint8,
        "INT16": np.int16,
        "INT32": np.int32,
        "INT64": np.int64,
        "FLOAT16": np.float16,
    }.get(name)
