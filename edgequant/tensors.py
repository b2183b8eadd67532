"""The tensor contracts every layer shares: a named tensor, shape checks, (de)quantization.

They live in this leaf module, which imports nothing of edgequant but `errors`, because both
sides of several seams need them: the data layer checks samples against a model's inputs, the
model loader describes inputs and outputs, the runner quantizes what it feeds. Kept in any one
of those, the others would import it and the layers would import each other in a circle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from edgequant.errors import UserError


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One named model input or output; `shape[0]` is the batch (None when dynamic)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @property
    def sample_shape(self) -> tuple[int | None, ...]:
        return tuple(self.shape[1:])


def shapes_match(got, want) -> bool:
    """A sample shape fits a model shape when ranks agree and every fixed dimension matches."""
    got, want = tuple(got), tuple(want)
    return len(got) == len(want) and all(
        w is None or w == g for g, w in zip(got, want, strict=True)
    )


def check_shape(name: str, got: Sequence[int], want: Sequence[int | None], where: str) -> None:
    """Refuses data that cannot feed the input, naming both shapes."""
    if not shapes_match(got, want):
        raise UserError(
            f"{where}: samples for input '{name}' have shape {list(got)}, the model expects "
            f"{[w if w is not None else -1 for w in want]}"
        )


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """float -> integer tensor values: round(x / scale) + zero_point, saturated to the dtype."""
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """integer -> float; int64 first so uint8 minus zero point cannot wrap around."""
    return (scale * (q.astype(np.int64) - zero_point)).astype(np.float32)
