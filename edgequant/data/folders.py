"""Writes images as the folder layout `sources.open_folder` reads: class subfolders (or a flat
folder when unlabelled). For demonstrations, benchmarks and tests that start from arrays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_image_folder(
    root: str | Path,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    fmt: str = "png",
    class_names: Sequence[str] | None = None,
) -> Path:
    """uint8 [N, H, W] or [N, H, W, C] -> root/<class>/<i>.<fmt> (root/<i>.<fmt> unlabelled)."""
    import tensorflow as tf

    if fmt not in ("png", "jpg"):
        raise ValueError(f"unknown image format '{fmt}'; valid: png, jpg")
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(np.asarray(images, np.uint8)):
        img = img if img.ndim == 3 else img[..., None]
        folder = root
        if labels is not None:
            label = int(labels[i])
            folder = root / (class_names[label] if class_names else f"c{label}")
            folder.mkdir(exist_ok=True)
        tf.io.write_file(str(folder / f"{i:06d}.{fmt}"), encode(img))
    return root
