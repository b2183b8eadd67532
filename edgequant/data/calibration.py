"""The representative dataset the converter calibrates activation ranges on.

Drawn only from the training split, class-stratified, with the training preprocessing, keyed
by input name like every sample, and checked before it reaches the converter: TFLiteConverter
turns an empty, NaN-laden or mis-shaped set into an opaque MLIR error or, worse, a model with
collapsed ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from edgequant import progress
from edgequant.data.sources import Split
from edgequant.tensors import shapes_match

# 500 samples = 50 per class of a 10-class set. Ranges are per-tensor min/max, which stop moving
# after a few hundred varied samples (TF's guide suggests ~100-500); more only slows conversion,
# fewer risks missing the tails of rarely-activated channels.
DEFAULT_SIZE = 500


def build(
    split: Split, n: int, seed: int, input_shapes: Mapping[str, tuple] | None = None
) -> dict[str, np.ndarray]:
    """n class-stratified samples of `split` (model-ready), float32 by input name, each input
    validated (and checked against `input_shapes[name]` when given)."""
    if n <= 0:
        raise ValueError(f"calibration size must be positive, got {n}")
    if len(split) == 0:
        raise ValueError(
            f"calibration set is empty: the {split.name} split yielded 0 samples; check data.dir"
        )
    x, _ = split.subset(n, seed).arrays()
    for name, samples in x.items():
        shape = (input_shapes or {}).get(name, samples.shape[1:])
        validate(samples, shape)
    return x


def validate(x: np.ndarray, input_shape: tuple[int, ...], dtype=np.float32) -> None:
    """Raises ValueError naming the first problem: empty, wrong rank/shape/dtype, NaN or inf."""
    x = np.asarray(x)
    if x.size == 0 or len(x) == 0:
        raise ValueError("calibration set is empty: 0 samples")
    if x.dtype != dtype:
        raise ValueError(
            f"calibration samples have dtype {x.dtype}, model input expects {np.dtype(dtype)}"
        )
    want = tuple(input_shape)
    got = tuple(x.shape[1:])
    if not shapes_match(got, want):
        raise ValueError(
            f"calibration samples have shape {list(x.shape[1:])}, model input expects {list(input_shape)}"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0][0])
        kind = "NaN" if np.isnan(x).any() else "inf"
        raise ValueError(f"calibration set contains {kind} values (first at sample {first})")


def as_generator(
    samples: dict[str, np.ndarray],
) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """The converter's `representative_dataset`: one batch-1 sample per step, keyed by the
    signature's input names (so multi-input models need no ordering convention)."""
    n = len(next(iter(samples.values())))

    def gen() -> Iterator[dict[str, np.ndarray]]:
        for i in progress.track(range(n), "calibrating", unit="sample"):
            yield {k: np.asarray(v[i : i + 1], np.float32) for k, v in samples.items()}

    return gen
