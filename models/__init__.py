"""The Keras model zoo (tf_keras). A config names a model by string; this is the one place that
resolves it, so an unknown name fails with the list of valid ones.

To add a model: write `models/<name>.py` with `build(input_shape, num_classes, **kwargs)` that
returns an uncompiled tf_keras functional model, and add it to `_REGISTRY`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

_REGISTRY = {
    "mnist_cnn": "models.mnist_cnn",
    "mobilenet_v2": "models.mobilenet_v2",
}

NAMES = tuple(sorted(_REGISTRY))


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any):
    """Builds model `name`; unknown names or keyword arguments raise ValueError listing choices."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model '{name}'; valid models: {', '.join(NAMES)}")
    builder = importlib.import_module(_REGISTRY[name]).build
    params = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = [p for p in params if p not in ("input_shape", "num_classes")]
        raise ValueError(f"model '{name}' has no option(s) {unknown}; valid options: {valid}")
    return builder(tuple(input_shape), num_classes, **kwargs)
