"""Fashion-MNIST (Zalando's 28x28 grayscale clothing, 60,000 train / 10,000 test, 10 classes),
read from Debian's `dataset-fashion-mnist` package: 70,000 real images, offline.

The package installs the four IDX files under /usr/share/datasets/fashion-mnist;
`config.data.dir` points elsewhere when they live somewhere else. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.datasets import idx
from edgequant.datasets.stored import Stored, split_arrays
from edgequant.errors import UserError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
APT_PACKAGE = "dataset-fashion-mnist"
CLASS_NAMES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]


def read(data_dir: str = "", seed: int = 0, val_fraction: float = 0.1) -> Stored:
    """The official test set as the test split; validation is a seeded stratified share of train."""
    folder = Path(data_dir).expanduser() if data_dir else DEFAULT_DIR
    arrays = idx.read_idx_folder(folder) if folder.is_dir() else {}
    if not arrays:
        raise UserError(
            f"no Fashion-MNIST IDX files in {folder}: install them with "
            f"`apt-get install {APT_PACKAGE}` or set data.dir"
        )
    return split_arrays(
        "fashion_mnist",
        arrays,
        f"dir:{folder.resolve()}",
        num_classes=len(CLASS_NAMES),
        image_shape=(28, 28),
        seed=seed,
        val_fraction=val_fraction,
        class_names=CLASS_NAMES,
    )


def read_config(data_cfg, seed: int) -> Stored:
    """The registry's entry: `config.data.dir` (empty: the Debian package's folder)."""
    return read(data_cfg.dir, seed, data_cfg.val_fraction)
