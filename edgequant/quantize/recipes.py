"""Post-training quantization recipes as typed data.

A recipe is a frozen dataclass that round-trips through JSON and is written beside the model it
produced (`<name>.tflite` + `<name>.recipe.json`), so every artifact can be traced to the exact
settings that made it. Names follow the converter modes users already know.

| name          | weights      | activations     | model I/O | float ops allowed |
|---------------|--------------|-----------------|-----------|-------------------|
| fp32          | float32      | float32         | float32   | yes               |
| dynamic_range | int8         | float (dynamic) | float32   | yes               |
| float16       | float16      | float32         | float32   | yes               |
| int8_fallback | int8         | int8            | float32   | yes               |
| int8          | int8         | int8            | int8      | no                |
| uint8         | int8         | int8            | uint8     | no  (Edge TPU form)|
| int16x8       | int8         | int16           | float32   | no                |

The same record describes every other way an artifact is made, so one file format and one writer
(`convert.write`) cover them all: `backend` says which tool quantized it (TFLiteConverter or the
AI Edge Quantizer, whose recipe name is `aeq_recipe`), `float_layers` lists the tensors a
mixed-precision variant keeps in float, `qat` holds the quantization-aware fine-tuning that came
before the conversion, and `note` says why the artifact exists (a recovery rung's step).
Recipe files written before these fields existed (name, mode, weights, calibration_size) still
load: the new fields default to a plain TFLiteConverter recipe.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from edgequant.data import calibration
from edgequant.jsondata import JsonData


class Mode(str, enum.Enum):
    FP32 = "fp32"
    DYNAMIC_RANGE = "dynamic_range"
    FLOAT16 = "float16"
    INT8_FALLBACK = "int8_fallback"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16X8 = "int16x8"


class Granularity(str, enum.Enum):
    PER_CHANNEL = "per_channel"
    PER_TENSOR = "per_tensor"


class Backend(str, enum.Enum):
    TFLITE_CONVERTER = "tflite-converter"
    AI_EDGE_QUANTIZER = "ai-edge-quantizer"


@dataclasses.dataclass(frozen=True)
class QatSettings(JsonData):
    """The quantization-aware fine-tuning a model went through before it was converted.

    `layers` and `noop_layers` are the fnmatch patterns given to `qat.annotate`; `annotated` is
    what they resolved to (the layers wrapped for fake quantization, no-op ones included), so a
    reader need not re-run the matching against the model to know what was trained quantized.
    """

    epochs: int
    learning_rate: float
    layers: tuple[str, ...] = ("*",)
    noop_layers: tuple[str, ...] = ()
    per_tensor: bool = False
    annotated: tuple[str, ...] = ()
    samples: int | None = None  # labelled training samples, when a subset was used

    NOUN = "qat setting"

    def __post_init__(self):
        for f in ("layers", "noop_layers", "annotated"):
            object.__setattr__(self, f, tuple(str(x) for x in getattr(self, f)))
        object.__setattr__(self, "learning_rate", float(self.learning_rate))
        if int(self.epochs) != self.epochs or self.epochs < 0:
            raise ValueError(f"qat epochs must be a non-negative integer, not {self.epochs!r}")
        object.__setattr__(self, "epochs", int(self.epochs))

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "layers": list(self.layers),
            "noop_layers": list(self.noop_layers),
            "per_tensor": self.per_tensor,
            "annotated": list(self.annotated),
            "samples": self.samples,
        }


_CALIBRATED = {Mode.INT8_FALLBACK, Mode.INT8, Mode.UINT8, Mode.INT16X8}
_FULL_INTEGER = {Mode.INT8, Mode.UINT8, Mode.INT16X8}
_IO_DTYPE = {Mode.INT8: "int8", Mode.UINT8: "uint8"}
# What each converter mode stores (the table above): (weights, activations).
_PRECISION = {
    Mode.FP32: ("float32", "float32"),
    Mode.DYNAMIC_RANGE: ("int8", "float32"),
    Mode.FLOAT16: ("float16", "float32"),
    Mode.INT8_FALLBACK: ("int8", "int8"),
    Mode.INT8: ("int8", "int8"),
    Mode.UINT8: ("int8", "int8"),
    Mode.INT16X8: ("int8", "int16"),
}
_AEQ_DTYPE = {"i4": "int4", "i8": "int8", "i16": "int16", "fp16": "float16", "fp32": "float32"}


@dataclasses.dataclass(frozen=True)
class Recipe(JsonData):
    """How one artifact was made. `name` is the artifact's file stem.

    `mode` is the TFLiteConverter mode; an AI Edge Quantizer recipe has none (its `aeq_recipe`
    names what it did) and quantizes the fp32 conversion.
    """

    name: str
    mode: Mode | None
    weights: Granularity = Granularity.PER_CHANNEL
    calibration_size: int = calibration.DEFAULT_SIZE
    backend: Backend = Backend.TFLITE_CONVERTER
    float_layers: tuple[str, ...] = ()
    aeq_recipe: str | None = None
    qat: QatSettings | None = None
    note: str = ""

    NOUN = "recipe"

    def __post_init__(self):
        backend = Backend(self.backend)
        object.__setattr__(self, "backend", backend)
        object.__setattr__(self, "mode", None if self.mode is None else Mode(self.mode))
        object.__setattr__(self, "weights", Granularity(self.weights))
        object.__setattr__(self, "float_layers", tuple(str(x) for x in self.float_layers))
        if isinstance(self.qat, dict):
            object.__setattr__(self, "qat", QatSettings.from_dict(self.qat))
        if backend is Backend.AI_EDGE_QUANTIZER:
            if not self.aeq_recipe or self.mode is not None:
                raise ValueError(
                    f"recipe {self.name}: an ai-edge-quantizer recipe names its aeq_recipe "
                    "and has no converter mode"
                )
        elif self.mode is None or self.aeq_recipe is not None:
            raise ValueError(
                f"recipe {self.name}: a tflite-converter recipe needs a mode and no aeq_recipe"
            )
        if self.float_layers and self.mode is not Mode.INT8_FALLBACK:
            raise ValueError(
                f"recipe {self.name}: float_layers need mode int8_fallback (float ops allowed)"
            )
        if self.needs_calibration and self.calibration_size <= 0:
            raise ValueError(f"recipe {self.name}: calibration_size must be positive")

    @property
    def needs_calibration(self) -> bool:
        return self.mode in _CALIBRATED

    @property
    def full_integer(self) -> bool:
        """True when no float op may remain: the converter must fail rather than fall back."""
        return self.mode in _FULL_INTEGER

    @property
    def io_dtype(self) -> str:
        """The model's input and output dtype this recipe promises (the table above)."""
        if self.mode is None:
            raise ValueError(f"recipe {self.name}: the AI Edge Quantizer decides the I/O dtype")
        return _IO_DTYPE.get(self.mode, "float32")

    @property
    def precision(self) -> tuple[str, str]:
        """(weights, activations) as stored: "mixed" activations when layers stay float. An AI
        Edge Quantizer recipe says it in its name (`static_wi8_ai16`: int8 weights, int16
        activations)."""
        if self.mode is None:
            w, a = re.search(r"_w(\w+?)_a(\w+)$", self.aeq_recipe or "").groups()
            return _AEQ_DTYPE[w], _AEQ_DTYPE[a]
        weights, activations = _PRECISION[self.mode]
        return weights, "mixed" if self.float_layers else activations

    def to_dict(self) -> dict:
        """Every field, always: readers of deploy.json index `recipe["backend"]` directly."""
        return {
            "name": self.name,
            "mode": None if self.mode is None else self.mode.value,
            "weights": self.weights.value,
            "calibration_size": self.calibration_size,
            "backend": self.backend.value,
            "float_layers": list(self.float_layers),
            "aeq_recipe": self.aeq_recipe,
            "qat": None if self.qat is None else self.qat.to_dict(),
            "note": self.note,
        }


PTQ_RECIPES = tuple(m.value for m in Mode)


def get(
    name: str, weights: str = "per_channel", calibration_size: int = calibration.DEFAULT_SIZE
) -> Recipe:
    """The named recipe with the given weight granularity and calibration size.

    A non-default granularity is added to the artifact name (`uint8_per_tensor`) so both can sit
    in one workdir.
    """
    if name not in PTQ_RECIPES:
        raise ValueError(f"unknown recipe '{name}'; valid recipes: {', '.join(PTQ_RECIPES)}")
    if weights not in {g.value for g in Granularity}:
        raise ValueError(f"unknown weight granularity '{weights}'; use per_channel or per_tensor")
    granularity = Granularity(weights)
    stem = name if granularity is Granularity.PER_CHANNEL else f"{name}_{granularity.value}"
    return Recipe(stem, Mode(name), granularity, calibration_size)


def aeq(recipe_name: str, calibration_size: int) -> Recipe:
    """The record of one AI Edge Quantizer recipe applied to the fp32 conversion."""
    return Recipe(
        f"aeq_{recipe_name}",
        None,
        calibration_size=calibration_size,
        backend=Backend.AI_EDGE_QUANTIZER,
        aeq_recipe=recipe_name,
    )


def mixed(
    float_layers, weights: str = "per_channel", calibration_size: int = 0, note: str = ""
) -> Recipe:
    """int8 with `float_layers` (converted tensor names) kept in float: selective quantization,
    for CPUs only. Named `mixed_k<number of float layers>`."""
    return dataclasses.replace(
        get("int8_fallback", weights, calibration_size or calibration.DEFAULT_SIZE),
        name=f"mixed_k{len(float_layers)}",
        float_layers=tuple(float_layers),
        note=note,
    )
