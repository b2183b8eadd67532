"""TFRecord files of tf.train.Example, parsed by the features the user names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgequant.data import checks
from edgequant.data.preprocess import Preprocessing, apply_tf
from edgequant.data.sources.base import Batch, Source
from edgequant.errors import UserError
from edgequant.tensors import check_shape


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
