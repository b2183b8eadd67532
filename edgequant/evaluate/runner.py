"""A .tflite model run on float batches by name, through its signature runner.

Converted models name their output tensors `StatefulPartitionedCall:0`, `...:1` in an order
that is not the model's output order; only the signature maps them back to the model's own
names, so every read here goes through `get_signature_runner`, never through tensor order or
shape. Integer inputs are quantized and integer outputs dequantized with each tensor's own
scale and zero point, exactly as a deployed application must. Batches run whole when the model
allows resizing; a model traced with a fixed batch of 1 (the Edge TPU form) falls back to one
sample per invoke.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgequant.errors import UserError
from edgequant.evaluate.artifact import load_interpreter
from edgequant.tensors import TensorInfo, check_shape, dequantize, quantize

# Samples per invoke when a caller has no config (callers with one pass config.evaluate.batch_size),
# for every evaluator of this package. Results do not depend on it; memory does (64 images of
# 224x224x3 float32 are 38 MB).
DEFAULT_BATCH_SIZE = 64


def _info(name: str, detail: dict) -> TensorInfo:
    sig = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in sig)
    return TensorInfo(name, shape, np.dtype(detail["dtype"]).name)


class SignatureModel:
    """Batched float-in, float-out inference over one signature of a .tflite model.

    The one TFLite runner of the package: `predict({input name: float batch})` returns
    `{output name: float batch}` for any number of samples, quantizing integer inputs and
    dequantizing integer outputs. A classifier's scores are read by name too, e.g.
    `predict(x)[metrics.classifier_output(model.outputs, num_classes)]`.
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_threads: int | None = None,
        signature: str | None = None,
    ):
        self.path = str(path)
        self.interp = load_interpreter(path, num_threads)
        sigs = self.interp.get_signature_list()
        self.runner = None
        if sigs:
            if signature is None or signature not in sigs:
                if signature not in (None, "serving_default"):
                    raise UserError(
                        f"{path} has no signature '{signature}'; "
                        f"available: {', '.join(sorted(sigs))}"
                    )
                signature = "serving_default" if "serving_default" in sigs else next(iter(sigs))
            self.runner = self.interp.get_signature_runner(signature)
            self.input_details = self.runner.get_input_details()
            self.output_details = self.runner.get_output_details()
        else:
            # Models from TF1-era converters (many published .tflite files) carry no
            # signature: their tensor names are then the only names there are.
            signature = ""
            self.input_details = {d["name"]: d for d in self.interp.get_input_details()}
            self.output_details = {d["name"]: d for d in self.interp.get_output_details()}
        self.signature = signature
        self.inputs = [_info(n, d) for n, d in sorted(self.input_details.items())]
        self.outputs = [_info(n, d) for n, d in sorted(self.output_details.items())]
        self.batch_size = max(1, int(batch_size))
        self._threads = num_threads
        self._direct = self.runner is None or len(sigs) == 1
        if self._direct:
            self.runner = None  # a live runner pins the interpreter: resizing would be refused
        self._shapes: dict[str, tuple] = {}

    @property
    def input_dtype(self) -> str:
        return self.inputs[0].dtype

    def _prepare(self, name: str, x: np.ndarray) -> np.ndarray:
        d = self.input_details[name]
        dtype = d["dtype"]
        if np.issubdtype(dtype, np.integer) and d["quantization"][0]:
            scale, zp = d["quantization"]
            return quantize(x, scale, zp, dtype)
        return np.asarray(x).astype(dtype, copy=False)

    def _finish(self, name: str, y: np.ndarray) -> np.ndarray:
        d = self.output_details[name]
        if np.issubdtype(y.dtype, np.integer) and d["quantization"][0]:
            return dequantize(y, *d["quantization"])
        return np.asarray(y, dtype=np.float32)

    def _invoke(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._direct:
            out = self.runner(**feed)
            return {k: np.array(v) for k, v in out.items()}
        # One signature (the common case): its tensors are the main subgraph's, so they are set
        # by index, which skips the signature runner's per-call bookkeeping.
        for name, x in feed.items():
            d = self.input_details[name]
            if self._shapes.get(name) != x.shape:
                self.interp.resize_tensor_input(d["index"], list(x.shape))
                self.interp.allocate_tensors()
                self._shapes[name] = x.shape
            self.interp.set_tensor(d["index"], x)
        self.interp.invoke()
        return {k: self.interp.get_tensor(d["index"]) for k, d in self.output_details.items()}

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float outputs by output name for float inputs by input name (any batch length)."""
        missing = set(self.input_details) - set(inputs)
        if missing:
            raise UserError(
                f"{Path(self.path).name}: no data for input(s) {sorted(missing)}; "
                f"data has {sorted(inputs)}"
            )
        for t in self.inputs:
            check_shape(t.name, inputs[t.name].shape[1:], t.sample_shape, self.path)
        feed_all = {k: self._prepare(k, inputs[k]) for k in self.input_details}
        n = len(next(iter(feed_all.values())))
        outs: dict[str, list[np.ndarray]] = {k: [] for k in self.output_details}
        start = 0
        while start < n:
            b = self.batch_size
            feed = {k: v[start : start + b] for k, v in feed_all.items()}
            try:
                result = self._invoke(feed)
                rows = len(next(iter(feed.values())))
                if any(v.shape[:1] != (rows,) for v in result.values()):
                    # Resizing "worked" but a RESHAPE constant still holds the traced batch
                    # of 1 (a detector flattening its anchors): the samples came out mixed.
                    raise ValueError("outputs lost the batch dimension")
            except (ValueError, RuntimeError):
                if self.batch_size == 1:
                    raise
                # A model traced with a fixed batch of 1 (the Edge TPU form) cannot be resized:
                # start again from a fresh interpreter and invoke per sample.
                self.batch_size = 1
                self.interp = load_interpreter(self.path, self._threads)
                self._shapes = {}
                if not self._direct:
                    self.runner = self.interp.get_signature_runner(self.signature)
                continue
            for k, v in result.items():
                outs[k].append(self._finish(k, v))
            start += len(next(iter(feed.values())))
        return {k: np.concatenate(v) for k, v in outs.items()}
