"""Top-1 accuracy of float Keras models, batched.

This module is the one place a Keras model's top-1 accuracy is measured (`evaluate_keras`:
the pipeline's float model, the QAT stage's fake-quantized models, autoquant's float baseline),
always at the caller's `config.evaluate.batch_size`. A .tflite is measured by
`metrics.evaluate` over a `sources.Split`, through `runner.SignatureModel` (outputs by name).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from edgequant.evaluate.runner import DEFAULT_BATCH_SIZE


@dataclasses.dataclass(frozen=True)
class Accuracy:
    accuracy: float
    n: int
    seconds: float
    # The predicted class of every sample, for agreement checks (e.g. QAT Keras vs TFLite).
    predicted: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def images_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "n": self.n,
            "seconds": self.seconds,
            "images_per_s": self.images_per_s,
        }


def evaluate_keras(
    model, x: np.ndarray, y: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE
) -> Accuracy:
    """Top-1 accuracy of a Keras classifier on inputs x, predicted `batch_size` samples at a
    time (callers pass config.evaluate.batch_size; any size gives the same accuracy)."""
    start = time.perf_counter()
    pred = model.predict(x, batch_size=batch_size, verbose=0).argmax(axis=-1)
    return Accuracy(float(np.mean(pred == y)), len(y), time.perf_counter() - start, pred)
