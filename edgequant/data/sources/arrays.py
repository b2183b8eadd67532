"""`.npy`/`.npz` arrays taken as model-ready inputs, and stored images held in memory
(preprocessed batch by batch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgequant.data import checks
from edgequant.data.preprocess import apply_batch
from edgequant.data.sources.base import Batch, Source, single_input
from edgequant.errors import UserError
from edgequant.tensors import check_shape


@dataclasses.dataclass
class ArraySource(Source):
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(indices), batch_size):
            sel = indices[start : start + batch_size]
            x = {k: np.asarray(v[sel], dtype=np.float32) for k, v in self.arrays.items()}
            yield x, None if self.labels is None else self.labels[sel]

    def take(self, indices: np.ndarray) -> Batch:
        x = {k: np.asarray(v[indices], dtype=np.float32) for k, v in self.arrays.items()}
        return x, None if self.labels is None else self.labels[indices]

    def renamed(self, input_names: Sequence[str]) -> ArraySource:
        names = list(input_names)
        if len(names) != len(self.arrays):
            raise UserError(
                f"{self.description} has {len(self.arrays)} input(s) ({', '.join(self.arrays)}); "
                f"the model has {len(names)} ({', '.join(names)})"
            )
        arrays = dict(zip(names, self.arrays.values(), strict=True))
        return dataclasses.replace(self, input_names=names, arrays=arrays)


@dataclasses.dataclass
class ImageArraySource(Source):
    """Stored images in memory (uint8 [N, H, W(, C)]), preprocessed batch by batch for the model
    input: memory holds the stored images, never a model-ready copy of all of them (10,000
    images made 224x224x3 float32 would be 6 GB)."""

    images: np.ndarray = None

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(indices), batch_size):
            yield self.take(indices[start : start + batch_size])

    def take(self, indices: np.ndarray) -> Batch:
        x = apply_batch(self.images[indices], self.preprocessing)
        return {self.input_names[0]: x}, None if self.labels is None else self.labels[indices]

    def renamed(self, input_names: Sequence[str]) -> ImageArraySource:
        names = list(input_names)
        if len(names) != 1:
            raise UserError(
                f"{self.description} feeds one image input; the model has {len(names)} "
                f"({', '.join(names)})"
            )
        return dataclasses.replace(self, input_names=names)


def _labels_from(arr, n: int, where: str) -> np.ndarray:
    y = np.asarray(arr)
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{where}: 'labels' must be {n} integers, got {y.dtype} {list(y.shape)}")
    y = y.astype(np.int64)
    checks.refuse_negative_labels(y, where)
    return y


def open_arrays(path: Path, inputs) -> ArraySource:
    """`.npy` (one input) or `.npz` (one array per input name, optional `labels`)."""
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"cannot read arrays from {path}: {e}") from None
    if isinstance(data, np.ndarray):
        arrays = {single_input(inputs, f"{path.name} (one array)").name: data}
        labels = None
    else:
        keys = list(data.keys())
        labels = None
        names = [k for k in keys if k != "labels"]
        if len(inputs) == 1 and len(names) == 1:
            arrays = {inputs[0].name: data[names[0]]}
        else:
            missing = [t.name for t in inputs if t.name not in names]
            if missing:
                raise UserError(
                    f"{path.name} has arrays {names}; the model's inputs are "
                    f"{[t.name for t in inputs]} (missing {missing})"
                )
            arrays = {t.name: data[t.name] for t in inputs}
            # An array that feeds no input and is not `labels` (a misspelled 'label', 'y'):
            # ignoring it would silently turn a labelled run into an unlabelled one.
            extra = [k for k in names if k not in arrays]
            if extra:
                raise UserError(
                    f"{path.name}: arrays {extra} feed no input of the model "
                    f"({[t.name for t in inputs]}); labels must be named 'labels'"
                )
        if "labels" in keys:
            n = len(next(iter(arrays.values())))
            labels = _labels_from(data["labels"], n, path.name)
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise UserError(f"{path.name}: arrays have different lengths {sizes}")
    for t in inputs:
        check_shape(t.name, arrays[t.name].shape[1:], t.sample_shape, path.name)
    for name, values in arrays.items():
        checks.refuse_non_finite(name, values, str(path))
    n = next(iter(sizes.values()))
    return ArraySource(
        "arrays", f"arrays:{path}", [t.name for t in inputs], n, labels, None, [], None, arrays
    )
