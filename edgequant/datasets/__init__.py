"""The named training datasets: one registry, name -> loader, outside the generic data layer.

`load(config.data, input_shape, seed)` resolves `config.data.name` here and returns the data
layer's `Dataset` (seeded train/val/test `sources.Split`s over one in-memory source, read through
the preprocessing for the model's input). The data layer (`edgequant/data/`) never names a dataset: this
package is where a dataset plugs in, as TFDS and big_vision name theirs in a registry.

To add one: a module here with `read_config(data_cfg, seed) -> stored.Stored` (uint8 images
and labels per split; offline, with a one-line error naming what to install when its files are
missing), and its name in `LOADERS`.
"""

from __future__ import annotations

from edgequant.data import preprocess
from edgequant.data.dataset import Dataset
from edgequant.datasets import fashion_mnist, mnist
from edgequant.datasets.stored import Stored

LOADERS = {"mnist": mnist.read_config, "fashion_mnist": fashion_mnist.read_config}
NAMES = tuple(LOADERS)


def read(data_cfg, seed: int = 0) -> Stored:
    """The named dataset as stored (before preprocessing); an unknown name lists the valid ones."""
    if data_cfg.name not in LOADERS:
        raise ValueError(f"unknown dataset '{data_cfg.name}'; valid datasets: {', '.join(NAMES)}")
    return LOADERS[data_cfg.name](data_cfg, seed)


def preprocessing(input_shape=(28, 28, 1)) -> preprocess.Preprocessing:
    """The registry's image preprocessing: pixels 0..255 -> [0, 1], resized and colored for the
    model input (H, W, C).

    [0, 1] makes the uint8 model input exact: the converter then picks input scale 1/255 and
    zero point 0, so a stored pixel value is the quantized input itself.
    """
    height, width, channels = input_shape
    color = "grayscale" if channels == 1 else "rgb"
    return preprocess.Preprocessing((height, width), color, input_range=(0.0, 1.0))


def prepare(stored: Stored, input_shape) -> Dataset:
    """Stored images -> the Dataset of a model with input (H, W, C): every split reads through
    the registry's preprocessing (`sources.ImageArraySource`: batch by batch, so an evaluation
    pass at a large input size holds one batch of model-ready samples, not the split)."""
    parts = {k: (p.x, p.y) for k, p in stored.parts.items()}
    return Dataset.from_parts(
        stored.name,
        stored.source,
        parts,
        stored.num_classes,
        stored.class_names,
        preprocessing(tuple(input_shape)),
    )


def load(data_cfg, input_shape, seed: int = 0) -> Dataset:
    """The named dataset, read through the preprocessing for `input_shape` (H, W, C)."""
    return prepare(read(data_cfg, seed), input_shape)
