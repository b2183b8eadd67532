"""Top-1 accuracy of float Keras models and of TFLite artifacts, batched.

TFLite models are run with the input tensor resized to a whole batch, so 10,000 MNIST images cost
a few dozen invokes instead of 10,000 Python round-trips. Integer inputs are quantized and integer
outputs dequantized with each tensor's own scale and zero point, exactly as a deployed app must.

This module is the one place a Keras model's top-1 accuracy is measured (`evaluate_keras`:
the pipeline's float model, the QAT stage's fake-quantized models, autoquant's float baseline),
always at the caller's `config.evaluate.batch_size`. `metrics.evaluate` is the streaming
evaluator of a deployment's variants (any outputs, by name, fidelity to the float model) and
`runner.SignatureModel` the by-name TFLite runner it drives; this module's array-in,
labels-in path serves the training pipeline, whose data is one preprocessed array per split.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from edgequant import progress
from edgequant.evaluate.artifact import load_interpreter
from edgequant.evaluate.runner import DEFAULT_BATCH_SIZE, dequantize, quantize


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


class BatchedModel:
    """A TFLite model run on float batches: quantizes inputs, dequantizes outputs."""

    def __init__(
        self, path: str | Path, batch_size: int = DEFAULT_BATCH_SIZE, num_threads: int | None = None
    ):
        self.interp = load_interpreter(path, num_threads)
        inp = self.interp.get_input_details()[0]
        if len(self.interp.get_input_details()) != 1:
            raise ValueError(
                f"{path}: expected one input tensor, found {len(self.interp.get_input_details())}"
            )
        self.input_shape = tuple(int(d) for d in inp["shape"][1:])
        self.batch_size = batch_size
        try:
            self.interp.resize_tensor_input(inp["index"], [batch_size, *self.input_shape])
            self.interp.allocate_tensors()
        except (ValueError, RuntimeError):  # a model with a hard-wired batch of 1
            self.batch_size = 1
            self.interp.resize_tensor_input(inp["index"], [1, *self.input_shape])
            self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        dtype = self.inp["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zp = self.inp["quantization"]
            return quantize(x, scale, zp, dtype)
        return x.astype(dtype, copy=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float outputs for float inputs [N, *input_shape]."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"inputs have shape {list(x.shape[1:])}, model expects {list(self.input_shape)}"
            )
        b = self.batch_size
        outs = []
        for start in progress.track(range(0, len(x), b), "evaluating", unit="batch"):
            chunk = self._prepare(x[start : start + b])
            n = len(chunk)
            if n < b:  # pad the last batch rather than re-allocating for one odd size
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), chunk.dtype)])
            self.interp.set_tensor(self.inp["index"], chunk)
            self.interp.invoke()
            outs.append(self.interp.get_tensor(self.out["index"])[:n])
        y = np.concatenate(outs)
        if np.issubdtype(y.dtype, np.integer):
            scale, zp = self.out["quantization"]
            y = dequantize(y, scale, zp)
        return y


def evaluate_tflite(
    model: str | Path | BatchedModel,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Accuracy:
    """Accuracy of a .tflite (path or an already-built BatchedModel) on float inputs x."""
    if not isinstance(model, BatchedModel):
        model = BatchedModel(model, batch_size)
    start = time.perf_counter()
    pred = model.predict(x).argmax(axis=-1)
    return Accuracy(float(np.mean(pred == y)), len(y), time.perf_counter() - start, pred)


def evaluate_keras(
    model, x: np.ndarray, y: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE
) -> Accuracy:
    """Top-1 accuracy of a Keras classifier on inputs x, predicted `batch_size` samples at a
    time (callers pass config.evaluate.batch_size; any size gives the same accuracy)."""
    start = time.perf_counter()
    pred = model.predict(x, batch_size=batch_size, verbose=0).argmax(axis=-1)
    return Accuracy(float(np.mean(pred == y)), len(y), time.perf_counter() - start, pred)
