"""The contract every source meets: N records, labels when any, batches keyed by the
model's input names; and the one split type over it (a seeded index set)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from edgequant.data import checks
from edgequant.data.preprocess import Preprocessing
from edgequant.errors import UserError

Batch = tuple[dict[str, np.ndarray], "np.ndarray | None"]


@dataclasses.dataclass
class Source:
    """N records of model-ready samples; subclasses say how a batch of them is produced."""

    kind: str
    description: str
    input_names: list[str]
    size: int
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    skipped: list[checks.Skipped] = dataclasses.field(default_factory=list)  # files left out
    preprocessing: Preprocessing | None = None

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        raise NotImplementedError

    def take(self, indices: np.ndarray) -> Batch:
        """The records at `indices`, materialized; sources held in memory override it."""
        parts = list(self.batches(indices, 256))
        if not parts:
            raise UserError(f"no samples at the requested indices of {self.description}")
        x = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        y = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return x, y

    def renamed(self, input_names: Sequence[str]) -> Source:
        raise UserError(
            f"{self.description} names its samples by the model's inputs already; "
            "only in-memory arrays are renamed"
        )

    def info(self) -> dict:
        return {
            "kind": self.kind,
            "source": self.description,
            "n": self.size,
            "labels": self.labels is not None,
            "classes": len(self.class_names) if self.class_names else None,
            "corrupt_skipped": len(self.skipped),
            "skipped": [s.to_dict() for s in self.skipped],
        }


@dataclasses.dataclass(frozen=True)
class Split:
    """A seeded subset of a source's records (sorted indices)."""

    source: Source
    indices: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray | None:
        return None if self.source.labels is None else self.source.labels[self.indices]

    def batches(self, batch_size: int = 64) -> Iterator[Batch]:
        return self.source.batches(self.indices, batch_size)

    def arrays(self) -> Batch:
        """Materializes the whole split: for splits held in memory (a training dataset) or small
        ones (calibration, statistics)."""
        if len(self) == 0:
            raise UserError(f"the {self.name} split of {self.source.description} is empty")
        return self.source.take(self.indices)

    def renamed(self, input_names: Sequence[str]) -> Split:
        """The same records keyed by `input_names` (a model's inputs, in the source's order).

        A named training dataset does not know the model it will feed, so its samples carry the
        neutral name `dataset.INPUT`; the caller renames them once it has the model.
        """
        return Split(self.source.renamed(input_names), self.indices, self.name)

    def subset(self, n: int, seed: int, name: str | None = None) -> Split:
        """n records, class-stratified when labelled, seeded; all of them when n >= len."""
        from edgequant.data import splits

        if n >= len(self):
            return Split(self.source, self.indices, name or self.name)
        if self.labels is not None:
            chosen = splits.stratified_sample(self.labels, n, seed)
        else:
            chosen = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return Split(self.source, self.indices[chosen], name or self.name)


def holdout(source: Source, fraction: float, seed: int) -> tuple[Split, Split]:
    """(calibration, evaluation): a seeded `fraction` of the records is held out for evaluation
    and never used for calibration (stratified by class when labelled)."""
    from edgequant.data import splits

    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    if source.labels is not None:
        cal, ev = splits.stratified_split(source.labels, [1 - fraction], seed)
    else:
        perm = np.random.default_rng(seed).permutation(source.size)
        cut = int(round(source.size * (1 - fraction)))
        cal, ev = np.sort(perm[:cut]), np.sort(perm[cut:])
    if len(cal) == 0 or len(ev) == 0:
        raise UserError(
            f"{source.description} has {source.size} sample(s): too few to hold out "
            f"{fraction:.0%} for evaluation; pass --eval_data"
        )
    return Split(source, cal, "calibration"), Split(source, ev, "evaluation")


def everything(source: Source, name: str) -> Split:
    return Split(source, np.arange(source.size), name)


def single_input(inputs, what: str):
    if len(inputs) != 1:
        names = ", ".join(t.name for t in inputs)
        raise UserError(
            f"{what} feeds one input, the model has {len(inputs)} ({names}): "
            "give an .npz with one array per input name"
        )
    return inputs[0]
