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

import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from edgequant.data import checks
from edgequant.data.checks import IMAGE_SUFFIXES
from edgequant.data.preprocess import Preprocessing, apply_batch, apply_tf
from edgequant.errors import UserError
from edgequant.tensors import check_shape

log = logging.getLogger(__name__)

KINDS = ("auto", "images", "arrays", "tfrecord", "callable")
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


# --- arrays -----------------------------------------------------------------------------------


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


def _single_input(inputs, what: str):
    if len(inputs) != 1:
        names = ", ".join(t.name for t in inputs)
        raise UserError(
            f"{what} feeds one input, the model has {len(inputs)} ({names}): "
            "give an .npz with one array per input name"
        )
    return inputs[0]


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
        arrays = {_single_input(inputs, f"{path.name} (one array)").name: data}
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


# --- image folders ----------------------------------------------------------------------------


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
    inp = _single_input(inputs, f"image folder {path}")
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


# --- TFRecord ---------------------------------------------------------------------------------


@dataclasses.dataclass
class TFRecordSource(Source):
    files: list[str] = None
    features: dict[str, str] = None  # input name -> feature key
    label_key: str = "label"
    shapes: dict[str, tuple] = None
    kinds: dict[str, str] = None  # feature key -> float_list | int64_list | bytes_list

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        import tensorflow as tf

        mask = np.zeros(self.size, bool)
        mask[indices] = True
        mask_t = tf.constant(mask)
        ds = tf.data.TFRecordDataset(self.files).enumerate()
        ds = ds.filter(lambda i, _: tf.gather(mask_t, i)).map(
            lambda i, rec: self._decode(rec), num_parallel_calls=tf.data.AUTOTUNE
        )
        for x, y in ds.batch(batch_size).prefetch(2).as_numpy_iterator():
            yield x, (None if self.labels is None else y)

    def _decode(self, record):
        import tensorflow as tf

        example = tf.io.parse_single_example(
            record,
            {
                **{
                    key: tf.io.VarLenFeature(tf.float32)
                    if self.kinds[key] == "float_list"
                    else tf.io.VarLenFeature(tf.int64)
                    if self.kinds[key] == "int64_list"
                    else tf.io.FixedLenFeature([], tf.string)
                    for key in self.features.values()
                },
                **(
                    {self.label_key: tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
                    if self.labels is not None
                    else {}
                ),
            },
        )
        x = {}
        for name, key in self.features.items():
            v = example[key]
            kind = self.kinds[key]
            if kind == "bytes_list":  # an encoded image
                img = tf.io.decode_image(
                    v, channels=self.preprocessing.channels, expand_animations=False
                )
                x[name] = apply_tf(img, self.preprocessing)
            else:
                x[name] = tf.reshape(tf.cast(tf.sparse.to_dense(v), tf.float32), self.shapes[name])
        y = example[self.label_key] if self.labels is not None else tf.constant(-1, tf.int64)
        return x, y


def open_tfrecord(
    files: list[Path],
    inputs,
    feature_keys: dict[str, str],
    label_key: str,
    preprocessing_for: Callable[[], Preprocessing],
    label_required: bool = False,
) -> TFRecordSource:
    """TFRecord files of tf.train.Example; each input is a float/int64 list of the input's
    size or an encoded image (bytes), under a configurable feature key (default: its name).

    Every record is read once here: each must have the first record's features (same kinds and
    lengths, finite floats) and either every record or none has an int64 label under
    `label_key`. No label key is refused when the user named one (`label_required`) or when a
    record has a label-like key: a misspelled key would otherwise turn the run unlabelled and
    its budget from accuracy to SQNR without a word."""
    import tensorflow as tf

    features = {t.name: feature_keys.get(t.name, t.name) for t in inputs}
    first = None
    n = 0
    labels: list[int | None] = []
    where = ", ".join(map(str, files))
    try:
        for rec in tf.data.TFRecordDataset([str(f) for f in files]).as_numpy_iterator():
            try:
                ex = tf.train.Example.FromString(rec)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError
                raise UserError(f"{where}: record {n} is not a tf.train.Example") from None
            first = first or ex
            checks.check_record(ex, first, n, features, where)
            labels.append(checks.record_label(ex, label_key, n, where))
            n += 1
    except tf.errors.OpError as e:
        raise UserError(f"cannot read TFRecord {files[0]}: {e.message.splitlines()[0]}") from None
    if n == 0:
        raise UserError(f"no records in {where}")
    kinds, shapes, spec = {}, {}, None
    for t in inputs:
        key = features[t.name]
        if key not in first.features.feature:
            raise UserError(
                f"TFRecord has no feature '{key}' for input '{t.name}'; it has "
                f"{sorted(first.features.feature)} (set --tfrecord_features=INPUT:KEY)"
            )
        kind = first.features.feature[key].WhichOneof("kind")
        kinds[key] = kind
        if kind == "bytes_list":
            spec = preprocessing_for()
        else:
            shapes[t.name] = tuple(int(d) for d in t.sample_shape)
            size = len(getattr(first.features.feature[key], kind).value)
            if None in t.sample_shape or size != int(np.prod(t.sample_shape)):
                check_shape(t.name, (size,), t.sample_shape, f"TFRecord feature '{key}'")
    y = checks.tfrecord_labels(labels, first, label_key, label_required, where)
    src = TFRecordSource(
        "tfrecord",
        f"tfrecord:{','.join(map(str, files))}",
        [t.name for t in inputs],
        n,
        y,
        None,
        [],
        spec,
        [str(f) for f in files],
        features,
        label_key,
        shapes,
        kinds,
    )
    return src


# --- callables ----------------------------------------------------------------------


@dataclasses.dataclass
class CallableSource(Source):
    fn: Callable = None
    shapes: dict[str, tuple] = None
    max_samples: int = 100_000

    def _samples(self) -> Iterator[tuple[dict, int | None]]:
        """(sample by input name, label or None) as the callable gives them, not yet converted:
        a pass converts only the samples it keeps (`floats`). What the user's code raises, or a
        None where an iterable belongs, is one line naming the callable."""
        what = self.description.removeprefix("callable:")
        try:
            items = self.fn()
            if items is None:
                raise UserError(
                    f"data callable '{what}' returned None: it must return (or yield) an "
                    "iterable of samples"
                )
            for i, item in enumerate(items):
                if i >= self.max_samples:
                    raise UserError(
                        f"data callable '{what}' yielded more than {self.max_samples} samples "
                        "(data.max_samples): an endless generator? make it finite, or raise "
                        "--config.data.max_samples"
                    )
                if item is None:
                    raise UserError(f"data callable '{what}' yielded None as sample {i}")
                x, y = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
                if not isinstance(x, dict):
                    x = {self.input_names[0]: x}
                yield x, None if y is None else int(y)
        except (UserError, KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as e:  # noqa: BLE001 - the user's code can raise anything
            line = str(e).splitlines()[0] if str(e) else ""
            raise UserError(
                f"data callable '{what}' raised {type(e).__name__}: {line[:200]}"
            ) from None

    def floats(self, x: dict) -> dict[str, np.ndarray]:
        what = self.description.removeprefix("callable:")
        missing = [k for k in self.input_names if k not in x]
        if missing:
            raise UserError(
                f"data callable '{what}': a sample has keys {sorted(x)}; the model's inputs "
                f"are {self.input_names}"
            )
        try:
            return {k: np.asarray(x[k], np.float32) for k in self.input_names}
        except (TypeError, ValueError) as e:
            raise UserError(f"data callable '{what}': a sample is not numeric: {e}") from None

    def batches(self, indices: np.ndarray, batch_size: int) -> Iterator[Batch]:
        wanted = set(indices.tolist())
        last = max(wanted, default=-1)
        xs: list[dict] = []
        ys: list[int] = []
        for i, (x, y) in enumerate(self._samples()):
            if i > last:
                break  # every wanted sample is in: a long generator is not drained
            if i in wanted:
                xs.append(self.floats(x))
                ys.append(-1 if y is None else y)
            if len(xs) == batch_size:
                yield self._stack(xs, ys)
                xs, ys = [], []
        if xs:
            yield self._stack(xs, ys)

    def _stack(self, xs, ys) -> Batch:
        x = {k: np.stack([s[k] for s in xs]) for k in self.input_names}
        return x, (None if self.labels is None else np.asarray(ys, np.int64))


def open_callable(spec: str, inputs, max_samples: int = 100_000) -> CallableSource:
    """`module:function` (the module importable from the current directory or PYTHONPATH),
    returning an iterable of samples: an array (one input), a dict by input name, or a
    (sample, label) pair. It is called once per pass over the data; the first pass (here)
    counts the samples (at most `max_samples`), checks every one is finite with the model's
    shapes, and that either every sample or none has a label."""
    module_name, _, fn_name = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        fn = getattr(importlib.import_module(module_name), fn_name)
    except Exception as e:  # noqa: BLE001 - importing the user's module runs its code
        line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot import data callable '{spec}': {line[:200]}") from None
    if not callable(fn):
        raise UserError(f"data callable '{spec}' is a {type(fn).__name__}, not a function")
    src = CallableSource(
        "callable", f"callable:{spec}", [t.name for t in inputs], 0, fn=fn, max_samples=max_samples
    )
    n, labels = 0, []
    for x, y in src._samples():
        sample = src.floats(x)
        for t in inputs:
            check_shape(t.name, sample[t.name].shape, t.sample_shape, f"{spec} sample {n}")
            if not np.isfinite(sample[t.name]).all():
                raise UserError(
                    f"data callable '{spec}': input '{t.name}' has NaN or Inf values in sample "
                    f"{n}; quantization needs finite data"
                )
        labels.append(y)
        n += 1
    if n == 0:
        raise UserError(f"data callable '{spec}' yielded no samples")
    src.size = n
    unlabelled = [i for i, y in enumerate(labels) if y is None]
    if unlabelled and len(unlabelled) < n:
        raise UserError(
            f"data callable '{spec}': sample {unlabelled[0]} has no label but others have one; "
            "give (sample, label) for every sample or for none"
        )
    if not unlabelled:
        src.labels = np.asarray(labels, np.int64)
        checks.refuse_negative_labels(src.labels, f"data callable '{spec}'")
    return src


# --- one entry point --------------------------------------------------------------------------


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
