"""What the data must be before any work: readable, finite, labelled within the classes.

A source that silently drops a file, wraps a label of -1 into the last class, or feeds NaN to
the converter gives a wrong result with exit 0. Each check here either passes, or names what
was skipped (and why), or raises one `UserError` line naming the input and the sample.
Used by data/sources/ while it opens a source, and by flow/prepare.py once the model is known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgequant.errors import UserError

# What tf.io.decode_image reads (TF 2.21: JPEG, PNG, GIF, BMP, WebP; first frame of a GIF).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# Image files it cannot read: refused naming them, never skipped without a word.
UNREADABLE_IMAGE_SUFFIXES = (
    ".tif", ".tiff", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".ppm", ".pgm", ".pbm",
    ".ico", ".psd", ".exr", ".hdr", ".tga", ".svg", ".dng", ".cr2", ".nef", ".raw",
)  # fmt: skip
_CHUNK = 4096  # samples per finiteness check of a memory-mapped array


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file a source left out, and why (deploy.json lists every one)."""

    file: str
    reason: str

    def to_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


def refuse_unreadable_types(files: Sequence[Path], where: Path) -> None:
    """An image type edgequant cannot decode is an error naming the files, not a skip: a class
    folder of .tiff files would otherwise vanish from the data."""
    bad = [p for p in files if p.suffix.lower() in UNREADABLE_IMAGE_SUFFIXES]
    if bad:
        kinds = sorted({p.suffix.lower() for p in bad})
        shown = ", ".join(str(p) for p in bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise UserError(
            f"{len(bad)} image file(s) in {where} are {'/'.join(kinds)}, which edgequant cannot "
            f"decode ({shown}); convert them to PNG, JPEG, BMP, GIF or WebP"
        )


def decode_all(files: Sequence[str], channels: int) -> list[Skipped]:
    """Every file decoded in full, in parallel (tf.data): a PNG truncated after a valid header
    passes a header check and then fails in the pipeline, where it used to vanish uncounted.
    Returns the files that do not decode (or cannot be read), with the reason."""
    import tensorflow as tf

    skipped: list[Skipped] = []
    readable: list[int] = []
    for i, f in enumerate(files):
        try:
            with open(f, "rb") as fh:
                head = fh.read(16)
        except OSError as e:
            skipped.append(Skipped(f, f"unreadable: {e.strerror or e}"))
            continue
        if len(head) < 8:
            skipped.append(Skipped(f, "empty or too short to be an image"))
        else:
            readable.append(i)
    if not readable:
        return skipped
    paths = tf.constant([files[i] for i in readable])
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.range(len(readable))))

    def decode(path, i):
        img = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        return tf.shape(img)[0] * 0 + i  # the index, once the whole image decoded

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ok = set()
    for chunk in ds.ignore_errors().batch(1024).as_numpy_iterator():
        ok.update(chunk.tolist())
    skipped += [
        Skipped(files[readable[j]], "does not decode (truncated or corrupt)")
        for j in range(len(readable))
        if j not in ok
    ]
    return sorted(skipped, key=lambda s: s.file)


def refuse_too_many_skipped(skipped: Sequence[Skipped], total: int, limit: float, where) -> None:
    """data.max_corrupt_fraction over every skipped file, whatever the reason."""
    if len(skipped) > limit * total:
        first = skipped[0]
        raise UserError(
            f"{len(skipped)} of {total} files in {where} cannot be used (first: {first.file}: "
            f"{first.reason}); at most {limit:.0%} may be skipped (data.max_corrupt_fraction)"
        )


def refuse_negative_labels(labels: np.ndarray, where: str) -> None:
    """A label below 0 would index the classes from the end (-1 scores as the last class)."""
    bad = np.flatnonzero(labels < 0)
    if len(bad):
        raise UserError(
            f"{where}: {len(bad)} label(s) below 0 (first: sample {int(bad[0])}, label "
            f"{int(labels[bad[0]])}); labels are class indices in [0, classes)"
        )


def refuse_labels_outside(labels: np.ndarray, classes: int, where: str, why: str) -> None:
    """Labels must index the model's classes: [0, classes)."""
    refuse_negative_labels(labels, where)
    bad = np.flatnonzero(labels >= classes)
    if len(bad):
        raise UserError(
            f"{where}: {len(bad)} label(s) outside [0, {classes}) ({why}; first: sample "
            f"{int(bad[0])}, label {int(labels[bad[0]])})"
        )


def refuse_non_finite(name: str, values: np.ndarray, where: str, first_index: int = 0) -> None:
    """NaN or Inf in an input, named by input and sample (checked in chunks: arrays may be
    memory-mapped and larger than memory)."""
    for start in range(0, len(values), _CHUNK):
        chunk = np.asarray(values[start : start + _CHUNK], dtype=np.float32)
        finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if not finite.all():
            i = start + int(np.flatnonzero(~finite)[0])
            raise UserError(
                f"{where}: input '{name}' has NaN or Inf values in sample {first_index + i}; "
                "quantization needs finite data"
            )


# --- TFRecord: every record like the first, labels in every record or none

LABEL_LIKE = ("label", "class", "target", "category")


def check_record(ex, first, index: int, features: dict[str, str], where: str) -> None:
    """Record `index` has the input features of the first record, finite."""
    for key in features.values():
        if key not in first.features.feature:
            return  # open_tfrecord names the missing feature with the keys present
        f, f0 = ex.features.feature.get(key), first.features.feature[key]
        kind0 = f0.WhichOneof("kind")
        if f is None or f.WhichOneof("kind") != kind0:
            got = "missing" if f is None else f"a {f.WhichOneof('kind')}"
            raise UserError(
                f"{where}: record {index} differs from record 0: feature '{key}' is {got}, "
                f"record 0 has a {kind0}"
            )
        if kind0 == "bytes_list":
            continue
        values = getattr(f, kind0).value
        if len(values) != len(getattr(f0, kind0).value):
            raise UserError(
                f"{where}: record {index} differs from record 0: feature '{key}' has "
                f"{len(values)} values, record 0 has {len(getattr(f0, kind0).value)}"
            )
        if kind0 == "float_list" and not np.isfinite(np.asarray(values, np.float32)).all():
            raise UserError(
                f"{where}: record {index}: feature '{key}' has NaN or Inf values; "
                "quantization needs finite data"
            )


def record_label(ex, key: str, index: int, where: str) -> int | None:
    """The int64 label of one record, None when it has no `key`."""
    f = ex.features.feature.get(key)
    if f is None:
        return None
    values = f.int64_list.value
    if f.WhichOneof("kind") != "int64_list" or len(values) != 1:
        raise UserError(
            f"{where}: record {index}: label feature '{key}' must be one int64, "
            f"got a {f.WhichOneof('kind')} of {len(getattr(f, f.WhichOneof('kind')).value)}"
        )
    return int(values[0])


def tfrecord_labels(labels: list, first, key: str, required: bool, where: str):
    """Labels of every record, None for an unlabelled file (see open_tfrecord)."""
    missing = [i for i, y in enumerate(labels) if y is None]
    if not missing:
        y = np.asarray(labels, np.int64)
        refuse_negative_labels(y, f"{where}: feature '{key}'")
        return y
    present = sorted(first.features.feature)
    if len(missing) < len(labels):
        raise UserError(
            f"{where}: record {missing[0]} has no label '{key}' but other records have one "
            f"(it has {present})"
        )
    import difflib

    like = [k for k in present if any(w in k.lower() for w in LABEL_LIKE)]
    like += [k for k in difflib.get_close_matches(key, present, cutoff=0.6) if k not in like]
    if required or like:
        hint = f"; did you mean '{like[0]}'?" if like else ""
        raise UserError(
            f"{where}: no record has the label key '{key}'; the records have {present}{hint} "
            "(set --config.data.label_key=KEY)"
        )
    return None
