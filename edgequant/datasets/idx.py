"""Readers for the IDX datasets' on-disk formats (MNIST, Fashion-MNIST): IDX files (gzipped or
not), a folder of them, and keras' `mnist.npz`.

IDX is LeCun's format: a 4-byte magic (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the raw array. Only unsigned-byte data (type 0x08) is
used by MNIST and accepted here, so a wrong or truncated file fails with a precise message
instead of producing a silently mis-shaped array.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

import numpy as np

_UBYTE = 0x08
# The file names LeCun's MNIST release uses, which Fashion-MNIST copies.
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Reads one IDX file (`.gz` or plain) into a uint8 array of the stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # zlib.error: a damaged deflate stream
        raise ValueError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    if raw[2] != _UBYTE:
        raise ValueError(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX header promises {expected} bytes for shape {shape}, "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Writes a uint8 array as IDX (gzipped when the name ends in .gz); used to export test sets."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Reads keras' `mnist.npz` (keys x_train, y_train, x_test, y_test; any subset accepted)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        # BadZipFile: a truncated or damaged archive, or a member whose CRC does not match.
        # np.load calls a file that is not a zip archive "pickled data": say what it means.
        reason = "not a NumPy .npz archive" if "pickle" in str(e) else str(e) or type(e).__name__
        raise ValueError(f"cannot read {path}: {reason}") from None
    known = {"x_train", "y_train", "x_test", "y_test"}
    if not known & arrays.keys():
        raise ValueError(f"{path} holds {sorted(arrays)}, expected x_train/y_train/x_test/y_test")
    return {k: v for k, v in arrays.items() if k in known}


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


def read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """The arrays of IDX_NAMES found in `folder` (any subset; images and labels in pairs)."""
    arrays = {}
    for key, stem in IDX_NAMES.items():
        path = _find(folder, stem)
        if path is not None:
            arrays[key] = read_idx(path)
    for part in ("train", "test"):
        if (f"x_{part}" in arrays) != (f"y_{part}" in arrays):
            raise ValueError(f"{folder}: found only one of the {part} images/labels IDX files")
    return arrays
