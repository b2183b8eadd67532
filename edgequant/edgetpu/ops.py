"""What the Edge TPU supports, as data: one row per TFLite builtin, with its documented
constraints, where each fact comes from, the minimum runtime version where known, and how sure
we are. The analyzer reads this table; nothing else hard-codes op names.

Sources (see ../shared/research/edgetpu.md for the quotes):
  DOC  coral.ai/docs/edgetpu/models-intro "Supported operations" (current table, and its 2019 text)
  CHG  google-coral/edgetpu CHANGES.md (runtime 13 added ExpandDims, Pack, Quantize, Sum, TransposeConv)
  OBS  observed in real compiled models (Coral test_data pairs, published compiler logs)
Confidence: "documented" (a Coral document says so), "observed" (seen in real compiler output,
not documented), "uncertain" (depends on sizes the compiler does not document).
"""

from __future__ import annotations

import dataclasses

DOC = "coral.ai/docs/edgetpu/models-intro#supported-operations"
CHG = "google-coral/edgetpu CHANGES.md"
# Op version 3 of the resizes (half_pixel_centers, the TF2 default) was refused by compilers 14
# and 15 as "Operation version not supported" (google-coral/edgetpu#187, #396, #420; the v14
# tiny_yolo log in tests/data/compiler_f3.txt) and mapped by 16.0: a real pose model compiled by
# v16 keeps no RESIZE_BILINEAR v3 on the CPU, and v16 logs of TF2 YOLO exports show
# RESIZE_NEAREST_NEIGHBOR "Mapped to Edge TPU" (WongKinYiu/yolov7#1672, mathieugalle log F1).
RESIZE_V3 = (
    "google-coral/edgetpu#187, #396, #420 (v14/v15 refuse version 3); "
    "real v16-compiled pose model and v16 logs (yolov7#1672) map it"
)
# TILE is absent from Coral's table, yet compiler 16 mapped it inside a real compiled
# segmentation model (the op is kept out of edgetpu-custom-op in none of them). One model is thin
# evidence and its size limits are unknown, hence "uncertain".
TILE_SRC = "observed: a real v16-compiled segmentation model maps TILE (not in Coral's table)"
COMPILER_MAJOR = 16  # the last public edgetpu_compiler (16.0.384591198, 2021)


# Every constraint name a row may carry; rules._constraint implements each one. A name outside
# this set fails at import (a typo must not read as "no constraint", i.e. supported).
RULES = frozenset(
    {
        "concat_constant_zero",
        "fc_default_weights",
        "fc_output_1d",
        "mean_spatial_size",
        "mean_z_multiple_of_4",
        "no_batch_axis",
        "no_batch_pad",
        "no_fused_activation",
        "prelu_alpha_1d",
        "quantize_int_to_int",
        "resize_exact",
        "resize_large",
        "reshape_large",
        "same_dilation",
        "softmax_1d",
        "strides_one",
    }
)


@dataclasses.dataclass(frozen=True)
class OpSupport:
    op: str  # TFLite builtin name
    constraints: tuple[str, ...] = ()  # names from RULES, checked by rules._constraint
    note: str = ""
    source: str = DOC
    min_runtime: int | None = None
    confidence: str = "documented"
    # Older compilers' limits (the last public compiler, 16.0, has no known version limit): ((last compiler major it applies to, highest op version), ...).
    older_max_version: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        unknown = sorted(set(self.constraints) - RULES)
        if unknown:
            raise ValueError(f"{self.op}: unknown rule name(s) {unknown}; known: {sorted(RULES)}")

    def version_limit(self, compiler_major: int) -> int | None:
        """Highest op version compiler `compiler_major` maps (None: no known limit)."""
        for last_major, limit in sorted(self.older_max_version):
            if compiler_major <= last_major:
                return limit
        return None


_ROWS = (
    OpSupport("ADD"),
    OpSupport("AVERAGE_POOL_2D", ("no_fused_activation",), "No fused activation function."),
    OpSupport(
        "CONCATENATION",
        ("no_fused_activation", "concat_constant_zero"),
        "No fused activation; a constant input must be all zeros with exactly 2 inputs.",
    ),
    OpSupport("CONV_2D", ("same_dilation",), "Same dilation in x and y."),
    OpSupport("DEPTHWISE_CONV_2D", ("same_dilation",), "Same dilation in x and y."),
    OpSupport("EXPAND_DIMS", (), "", CHG, 13),
    OpSupport(
        "FULLY_CONNECTED",
        ("fc_default_weights", "fc_output_1d"),
        "Default weight format only; output tensor one-dimensional.",
    ),
    OpSupport("L2_NORMALIZATION"),
    OpSupport("LOGISTIC"),
    OpSupport(
        "UNIDIRECTIONAL_SEQUENCE_LSTM", (), "Unidirectional LSTM only.", DOC, None, "observed"
    ),
    OpSupport("MAXIMUM"),
    OpSupport("MAX_POOL_2D", ("no_fused_activation",), "No fused activation function."),
    OpSupport(
        "MEAN",
        ("no_batch_axis", "mean_z_multiple_of_4", "mean_spatial_size"),
        "No batch reduction; a z-reduction needs z a multiple of 4; a large H x W is not mapped.",
    ),
    OpSupport("MINIMUM"),
    OpSupport("MUL"),
    OpSupport("PACK", ("no_batch_axis",), "No packing in the batch dimension.", DOC, 13),
    OpSupport("PAD", ("no_batch_pad",), "No padding in the batch dimension."),
    OpSupport("PRELU", ("prelu_alpha_1d",), "Alpha must be 1-dimensional."),
    OpSupport(
        "QUANTIZE",
        ("quantize_int_to_int",),
        "Requantization int->int maps; a float->int QUANTIZE stays on the CPU.",
        CHG,
        13,
    ),
    OpSupport("REDUCE_MAX", ("no_batch_axis",), "Cannot operate on the batch dimension."),
    OpSupport("REDUCE_MIN", ("no_batch_axis",), "Cannot operate on the batch dimension."),
    OpSupport("RELU"),
    OpSupport("RELU6"),
    OpSupport("RELU_N1_TO_1"),
    OpSupport(
        "RESHAPE",
        ("reshape_large",),
        "Certain reshapes might not be mapped for large tensor sizes.",
    ),
    *(
        OpSupport(
            resize,
            ("resize_exact", "resize_large"),
            "Might not be mapped, depending on sizes, to avoid loss in precision; version 3 "
            "(half_pixel_centers) maps from compiler 16 on (" + RESIZE_V3 + ").",
            DOC,
            None,
            "uncertain",
            ((15, 2),),
        )
        for resize in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
    ),
    OpSupport("RSQRT", (), "", DOC, 14, "uncertain"),
    OpSupport("SLICE"),
    OpSupport("SOFTMAX", ("softmax_1d",), "1-D input (innermost dim), at most 16,000 elements."),
    OpSupport("SPACE_TO_DEPTH"),
    OpSupport("SPLIT", ("no_batch_axis",)),
    OpSupport("SQUEEZE", (), "Only when no relayout is needed (leading 1s)."),
    OpSupport(
        "STRIDED_SLICE", ("strides_one",), "All strides 1, ellipsis-axis-mask and new-axis-mask 0."
    ),
    OpSupport("SUB"),
    OpSupport("SUM", ("no_batch_axis",), "", CHG, 13),
    OpSupport("SQUARED_DIFFERENCE", (), "", DOC, 14, "uncertain"),
    OpSupport("TANH"),
    OpSupport(
        "TILE", (), "Not in Coral's table; size limits unknown.", TILE_SRC, None, "uncertain"
    ),
    OpSupport("TRANSPOSE", (), "", DOC, 14, "uncertain"),
    OpSupport("TRANSPOSE_CONV", (), "", CHG, 13),
)

# Rules resting on thin evidence: a failure is reported as the compiler's "unspecified
# limitation" with confidence "uncertain" even when the op's row is documented.
UNCERTAIN_RULES = {
    # Coral staff on google-coral/edgetpu#461: a MEAN over 1x256x128x3 is "not able to mapped";
    # split into 64x128 parts it mapped (8,192 elements per channel). A GAP over 1x256x256x32
    # crashed compiler 14 (#183). The threshold between 8,192 and 32,768 is a guess.
    "mean_spatial_size": "google-coral/edgetpu#461, #183",
}
MEAN_MAX_SPATIAL = 16384
# Resizes: "Depending on input/output size, this operation might not be mapped ... to avoid loss
# in precision" (DOC). Real cases: a 2x bilinear upsampling to 512x512x32 was "not mapped due to
# some unspecified limitation" while the same model to 128x128 mapped (google-coral/edgetpu#31);
# a UNet maps at 128x128 but not at 256x256 (#187, compiler 16); DeepLab's 33x33 -> 513x513
# (16x) and 1x1 -> 33x33 resizes stay on the CPU in the real compiled pair (tests/data/coral),
# while 2x nearest upsampling in YOLO/FPN heads maps (v16 logs, yolov7#1672, mathieugalle F1).
# So an output above 128x128 per channel, or a factor above 8, is predicted on the CPU
# ("uncertain": the true thresholds lie between these points). Predicting the CPU for a resize
# that maps costs a little speed; predicting the Edge TPU for one that does not hides a cut.
UNCERTAIN_RULES["resize_large"] = "google-coral/edgetpu#31, #187; deeplabv3 compiled pair"
RESIZE_MAX_OUTPUT_AREA = 128 * 128
RESIZE_MAX_FACTOR = 8
# RESHAPE: "Certain reshapes might not be mapped for large tensor sizes" (DOC). YOLOv5s compiled
# by v16 at 384 and 512 input left RESHAPEs of the head on the CPU as "unspecified limitation"
# (google-coral/edgetpu#512: its largest head reshape holds 3x48x48x85 = 587,520 elements at
# 384), while Coral's SSD MobileNet v2 maps its [1, 1917, 91] class reshape (174,447 elements;
# ssd_mobilenet_v2_coco_quant_postprocess_edgetpu.tflite in google-coral/test_data).
UNCERTAIN_RULES["reshape_large"] = "google-coral/edgetpu#512 (YOLOv5s at 384/512)"
RESHAPE_MAX_ELEMENTS = 2**18
if not set(UNCERTAIN_RULES) <= RULES:
    raise ValueError(f"UNCERTAIN_RULES names unknown rules: {sorted(set(UNCERTAIN_RULES) - RULES)}")

SUPPORTED: dict[str, OpSupport] = {row.op: row for row in _ROWS}

# Ops the compiler never maps, with the status it prints (OBS: Coral test_data and issue logs).
NEVER_MAPPED = {
    "DEQUANTIZE": "Operation is working on an unsupported data type",
}

# Op versions compiler 16 parses: edgetpu/versions.py (evidence per op and version).

# Ops that exist only as CPU kernels on the runtime side (custom detection/pose decoders).
CUSTOM_NOTE = (
    "custom op: the Edge TPU runs only builtin ops; custom ops such as "
    "TFLite_Detection_PostProcess or PoseNet decoders always run on the CPU"
)
