"""Image folders (class subfolders or flat), decoded and preprocessed in a tf.data
pipeline; every file skipped is counted and named."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgequant.data import checks
from edgequant.data.checks import IMAGE_SUFFIXES
from edgequant.data.preprocess import Preprocessing, apply_tf
from edgequant.data.sources.base import Batch, Source, single_input
from edgequant.errors import UserError
from edgequant.tensors import check_shape

log = logging.getLogger(__name__)


def _hidden(path: Path, root: Path) -> bool:
    """.DS_Store, .ipynb_checkpoints/...: not data."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


@dataclasses.dataclass
class FolderSource(Source):
    paths: np.ndarray = None

    def dataset(self, indices: np.ndarray, batch_size: int):
        """The tf.data pipeline: read -> decode -> preprocess, parallel, batched, prefetched."""
        import tensorflow as tf

        spec = self.preprocessing
        paths = self.paths[indices]
        labels = self.labels[indices] if self.labels is not None else np.full(len(paths), -1)
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))

        def load(path, label):
            raw = tf.io.read_file(path)
            img = tf.io.decode_image(raw, channels=spec.channels, expand_animations=False)
            return apply_tf(img, spec), label

        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # Every kept file decoded once when the folder was opened (checks.decode_all); one
        # that changed since is left out here, and `batches` says so.
        ds = ds.ignore_errors()
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        (name,) = self.input_names
        seen = 0
        for x, y in self.dataset(indices, batch_size).as_numpy_iterator():
            seen += len(y)
            yield {name: x}, (None if self.labels is None else y)
        if seen < len(indices):
            raise UserError(
                f"{len(indices) - seen} image(s) in {self.description} no longer decode: "
                "the folder changed while edgequant was reading it"
            )


def read_class_names(path: str | Path) -> list[str]:
    """labels.txt: one class name per line, in the model's output order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if len(set(names)) != len(names):
        raise UserError(f"{path} names a class twice")
    return names


def open_folder(
    path: Path,
    inputs,
    preprocessing: Preprocessing,
    max_corrupt: float = 0.01,
    class_names: list[str] | None = None,
) -> FolderSource:
    """Class subfolders or a flat folder (unlabelled).

    A subfolder's class index is its position in the sorted folder names (Keras'
    image_dataset_from_directory convention), or in `class_names` (a labels.txt in the model's
    output order) when given: a model trained with another order than the folders sort in
    otherwise scores against the wrong labels without a word.
    """
    inp = single_input(inputs, f"image folder {path}")
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[Path] = []
    labels: list[int] = []
    listed: list[Path] = []  # every file found, images or not
    if subdirs:
        names = [d.name for d in subdirs]
        if class_names is not None:
            unknown = sorted(set(names) - set(class_names))
            if unknown:
                raise UserError(
                    f"{path} has class folder(s) {unknown[:5]} that the labels file does not name"
                )
            subdirs = sorted(subdirs, key=lambda d: class_names.index(d.name))
        else:
            class_names = names
        for d in subdirs:
            i = class_names.index(d.name)
            every = sorted(p for p in d.rglob("*") if p.is_file() and not _hidden(p, d))
            listed += every
            found = [p for p in every if p.suffix.lower() in IMAGE_SUFFIXES]
            files += found
            labels += [i] * len(found)
        if len(names) == 1:
            raise UserError(
                f"{path} has one class folder ('{names[0]}'): labelled data needs two "
                "or more; for unlabelled images use a flat folder"
            )
    else:
        # A flat folder: its images; other files beside them (a README, labels.txt) are not data
        listed = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        files = [p for p in listed if p.suffix.lower() in IMAGE_SUFFIXES]
        listed = files + [p for p in listed if p.suffix.lower() in checks.UNREADABLE_IMAGE_SUFFIXES]
    unknown = [p for p in listed if p.suffix.lower() not in IMAGE_SUFFIXES]
    checks.refuse_unreadable_types(unknown, path)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    check_shape(
        inp.name, (*preprocessing.size, preprocessing.channels), inp.sample_shape, str(path)
    )
    skipped = [checks.Skipped(str(p), "not an image file") for p in unknown]
    skipped += checks.decode_all([str(p) for p in files], preprocessing.channels)
    checks.refuse_too_many_skipped(skipped, len(listed), max_corrupt, path)
    for s in skipped:
        log.warning("skipping %s: %s", s.file, s.reason)
    left_out = {s.file for s in skipped}
    ok = [str(p) not in left_out for p in files]
    kept = [str(p) for p, good in zip(files, ok, strict=True) if good]
    if not kept:
        raise UserError(f"no image in {path} decodes (first: {skipped[0].file})")
    y = (
        np.asarray([lab for lab, good in zip(labels, ok, strict=True) if good], np.int64)
        if labels
        else None
    )
    kind = "images" if y is not None else "images (unlabelled)"
    return FolderSource(
        kind,
        f"folder:{path}",
        [inp.name],
        len(kept),
        y,
        class_names,
        skipped,
        preprocessing,
        np.asarray(kept),
    )
