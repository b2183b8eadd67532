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
"""

from __future__ import annotations

import dataclasses
import enum

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


_CALIBRATED = {Mode.INT8_FALLBACK, Mode.INT8, Mode.UINT8, Mode.INT16X8}
_FULL_INTEGER = {Mode.INT8, Mode.UINT8, Mode.INT16X8}
_IO_DTYPE = {Mode.INT8: "int8", Mode.UINT8: "uint8"}


@dataclasses.dataclass(frozen=True)
class Recipe(JsonData):
    """One post-training quantization setting. `name` is the artifact's file stem."""

    name: str
    mode: Mode
    weights: Granularity = Granularity.PER_CHANNEL
    calibration_size: int = calibration.DEFAULT_SIZE

    NOUN = "recipe"

    def __post_init__(self):
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "weights", Granularity(self.weights))
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
        return _IO_DTYPE.get(self.mode, "float32")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "mode": self.mode.value,
            "weights": self.weights.value,
            "calibration_size": self.calibration_size,
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
