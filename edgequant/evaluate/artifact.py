"""What a .tflite artifact is: size, I/O dtypes and quantization, op histogram.

All interpreters come from the one factory in `edgequant.bench.device_runner`, so evaluation,
inspection and benchmarking load models the same way (LiteRT on the host).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgequant.bench import device_runner
from edgequant.errors import UserError


def load_interpreter(model: str | Path | bytes, num_threads: int | None = None):
    """An allocated LiteRT interpreter for a path or flatbuffer bytes; one-line errors."""
    if isinstance(model, bytes):
        with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
            f.write(model)
        try:
            return load_interpreter(f.name, num_threads)
        finally:
            os.unlink(f.name)
    path = str(model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model not found: {path}")
    try:
        interp, _ = device_runner.make_interpreter(path, "litert", num_threads or os.cpu_count())
    except device_runner.RunnerError as e:
        raise UserError(str(e)) from None
    return interp


def _tensor_info(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "dtype": detail["dtype"].__name__,
        "shape": [int(d) for d in detail["shape"]],
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def describe(path: str | Path) -> dict:
    """size_bytes, input/output dtypes and tensors, op histogram of a .tflite file."""
    from edgequant.tflite.model import TFLiteModel  # the flatbuffer reader imports TensorFlow

    interp = load_interpreter(path)
    inputs = [_tensor_info(d) for d in interp.get_input_details()]
    outputs = [_tensor_info(d) for d in interp.get_output_details()]
    return {
        "size_bytes": Path(path).stat().st_size,
        "input_dtype": inputs[0]["dtype"],
        "output_dtype": outputs[0]["dtype"],
        "inputs": inputs,
        "outputs": outputs,
        "op_histogram": TFLiteModel.load(path).op_histogram(),
    }
