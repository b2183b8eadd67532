"""Predicts how much of a model's parameters the Edge TPU caches on chip, and how much it streams.

The Edge TPU has ~8 MB of SRAM; the compiler puts as many parameters there as fit ("On-chip
memory used for caching model parameters") and streams the rest from the host on every
inference ("Off-chip memory used for streaming uncached model parameters"), which is what makes
a large model slow (coral.ai/docs/edgetpu/compiler#parameter-data-caching). Models co-compiled in
one call share that cache, the first model given first claim (same page).

Two calibrations, both from real compiler output:
- Bytes per layer: int8 weights as stored in the .tflite plus 32 bytes per output channel
  (bias, requantization multiplier and shift). Fitted on the PARAMETER_CACHING executables of
  the compiled Coral pairs in ../shared/data/coral; within 6% on the two CNNs (MobileNet v1,
  DeepLab v3). Small and recurrent models carry fixed overheads it does not model: uncertain.
- Capacity: "used + remaining" in every real log we have is 6.99-7.69 MiB (the rest of the
  8 MiB holds instructions and activations), so below 6.9 MiB is "fits on-chip", above 7.7 MiB
  "streams", and in between "uncertain".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers
from flatbuffers import number_types as N
from flatbuffers.table import Table

from edgequant.edgetpu.analyzer import COMPILED, Analysis, analyze
from edgequant.tflite.model import WEIGHTED_OPS, WEIGHTS_INPUT, TFLiteModel, bias_input, dtype_of

MIB = 1024**2
FITS_BELOW = round(6.9 * MIB)  # lowest used+remaining seen in a real log (6.99 MiB), less margin
STREAMS_ABOVE = round(7.7 * MIB)  # highest used+remaining seen (7.69 MiB)
PER_CHANNEL_BYTES = 32


@dataclasses.dataclass(frozen=True)
class CachePrediction:
    model: str
    parameter_bytes: int  # predicted bytes of parameters of the ops mapped to the Edge TPU
    verdict: str  # "fits on-chip", "streams", "uncertain"
    streamed_bytes: int  # predicted bytes streamed from the host per inference (0 when it fits)
    text: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parameter_bytes(model: TFLiteModel, mapped: set[int]) -> int:
    """Predicted on-chip parameter bytes of the mapped ops (see the module docstring)."""
    total, seen = 0, set()
    for op in model.operators:
        if op.index not in mapped:
            continue
        for k, i in enumerate(op.inputs):
            t = model.tensors[i] if i >= 0 else None
            if t is None or not t.is_constant or i in seen:
                continue
            seen.add(i)
            dtype = dtype_of(t.dtype)
            size = int(np.prod(t.shape)) if t.shape else 1
            if op.op in WEIGHTED_OPS and k == WEIGHTS_INPUT:
                total += size * (np.dtype(dtype).itemsize if dtype else 1)
                channels = t.shape[-1] if op.op == "DEPTHWISE_CONV_2D" else t.shape[0]
                total += PER_CHANNEL_BYTES * channels
            elif op.op in WEIGHTED_OPS and k == bias_input(op.op):
                continue  # the bias is in the per-channel bytes
            elif t.dtype in ("INT8", "UINT8", "INT16"):
                total += size * np.dtype(dtype).itemsize  # LSTM gates, PReLU alpha, constants
    return total


def _verdict(name: str, nbytes: int, available: int | None = None) -> CachePrediction:
    low = FITS_BELOW if available is None else min(FITS_BELOW, available)
    high = STREAMS_ABOVE if available is None else min(STREAMS_ABOVE, available)
    mib = nbytes / MIB
    if nbytes <= low:
        return CachePrediction(name, nbytes, "fits on-chip", 0, f"{mib:.2f} MiB: fits on-chip")
    if nbytes > high:
        streamed = nbytes - high
        return CachePrediction(
            name,
            nbytes,
            "streams",
            streamed,
            f"{mib:.2f} MiB: streams about {streamed / MIB:.2f} MiB from the host per inference",
        )
    return CachePrediction(
        name,
        nbytes,
        "uncertain",
        0,
        f"{mib:.2f} MiB: uncertain (the cache holds 6.99-7.69 MiB in real logs); some may stream",
    )


def predict_cache(path: str | Path, analysis: Analysis | None = None) -> CachePrediction:
    """Parameter bytes of one model against the on-chip cache."""
    analysis = analysis or analyze(path)
    model = TFLiteModel.load(path)
    nbytes = parameter_bytes(model, {v.index for v in analysis.ops if v.mapped})
    return _verdict(Path(path).name, nbytes)


def predict_co_compiled(
    paths: list[str | Path], analyses: list[Analysis] | None = None
) -> list[CachePrediction]:
    """Models co-compiled in one call share the cache, claimed in the order given.
    `analyses` (one per path) reuses predictions already made with the caller's options."""
    out, used = [], 0
    for i, path in enumerate(paths):
        alone = predict_cache(path, analyses[i] if analyses else None)
        available = max(STREAMS_ABOVE - used, 0)
        out.append(_verdict(alone.model, alone.parameter_bytes, available))
        used += min(alone.parameter_bytes, available)
    return out


def _root(buf: bytes) -> Table:
    data = bytearray(buf)
    return Table(data, flatbuffers.encode.Get(N.UOffsetTFlags.packer_type, data, 0))


def _field(t: Table, i: int) -> int:
    return t.Offset(4 + 2 * i)


def _vector_bytes(t: Table, i: int) -> bytes:
    o = _field(t, i)
    if not o:
        return b""
    start = t.Vector(o)
    return bytes(t.Bytes[start : start + t.VectorLen(o)])


def compiled_parameter_bytes(compiled: str | Path) -> dict[str, int]:
    """Parameter bytes the real compiler wrote into a *_edgetpu.tflite, by executable type.

    `edgetpu-custom-op` custom options are a FlexBuffer map whose key "4" holds a DarwiNN Package
    (libedgetpu executable/executable.fbs): Package.serialized_multi_executable (field 1) ->
    MultiExecutable.serialized_executables (field 0) -> Executable.parameters (field 6) and
    Executable.type (field 13: 1 = PARAMETER_CACHING, the on-chip part; 2 = EXECUTION_ONLY).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(Path(compiled).read_bytes(), 0)
    out = {"caching": 0, "execution_only": 0, "stand_alone": 0}
    kinds = {0: "stand_alone", 1: "caching", 2: "execution_only"}
    for graph in m.subgraphs:
        for op in graph.operators:
            code = m.operatorCodes[op.opcodeIndex].customCode
            if code is None or code.decode() != COMPILED:
                continue
            ref = flexbuffers.GetRoot(bytes(op.customOptions)).AsMap["4"]
            package = _root(ref.AsStringBytes if ref.IsString else ref.AsBlob)
            multi = _root(_vector_bytes(package, 1))
            o = _field(multi, 0)
            start = multi.Vector(o)
            for k in range(multi.VectorLen(o)):
                exe = _root(multi.String(start + 4 * k))
                t = _field(exe, 13)
                kind = kinds.get(exe.Get(N.Int16Flags, t + exe.Pos) if t else 0, "stand_alone")
                out[kind] += len(_vector_bytes(exe, 6))
    return out


@dataclasses.dataclass(frozen=True)
class LogCache:
    """What one real compiler log says about the cache, and our capacity rule's verdict on it."""

    name: str
    used: int
    remaining: int | None
    off_chip: int | None
    capacity: int | None  # used + remaining
    predicted: str  # our verdict for used + off_chip parameter bytes
    actual: str  # "fits on-chip" when off-chip is 0, else "streams"


def check_log(name: str, log) -> LogCache:
    """Applies the capacity rule to a log's own parameter total (used + off-chip) and compares
    with what the log says happened."""
    off = log.off_chip_used or 0
    total = (log.on_chip_used or 0) + off
    # Compiler 2.x printed the capacity itself ("available"); later ones print what remains.
    if log.on_chip_remaining is None:
        cap = None
    elif (log.version or "").startswith("2."):
        cap = log.on_chip_remaining
    else:
        cap = (log.on_chip_used or 0) + log.on_chip_remaining
    predicted = _verdict(name, total).verdict
    return LogCache(
        name,
        log.on_chip_used or 0,
        log.on_chip_remaining,
        log.off_chip_used,
        cap,
        predicted,
        "fits on-chip" if off == 0 else "streams",
    )
