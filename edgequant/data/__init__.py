"""Stage 1 of the flow: datasets, splits, preprocessing and the representative set.

`load(config.data, input_shape, seed)` is the one registry for training data: a name in
`config.data.name` resolves here, and the result is preprocessed once for the model's input.
"""

from __future__ import annotations

from edgequant.data.dataset import Dataset

NAMES = ("mnist",)


def load(data_cfg, input_shape, seed: int = 0) -> Dataset:
    """The named dataset, every split preprocessed once for `input_shape` (H, W, C)."""
    from edgequant.data import mnist, preprocess

    if data_cfg.name not in NAMES:
        raise ValueError(f"unknown dataset '{data_cfg.name}'; valid datasets: {', '.join(NAMES)}")
    raw = mnist.load(data_cfg.dir, data_cfg.download, seed, data_cfg.val_fraction)
    spec = mnist.preprocessing(input_shape)
    return raw.map(lambda images: preprocess.apply_batch(images, spec))
