"""The in-memory dataset a training run works on: model-ready splits, named by their source.

`edgequant.data.load(config.data, input_shape, seed)` returns one, whatever the source: it
preprocesses every split once, so training, calibration, diagnosis and evaluation all read the
same arrays and nothing re-derives them. (Deployments of a user's model stream instead: see
`sources.py`.)
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
    """Samples (x) and integer labels (y) of one split, in the same order."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    source: str
    train: Split | None
    val: Split | None
    test: Split | None
    num_classes: int = 0

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
                f"dataset '{self.name}' from {self.source} has no '{split}' split; "
                "point data.dir at data with that split"
            )
        return s

    def map(self, fn) -> Dataset:
        """The same dataset with fn applied once to every split's samples."""
        parts = {k: None if s is None else Split(fn(s.x), s.y) for k, s in self._splits().items()}
        return dataclasses.replace(self, **parts)
