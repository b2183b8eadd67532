"""The in-memory dataset a training run works on: labelled samples and their seeded splits.

A named training dataset (`edgequant.datasets.load`) returns one. Its splits are the data
layer's one split type, `sources.Split`: index sets over a single in-memory source, exactly like
the hold-out splits of a user's streamed data, so every consumer takes one kind of split.
Stored images are preprocessed for the model's input as they are read (`ImageArraySource`):
a split materialized with `.arrays()` (training, calibration) is preprocessed once per call,
and an evaluation pass streams batch by batch, so large model inputs never hold a model-ready
copy of the whole dataset.

The registry does not know the model its data will feed, so the samples carry the neutral input
name `INPUT`; a caller with a model renames a split to its inputs (`split.renamed(names)`),
which costs nothing (the arrays are shared). Keeping the rename at the caller, rather than
making the Dataset model-aware, keeps the registry usable before any model exists (training).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from edgequant.data.preprocess import Preprocessing
from edgequant.data.sources import ArraySource, ImageArraySource, Split

SPLITS = ("train", "val", "test")
# The neutral name of a training dataset's one input (see the module docstring).
INPUT = "input"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Named splits of one labelled in-memory source; `source` says where the data came from."""

    name: str
    source: str
    train: Split | None
    val: Split | None
    test: Split | None
    num_classes: int = 0

    @classmethod
    def from_parts(
        cls,
        name: str,
        source: str,
        parts: Mapping[str, tuple[np.ndarray, np.ndarray]],
        num_classes: int,
        class_names: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
    ) -> Dataset:
        """A dataset from (samples, labels) per split name: one ArraySource holds them all and
        each split is the index range of its part. The source carries the class count (as
        `class_names`, the indices when unnamed), so an evaluator refuses a model whose outputs
        do not have that many scores. With `preprocessing`, the samples are stored images,
        preprocessed as they are read; without, they are model-ready arrays."""
        unknown = set(parts) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; valid: {', '.join(SPLITS)}")
        present = [k for k in SPLITS if k in parts]
        x = np.concatenate([np.asarray(parts[k][0]) for k in present]) if present else None
        y = (
            np.concatenate([np.asarray(parts[k][1], np.int64) for k in present])
            if present
            else None
        )
        names = class_names or [str(i) for i in range(num_classes)]
        n = 0 if y is None else len(y)
        if preprocessing is not None:
            src = ImageArraySource(
                "images", source, [INPUT], n, y, names, [], preprocessing, images=x
            )
        else:
            arrays = {} if x is None else {INPUT: x}
            src = ArraySource("arrays", source, [INPUT], n, y, names, arrays=arrays)
        splits: dict[str, Split | None] = dict.fromkeys(SPLITS)
        start = 0
        for k in present:
            n = len(parts[k][1])
            splits[k] = Split(src, np.arange(start, start + n), k)
            start += n
        return cls(name, source, num_classes=num_classes, **splits)

    def info(self) -> dict:
        sizes = {k: (len(s) if s is not None else 0) for k, s in self._splits().items()}
        return {"name": self.name, "source": self.source, "split_sizes": sizes}

    def _splits(self) -> dict[str, Split | None]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def require(self, split: str) -> Split:
        """Returns a split or says which one is missing from which source."""
        s = self._splits().get(split)
        if s is None or len(s) == 0:
            raise ValueError(
                f"dataset '{self.name}'' from {self.source} has no '{split}' split; "
                "point data.dir at data with that split"
            )
        return s
