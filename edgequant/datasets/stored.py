"""A named dataset as stored on disk (uint8 images, integer labels), and its seeded splits.

Loaders of the registry return a `Stored`; `edgequant.datasets.load` preprocesses it once into
the data layer's `Dataset`. Tests and benchmarks that write the stored images back out (IDX
files, image folders) read them here, before any preprocessing.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from edgequant.data import splits


class Images(NamedTuple):
    """One split's stored images and their labels, in the same order."""

    x: np.ndarray
    y: np.ndarray


@dataclasses.dataclass(frozen=True)
class Stored:
    name: str
    source: str  # where the arrays came from, recorded in every run's manifest
    parts: dict[str, Images]  # train / val / test, those present
    num_classes: int
    class_names: list[str] | None = None

    @property
    def train(self) -> Images | None:
        return self.parts.get("train")

    @property
    def val(self) -> Images | None:
        return self.parts.get("val")

    @property
    def test(self) -> Images | None:
        return self.parts.get("test")

    def info(self) -> dict:
        sizes = {
            k: len(self.parts[k].y) if k in self.parts else 0 for k in ("train", "val", "test")
        }
        return {"name": self.name, "source": self.source, "split_sizes": sizes}


def split_arrays(
    name: str,
    arrays: dict[str, np.ndarray],
    source: str,
    *,
    num_classes: int,
    image_shape: tuple[int, ...],
    seed: int,
    val_fraction: float,
    offline_fractions: tuple[float, float] = (0.1, 0.2),
    class_names: list[str] | None = None,
) -> Stored:
    """Seeded, stratified splits of arrays keyed x_train/y_train/x_test/y_test (the official
    test set stays the test split; validation comes out of train) or x_all/y_all (no official
    split: `offline_fractions` = (validation, test) are carved out)."""
    labels = {k: v.astype(np.int64) for k, v in arrays.items() if k.startswith("y_")}
    for k, y in labels.items():
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{source}: labels {k} outside 0..{num_classes - 1}")
    parts: dict[str, Images] = {}
    if "x_all" in arrays:
        x, y = arrays["x_all"], labels["y_all"]
        val, test = offline_fractions
        tr, va, te = splits.stratified_split(y, [1 - val - test, val], seed)
        parts = {"train": Images(x[tr], y[tr]), "val": Images(x[va], y[va])}
        parts["test"] = Images(x[te], y[te])
        return Stored(name, source, parts, num_classes, class_names)
    if "x_train" in arrays:
        x, y = arrays["x_train"], labels["y_train"]
        _check_images(x, y, source, "train", image_shape)
        tr, va = splits.stratified_split(y, [1 - val_fraction], seed)
        parts["train"], parts["val"] = Images(x[tr], y[tr]), Images(x[va], y[va])
    if "x_test" in arrays:
        _check_images(arrays["x_test"], labels["y_test"], source, "test", image_shape)
        parts["test"] = Images(arrays["x_test"], labels["y_test"])
    return Stored(name, source, parts, num_classes, class_names)


def _check_images(x, y, source: str, part: str, image_shape: tuple[int, ...]) -> None:
    if x.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"{source}: {part} images have shape {list(x.shape)}, expected [N, "
            f"{', '.join(map(str, image_shape))}]"
        )
    if len(x) != len(y):
        raise ValueError(f"{source}: {len(x)} {part} images but {len(y)} labels")
