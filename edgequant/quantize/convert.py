"""Applies a Recipe with TFLiteConverter and refuses to hand back a model that broke its promise.

The converter silently keeps float ops when it is not told to be strict, and silently keeps float
I/O unless inference types are set: users then ship a "full-integer" model that an Edge TPU or an
integer-only NPU cannot run. Full-integer recipes therefore set TFLITE_BUILTINS_INT8 (or the 16x8
op set) alone, and the result is checked again here: any float tensor feeding or leaving an op
makes `convert` raise with the op's name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgequant import atomic
from edgequant.data import calibration
from edgequant.errors import UserError
from edgequant.quantize.recipes import Granularity, Mode, Recipe


def as_user_model(model):
    """A UserModel for a Keras model (tf_keras or Keras 3); a UserModel stays as it is."""
    from edgequant import usermodel

    return model if isinstance(model, usermodel.UserModel) else usermodel.from_keras(model)


def as_samples(model, representative) -> dict[str, np.ndarray]:
    """Calibration samples keyed by input name; a bare array feeds a one-input model."""
    if isinstance(representative, dict):
        return representative
    names = model.input_names
    if len(names) != 1:
        raise UserError(f"the model has {len(names)} inputs: give calibration samples by name")
    return {names[0]: np.asarray(representative)}


def make_converter(model, recipe: Recipe, representative=None):
    """A TFLiteConverter configured for `recipe`, from any convertible model (UserModel or Keras).

    `representative` is {input name: float32 [n, ...]} (or one array for a one-input model).
    """
    import tensorflow as tf

    model = as_user_model(model)
    mode = recipe.mode
    # Integer-only accelerators (Edge TPU, NPUs) need static shapes: trace with batch 1.
    # The interpreter can still resize the batch for evaluation on the CPU.
    conv = model.converter(batch=1 if mode in (Mode.INT8, Mode.UINT8) else None)
    if mode is Mode.FP32:
        return conv
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode is Mode.FLOAT16:
        conv.target_spec.supported_types = [tf.float16]
    if recipe.needs_calibration:
        if representative is None:
            raise UserError(f"recipe {recipe.name} needs a representative dataset")
        samples = as_samples(model, representative)
        for t in model.inputs:
            if t.name not in samples:
                raise UserError(f"no calibration samples for input '{t.name}'")
            calibration.validate(samples[t.name], t.sample_shape)
        conv.representative_dataset = calibration.as_generator(
            {k: v[: recipe.calibration_size] for k, v in samples.items()}
        )
    if mode in (Mode.INT8, Mode.UINT8):
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = tf.int8 if mode is Mode.INT8 else tf.uint8
        conv.inference_input_type = io
        conv.inference_output_type = io
    elif mode is Mode.INT16X8:
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    if recipe.weights is Granularity.PER_TENSOR:
        # Private switch (TF >= 2.8); the only way the converter offers per-tensor weights.
        conv._experimental_disable_per_channel = True
    return conv


def convert(model, recipe: Recipe, representative: np.ndarray | None = None) -> bytes:
    """Returns the .tflite flatbuffer for `recipe`; raises UserError on any broken promise."""
    import warnings

    conv = make_converter(model, recipe, representative)
    try:
        with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": benign
            warnings.simplefilter("ignore", UserWarning)
            content = conv.convert()
    except Exception as e:  # noqa: BLE001 - converter errors come as many types
        first = next((ln.strip() for ln in str(e).splitlines() if "error" in ln.lower()), str(e))
        raise UserError(f"recipe {recipe.name}: conversion failed: {first[:300]}") from None
    if recipe.full_integer and float_ops(content):
        raise FullIntegerBlocked(recipe.name, blocking_ops(content))
    return content


class FullIntegerBlocked(UserError):
    """A full-integer recipe met ops that stay float; `ops` names each one and its layer."""

    def __init__(self, recipe_name: str, ops: list[dict]):
        self.ops = ops
        named = ", ".join(
            f"{o['op']} (layer {o['layer']})" if o["layer"] else f"{o['op']} ({o['tensor']})"
            for o in ops
        )
        super().__init__(
            f"recipe {recipe_name} promises a full-integer model but these ops stay float: {named}"
        )


def float_ops(content: bytes) -> list[str]:
    """Ops that stay float in a converted model (see `TFLiteModel.float_ops`, the one detector)."""
    from edgequant.tflite.model import TFLiteModel

    return TFLiteModel(content).float_ops()


def blocking_ops(content: bytes) -> list[dict]:
    """The float ops of a converted model that compute something ({op, tensor, layer}): the
    QUANTIZE/DEQUANTIZE the converter put around them are only their glue. `layer` is the
    Keras layer the op came from, read from its output tensor's name ('model/power/Square'
    -> 'power'; a fused name lists several, the first is the op's own)."""
    from edgequant.tflite.model import TFLiteModel

    model = TFLiteModel(content)
    out = []
    for entry in model.float_ops():
        op = model.operators[int(entry.split(":", 1)[0])]
        if op.op in ("QUANTIZE", "DEQUANTIZE"):
            continue
        tensor = model.tensors[op.outputs[0]].name if op.outputs else ""
        parts = tensor.split(";")[0].split("/")
        layer = parts[-2] if len(parts) >= 3 else None
        out.append({"op": op.label, "tensor": tensor, "layer": layer})
    return out


def write(content: bytes, recipe: Recipe, out_dir: str | Path, preprocessing=None) -> Path:
    """Writes `<name>.tflite` and `<name>.recipe.json` side by side; returns the model path.

    The one writer of quantized artifacts (every stage, the deployment and the binaries), so
    no .tflite lands without the recipe that made it. Both files are written atomically, the
    model first: a reader that finds the recipe finds its model. `preprocessing` (a
    `preprocess.Preprocessing`) is embedded in the model's metadata when given.
    """
    if preprocessing is not None:
        from edgequant.data import preprocess

        content = preprocess.embed(content, preprocessing)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{recipe.name}.tflite"
    atomic.write_bytes(path, content)
    recipe.save(recipe_path(path))
    return path


def recipe_path(model_path: str | Path) -> Path:
    """Where the recipe of `model_path` is: `<stem>.recipe.json` beside it."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.recipe.json")


def read_recipe(model_path: str | Path) -> Recipe:
    """The typed recipe written beside `model_path` (FileNotFoundError when there is none)."""
    return Recipe.load(recipe_path(model_path))
