"""The in-memory dataset a training run works on: labelled arrays and their seeded splits.

A named training dataset (`edgequant.datasets.load`) returns one, preprocessed once, so
training, calibration, diagnosis and evaluation all read the same arrays. Its splits are the
data layer's one split type, `sources.Split`: index sets over a single `ArraySource`, exactly
like the hold-out splits of a user's streamed data, so every consumer takes one kind of split.

The registry does not know the model its data will feed, so the samples carry the neutral input
name `INPUT`; a caller with a model renames a split to its inputs (`split.renamed(names)`),
which costs nothing (the arrays are shared). Keeping the rename at the caller, rather than
making the Dataset model-aware, keeps the registry usable before any model exists (training).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from edgequant.data.sources import ArraySource, Split

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
    ) -> Dataset:
        """A dataset from (samples, labels) per split name: one ArraySource holds them all and
        each split is the index range of its part."""
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
        src = ArraySource(
            "arrays",
            source,
            [INPUT],
            0 if y is None else len(y),
            y,
            class_names,
            arrays={} if x is None else {INPUT: x},
        )
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

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Dataset:
        """The same dataset with fn applied once to all samples (the splits keep their indices)."""
        present = {k: s for k, s in self._splits().items() if s is not None}
        if not present:
            return self
        old = next(iter(present.values())).source
        src = dataclasses.replace(old, arrays={k: fn(v) for k, v in old.arrays.items()})
        return dataclasses.replace(
            self, **{k: Split(src, s.indices, s.name) for k, s in present.items()}
        )
