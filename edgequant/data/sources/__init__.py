"""The user's data, from wherever it lives, as one typed stream of model-ready samples.

Every source (an image folder, `.npy`/`.npz` arrays, a TFRecord of tf.train.Example, a Python
callable `module:function`, a named training dataset's arrays in memory) becomes a `Source`: a known number of records,
labels when there are any, and `batches(indices)` yielding `({input name: float32 batch},
labels)`. Splits are index sets over a source, so the pipeline never asks where the data came
from, and a folder of 100,000 images streams through tf.data with memory bounded by the batch:
files are decoded in the pipeline (AUTOTUNE), never loaded as a whole.

Samples are keyed by the model's input names, so multi-input models need no special case.
Images go through the model's `Preprocessing` spec; arrays are taken as model-ready inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgequant.data.checks import IMAGE_SUFFIXES
from edgequant.data.preprocess import Preprocessing
from edgequant.data.sources.arrays import ArraySource, ImageArraySource, open_arrays
from edgequant.data.sources.base import Batch, Source, Split, everything, holdout
from edgequant.data.sources.callables import CallableSource, open_callable
from edgequant.data.sources.images import FolderSource, open_folder, read_class_names
from edgequant.data.sources.tfrecord import TFRecordSource, open_tfrecord
from edgequant.errors import UserError

__all__ = [
    "IMAGE_SUFFIXES",
    "KINDS",
    "ArraySource",
    "Batch",
    "CallableSource",
    "FolderSource",
    "ImageArraySource",
    "Source",
    "Split",
    "TFRecordSource",
    "detect_kind",
    "everything",
    "holdout",
    "open_arrays",
    "open_callable",
    "open_folder",
    "open_source",
    "open_tfrecord",
    "read_class_names",
]

KINDS = ("auto", "images", "arrays", "tfrecord", "callable")


def detect_kind(path: str) -> str:
    p = Path(path).expanduser()
    if p.is_dir():
        if any(p.glob("*.tfrecord")) or any(p.glob("*.tfrec")):
            return "tfrecord"
        return "images"
    if p.is_file():
        with open(p, "rb") as f:
            head = f.read(6)
        if head == b"\x93NUMPY" or head[:2] == b"PK":
            return "arrays"
        if p.suffix.lower() in (".tfrecord", ".tfrec", ".tfrecords"):
            return "tfrecord"
        raise UserError(
            f"{p}: not a data source edgequant reads (image folder, .npy/.npz, "
            ".tfrecord, or module:function)"
        )
    if ":" in path and not path.startswith(("/", ".")):
        return "callable"
    raise FileNotFoundError(f"data not found: {path}")


def open_source(
    path: str,
    inputs,
    preprocessing_for: Callable[[], Preprocessing],
    *,
    kind: str = "auto",
    tfrecord_features: dict[str, str] | None = None,
    label_key: str = "label",
    max_corrupt: float = 0.01,
    class_names: list[str] | None = None,
    label_required: bool = False,
    max_samples: int = 100_000,
) -> Source:
    """Opens any supported source for a model with `inputs`; `preprocessing_for()` gives the
    image spec and is only called for image data (it refuses when the mapping is unknown)."""
    if kind not in KINDS:
        raise UserError(
            f"unknown data kind '{kind}'; valid: {', '.join(KINDS)} (a named training dataset "
            "is not a data source: evaluate on one with tools/evaluate.py --dataset=NAME)"
        )
    if kind == "auto":
        kind = detect_kind(path)
    p = Path(path).expanduser()
    if kind == "images":
        return open_folder(p, inputs, preprocessing_for(), max_corrupt, class_names)
    if kind == "arrays":
        return open_arrays(p, inputs)
    if kind == "tfrecord":
        files = sorted(p.glob("*.tfrec*")) if p.is_dir() else [p]
        return open_tfrecord(
            files, inputs, tfrecord_features or {}, label_key, preprocessing_for, label_required
        )
    if kind == "callable":
        return open_callable(path, inputs, max_samples)
    raise AssertionError(kind)
