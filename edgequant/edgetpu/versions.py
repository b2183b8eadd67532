"""Op versions and compiler 16: which versions `edgetpu_compiler` 16.0.384591198 is known to
parse, with the evidence for each, and which converter setting avoids a version it refuses.

Why a separate check: the compiler embeds a 2021 TFLite. A model holding an op version newer
than that TFLite knows is not partly mapped, it is refused whole ("Didn't find op for builtin
opcode 'CONV_2D' version '6'" ... "Model could not be parsed"), so this must be known before
compiling. The flatbuffer keeps one operator code per (op, version), and the converter gives
every op of a type the highest version any of them needs: one grouped Conv2D makes *every*
CONV_2D version 6 (measured with TF 2.21, see EMITTED_TF_2_21).

Confidence of an "accepted" entry:
  observed  the version sits in the mapped part of a real compiled pair (tests/data/coral)
  reported  a public Coral-compiled model or a v16 log shows it compiled (file not held here)
  inferred  from TFLite's versioning rules (op_version.cc) plus a reported neighbour
A version above `accepted` is "unknown" (reported before compiling, not a failure); a version at
or above `refused` is "refused" (a gate violation: the compiler would fail).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgequant.tflite.model import TFLiteModel

PAIRS = "real compiled pairs in tests/data/coral"
MNV2_TF2 = (
    "Coral's tf2_mobilenet_v2_1.0_224_ptq.tflite (TF2 int8 PTQ, held in ../shared/data/coral) "
    "is published compiled as tf2_mobilenet_v2_1.0_224_ptq_edgetpu.tflite in google-coral/test_data"
)
OP_VERSION_CC = "tensorflow/lite/tools/versioning/op_version.cc"
INT8_V2_OPS = (
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "L2_NORMALIZATION",
    "LOGISTIC",
    "MAXIMUM",
    "MAX_POOL_2D",
    "MINIMUM",
    "MUL",
    "PACK",
    "PAD",
    "REDUCE_MAX",
    "REDUCE_MIN",
    "RELU",
    "RELU6",
    "SLICE",
    "SPACE_TO_DEPTH",
    "SPLIT",
    "STRIDED_SLICE",
    "SUB",
    "SUM",
    "TANH",
    "TRANSPOSE",
)


@dataclasses.dataclass(frozen=True)
class VersionEvidence:
    """What is known about one op's versions under compiler 16."""

    op: str
    accepted: int  # highest version known to compile
    accepted_source: str
    confidence: str  # observed / reported / inferred (of `accepted`)
    refused: int | None = None  # lowest version known refused ("Didn't find op ...")
    refused_source: str = ""
    meaning: str = ""  # what the versions above `accepted` encode (op_version.cc)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _e(op, accepted, source, confidence, refused=None, refused_source="", meaning=""):
    return VersionEvidence(op, accepted, source, confidence, refused, refused_source, meaning)


EVIDENCE: dict[str, VersionEvidence] = {
    e.op: e
    for e in (
        _e(
            "CONV_2D",
            3,
            f"v1 in {PAIRS} (mobilenet_v1, deeplabv3); v3 in {MNV2_TF2}",
            "reported",
            6,
            "google-coral/edgetpu#631 (TF 2.9.1, compiler 16.0: 'CONV_2D' version '6')",
            "v4/v8 int16 activations, v5 per-channel hybrid, v6 grouped convolution, v7 int4",
        ),
        _e(
            "DEPTHWISE_CONV_2D",
            3,
            f"v2 in {PAIRS} (deeplabv3, dilated); v3 in {MNV2_TF2}",
            "reported",
            None,
            "",
            "v4/v6 hybrid, v5 int16, v7 int4",
        ),
        _e(
            "FULLY_CONNECTED",
            4,
            f"v4 in {PAIRS} (keras_lstm_mnist_ptq)",
            "observed",
            None,
            "",
            "v5 keep_num_dims (Dense on a 3-D tensor), v6 no bias, v7 int16, v8 sparse",
        ),
        _e(
            "QUANTIZE",
            1,
            f"v1 in {PAIRS} (keras_lstm_mnist_ptq, int8->int8 requantize mapped)",
            "observed",
            3,
            "google-coral/edgetpu#879 (compiler 16.0: 'QUANTIZE' version '3' after QAT)",
            "v2 int16 output, v3 per-channel quantize, v4 int4",
        ),
        _e(
            "TRANSPOSE_CONV",
            3,
            "compiler 2.1 refused v3 (#147, #358) and Coral staff asked to retry with 16.0 "
            "(#147, 2022); no compiled v3 model held",
            "inferred",
            4,
            "google-coral/edgetpu#845 (compiler 16.0: 'TRANSPOSE_CONV' version '4')",
            "v3 bias input, v4 fused activation, v5 int16 quantized bias",
        ),
        _e(
            "EXP",
            1,
            "v1 is the float kernel (EXP is not an Edge TPU op: it runs on the CPU)",
            "inferred",
            2,
            "google-coral/libedgetpu#71 and tensorflow/tflite-micro#2633 (TF 2.16, "
            "compiler 16.0: 'EXP' version '2')",
            "v2 int8, v3 int16",
        ),
        _e(
            "ADD",
            2,
            f"v1 in {PAIRS} (deeplabv3); v2 in {MNV2_TF2}",
            "reported",
            None,
            "",
            "v3+ int16/int64",
        ),
        _e("MEAN", 2, f"v2 in {MNV2_TF2}", "reported", None, "", "v3 int16"),
        _e("SOFTMAX", 2, f"v2 in {PAIRS} (keras_lstm_mnist_ptq)", "observed", None, "", "v3 int16"),
        _e("RESHAPE", 1, f"v1 in {PAIRS}", "observed"),
        _e("UNIDIRECTIONAL_SEQUENCE_LSTM", 1, f"v1 in {PAIRS} (keras_lstm_mnist_ptq)", "observed"),
        # Version 2 of these is the int8 kernel (op_version.cc), in TFLite since 2019: older
        # than compiler 16's TFLite (2021), which parses TF2 int8 CONV_2D v3 / ADD v2 / MEAN v2.
        *(
            _e(
                op,
                2,
                f"{OP_VERSION_CC}: v2 = int8 kernel (2019); {MNV2_TF2}",
                "inferred",
                None,
                "",
                "v3+ int16 or other types",
            )
            for op in INT8_V2_OPS
        ),
        *(
            _e(
                resize,
                3,
                "v3 (half_pixel_centers) mapped by v16: real v16-compiled pose model, v16 logs "
                "(WongKinYiu/yolov7#1672); refused only by compilers <= 15 (#187, #396, #420)",
                "reported",
                None,
                "",
                "v3 half_pixel_centers (or align_corners for nearest), v4 int16",
            )
            for resize in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
        ),
    )
}

# What TF 2.21's converter emits (measured on tiny tf_keras models, uint8 full-integer recipe;
# per-tensor weights give the same versions, and so does int16x8 for CONV_2D (3) and MEAN (2):
# TF 2.21 does not raise these versions for int16 activations, so the uint8 gate, not this
# check, is what catches int16).
EMITTED_TF_2_21 = {
    "ADD": 2,
    "AVERAGE_POOL_2D": 2,
    "CONCATENATION": 2,
    "CONV_2D": 3,  # 6 as soon as one Conv2D has groups > 1
    "DEPTHWISE_CONV_2D": 3,
    "EXP": 2,
    "FULLY_CONNECTED": 4,
    "LOGISTIC": 2,
    "MAX_POOL_2D": 2,
    "MEAN": 2,
    "MUL": 2,
    "QUANTIZE": 1,  # 2 with int16x8 activations
    "RELU": 2,
    "RESIZE_BILINEAR": 3,
    "RESIZE_NEAREST_NEIGHBOR": 3,
    "SOFTMAX": 2,
    "TRANSPOSE_CONV": 2,  # 3 with int16x8
}


@dataclasses.dataclass(frozen=True)
class ConverterFix:
    """A setting that makes the converter emit an older version. `recipe` holds Recipe fields
    to change (empty when the fix is not a recipe field, e.g. a postprocess split)."""

    setting: str
    recipe: dict
    why: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_INT16 = ConverterFix(
    "recipe mode uint8 (int8 activations)",
    {"mode": "uint8"},
    "int16 activations (int16x8) raise the version; the Edge TPU runs 8-bit activations only",
)
_PER_TENSOR = ConverterFix(
    "recipe weights per_tensor (_experimental_disable_per_channel)",
    {"weights": "per_tensor"},
    "a per-channel QUANTIZE is version 3 (op_version.cc); per-tensor quantization emits version 1",
)
_SPLIT = ConverterFix(
    "postprocess on the CPU (postprocess_from before this op)",
    {},
    "the op is not an Edge TPU op: keep it in the float postprocess part instead of quantizing it",
)
# (op, version) -> fix; a version absent here has no known converter fix.
_FIXES: dict[tuple[str, int], ConverterFix] = {
    ("CONV_2D", 4): _INT16,
    ("CONV_2D", 8): _INT16,
    ("DEPTHWISE_CONV_2D", 5): _INT16,
    ("FULLY_CONNECTED", 7): _INT16,
    ("FULLY_CONNECTED", 11): _INT16,
    ("QUANTIZE", 2): _INT16,
    ("QUANTIZE", 3): _PER_TENSOR,
    ("TRANSPOSE_CONV", 3): _INT16,
    ("TRANSPOSE_CONV", 5): _INT16,
    ("TRANSPOSE_CONV", 4): ConverterFix(
        "converter.experimental_new_converter = False, or no fused activation",
        {},
        "version 4 is a fused activation; reported fix in google-coral/edgetpu#845 (TF 2.21 "
        "keeps the activation as a separate op: it emits version 2)",
    ),
    ("EXP", 2): _SPLIT,
    ("EXP", 3): _SPLIT,
    **{(op, v): _INT16 for op in ("ADD", "MEAN", "SOFTMAX", "AVERAGE_POOL_2D") for v in (3,)},
    **{(op, 4): _INT16 for op in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")},
}
# Versions whose cause is the model itself, not a converter setting (the advice names the change).
MODEL_CHANGES = {
    ("CONV_2D", 6): "a grouped Conv2D (groups > 1): split it into per-group Conv2D + Concatenate",
    ("CONV_2D", 5): "a hybrid (dynamic-range) conv: use a full-integer recipe",
    ("FULLY_CONNECTED", 5): "Dense on a 3-D tensor (keep_num_dims): Reshape to 2-D first",
    ("FULLY_CONNECTED", 6): "a Dense layer without bias: use_bias=True",
}


def suggest_converter_fix(op: str, version: int) -> ConverterFix | None:
    """The converter setting that avoids `op` at `version`, or None when none is known."""
    return _FIXES.get((op, version))


@dataclasses.dataclass(frozen=True)
class VersionFinding:
    """One operator code whose version compiler 16 is not known to accept."""

    op: str
    version: int
    count: int  # ops of this code in the model
    verdict: str  # "refused" (the compile fails) or "unknown" (no evidence either way)
    accepted: int | None  # highest version known to compile (None: no evidence for the op)
    evidence: str
    confidence: str
    fix: ConverterFix | None
    model_change: str

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["fix"] = self.fix.to_dict() if self.fix else None
        return d

    def __str__(self) -> str:
        how = f"; try {self.fix.setting}" if self.fix else ""
        how += f"; model change: {self.model_change}" if self.model_change else ""
        return (
            f"{self.op} version {self.version} ({self.count} op(s)) is {self.verdict} by "
            f"compiler 16 (known to accept <= {self.accepted}; {self.evidence}){how}"
        )


def judge_version(op: str, version: int, count: int = 1) -> VersionFinding | None:
    """None when compiler 16 is known to accept `op` at `version` (or the op has no evidence
    row and version 1, the version every compiler parses)."""
    e = EVIDENCE.get(op)
    if e is None:
        if version <= 1:
            return None
        return VersionFinding(
            op,
            version,
            count,
            "unknown",
            None,
            "no compiled model or log holds this op",
            "uncertain",
            suggest_converter_fix(op, version),
            MODEL_CHANGES.get((op, version), ""),
        )
    if version <= e.accepted:
        return None
    refused = e.refused is not None and version >= e.refused
    return VersionFinding(
        op,
        version,
        count,
        "refused" if refused else "unknown",
        e.accepted,
        e.refused_source if refused else e.accepted_source,
        "reported" if refused else e.confidence,
        suggest_converter_fix(op, version),
        MODEL_CHANGES.get((op, version), ""),
    )


def check_op_versions(model: str | Path | bytes | TFLiteModel) -> list[VersionFinding]:
    """Every (op, version) in the model that compiler 16 is not known to accept, refused first.

    Custom ops (TFLite_Detection_PostProcess, edgetpu-custom-op) carry their own versioning and
    are skipped."""
    if isinstance(model, bytes):
        model = TFLiteModel(model)
    elif not isinstance(model, TFLiteModel):
        model = TFLiteModel.load(model)
    counts: dict[tuple[str, int], int] = {}
    for op in model.operators:
        if op.op != "CUSTOM":
            counts[(op.op, op.version)] = counts.get((op.op, op.version), 0) + 1
    findings = [judge_version(op, v, n) for (op, v), n in sorted(counts.items())]
    return sorted((f for f in findings if f), key=lambda f: (f.verdict != "refused", f.op))


def convert_for_compiler16(model, recipe, representative=None):
    """Converts with `recipe`; when compiler 16 would not accept an op version and a converter
    setting avoids it, converts again with that setting and keeps the result if it removed the
    finding. Returns (tflite bytes, the recipe used, record) where the record says what was
    found, what was tried and what was kept."""
    from edgequant.quantize import convert

    content = convert.convert(model, recipe, representative)
    found = check_op_versions(content)
    record = {"findings": [f.to_dict() for f in found], "tried": None, "kept": recipe.name}
    changes: dict = {}
    for f in found:
        if f.fix is not None:
            changes.update(f.fix.recipe)
    if not changes:
        return content, recipe, record
    fixed_recipe = dataclasses.replace(recipe, **changes)
    fixed = convert.convert(model, fixed_recipe, representative)
    after = check_op_versions(fixed)
    record["tried"] = {"changes": changes, "findings": [f.to_dict() for f in after]}
    if len(after) < len(found):
        record["kept"] = "fixed"
        return fixed, fixed_recipe, record
    return content, recipe, record
