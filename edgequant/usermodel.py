"""The user's model, whatever it was saved as: format from the content, named inputs and outputs.

Users arrive with a Keras 3 `.keras` file (the default since TF 2.16), a tf_keras `.keras` or
legacy `.h5`, a SavedModel folder, or a float `.tflite`. Each is detected from its bytes, not its
extension (a renamed file is common), and every one is reduced to the same thing: a TF callable
with named inputs and a dict of named outputs. Converting that callable as a concrete function
gives a `.tflite` whose signature keeps the model's own input and output names, so outputs are
read back by name through the signature runner; tensor names such as `StatefulPartitionedCall:1`
and their order never matter. The same callable serves Keras 3 and tf_keras models: tf_keras
cannot load a Keras 3 file, and TFLiteConverter.from_keras_model does not take a Keras 3 model.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from edgequant import modelfile
from edgequant.errors import UserError
from edgequant.tensors import TensorInfo

FORMATS = ("keras3", "tf_keras", "h5", "saved_model", "tflite")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NORMALIZING_LAYERS = ("Rescaling", "Normalization")


def detect_format(path: str | Path) -> str:
    """One of FORMATS, read from the file's content; a one-line error for anything else."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "saved_model"
        raise UserError(f"{path} is a folder without saved_model.pb: not a SavedModel")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    if head == _HDF5_MAGIC:
        return "h5"
    if zipfile.is_zipfile(path):
        meta = modelfile.read_metadata(path)  # member sizes checked before anything inflates
        major = str(meta.get("keras_version", "")).split(".")[0]
        return "keras3" if major == "3" else "tf_keras"
    raise UserError(
        f"{path}: unrecognised model format (expected a .keras/.h5 Keras file, a SavedModel "
        "folder or a .tflite)"
    )


@dataclasses.dataclass
class UserModel:
    """A loaded model reduced to named inputs/outputs and a TF callable (None for .tflite)."""

    path: str
    format: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    signature: str = "serving_default"
    keras: object = None  # the Keras model (tf_keras or Keras 3), when there is one
    _call: object = None  # dict[str, Tensor] -> dict[str, Tensor]
    _trackable: object = None  # what owns the variables (needed by the converter)
    # batch -> the SavedModel export the converters read (one export per model, not per recipe)
    _exports: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def describe(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "signature": self.signature,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @property
    def is_tf_keras(self) -> bool:
        return self.keras is not None and type(self.keras).__module__.startswith("tf_keras")

    def qat_support(self) -> str | None:
        """None when tfmot can annotate this model, else the one-line reason it cannot."""
        if self.keras is None:
            return f"QAT needs a Keras model; {self.format} models go through PTQ only"
        if not self.is_tf_keras:
            return (
                "QAT needs a tf_keras model (tfmot does not support Keras 3); "
                "PTQ still applies to this Keras 3 model"
            )
        kind = type(self.keras).__name__
        if kind not in ("Functional", "Sequential"):
            return f"QAT needs a functional or Sequential model; this one is a subclassed {kind}"
        return None

    def normalizes_input(self) -> bool:
        """True when the model starts with its own Rescaling/Normalization layer, so it takes
        pixels as they are (0..255) and no value mapping must be guessed."""
        if self.keras is None:
            return False
        layers = [
            layer for layer in self.keras.layers if type(layer).__name__ not in ("InputLayer",)
        ]
        return bool(layers) and type(layers[0]).__name__ in _NORMALIZING_LAYERS

    def concrete_function(self, batch: int | None = None):
        """The model as a concrete function with named inputs (batch fixed when given)."""
        import tensorflow as tf

        if self._call is None:
            raise UserError(f"{self.path} is a .tflite: it cannot be converted again")
        specs = {
            t.name: tf.TensorSpec([batch, *t.sample_shape], _tf_dtype(t.dtype), name=t.name)
            for t in self.inputs
        }
        call = self._call
        return tf.function(lambda **kw: call(kw)).get_concrete_function(**specs)

    def converter(self, batch: int | None = None):
        """A TFLiteConverter over a SavedModel written from the concrete function.

        Converting the concrete function directly leaves a Keras 3 model's weights as resource
        variables (READ_VARIABLE ops that fail at run time); the SavedModel route freezes them
        for every format alike, and keeps the named inputs and outputs as the signature. The
        export is made once per batch size and shared by every recipe's converter (it was half
        of each conversion's time); a model whose weights change is a new UserModel.
        """
        import tensorflow as tf

        if batch not in self._exports:
            self._exports[batch] = self._export(batch)
        export = self._exports[batch]
        conv = tf.lite.TFLiteConverter.from_saved_model(
            export.name, signature_keys=["serving_default"]
        )
        conv._edgequant_export = export  # the folder lives as long as the converter
        return conv

    def _export(self, batch: int | None):
        """A temporary SavedModel of the model at `batch` (removed when the last user drops it)."""
        import tempfile

        import tensorflow as tf

        fn = self.concrete_function(batch)
        holder = tf.Module()
        if self.keras is not None:
            # Keras 3 variables wrap a tf.Variable (`.value`): track those, or the SavedModel
            # keeps unresolved resource reads.
            holder.variables_ = [
                v if isinstance(v, tf.Variable) else v.value for v in self.keras.variables
            ]
        else:
            holder.model = self._trackable
        export = tempfile.TemporaryDirectory(prefix="edgequant-export-")
        tf.saved_model.save(holder, export.name, signatures={"serving_default": fn})
        return export

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float outputs of the original model on one batch (for parity checks)."""
        import tensorflow as tf

        out = self._call({k: tf.constant(v) for k, v in inputs.items()})
        return {k: np.asarray(v) for k, v in out.items()}


def _tf_dtype(name: str):
    import tensorflow as tf

    return tf.as_dtype(name)


def _keras_tensor_info(tensors, names) -> list[TensorInfo]:
    out = []
    for t, name in zip(tensors, names, strict=True):
        shape = tuple(None if d is None else int(d) for d in t.shape)
        dtype = getattr(t.dtype, "name", str(t.dtype))
        out.append(TensorInfo(str(name), shape, "float32" if dtype is None else str(dtype)))
    return out


def from_keras(
    model, path: str = "", fmt: str = "", names_from: UserModel | None = None
) -> UserModel:
    """Wraps an in-memory Keras model (tf_keras or Keras 3, functional or Sequential).

    `names_from` keeps another model's input and output names: a QAT clone renames its layers
    (quant_<name>), but its signature must match the float model it is compared with.
    """
    if not getattr(model, "inputs", None):
        raise UserError(
            "the Keras model has no defined inputs (a subclassed model never called?); "
            "save it after building it on an input shape"
        )
    if names_from is not None:
        input_names, output_names = names_from.input_names, names_from.output_names
    else:
        input_names = [_clean(getattr(t, "name", f"input_{i}")) for i, t in enumerate(model.inputs)]
        output_names = _keras_output_names(model)
    inputs = _keras_tensor_info(model.inputs, input_names)
    outputs = _keras_tensor_info(model.outputs, output_names)
    if not fmt:
        fmt = "tf_keras" if type(model).__module__.startswith("tf_keras") else "keras3"

    def call(kw: dict) -> dict:
        args = [kw[n] for n in input_names]
        out = model(args[0] if len(args) == 1 else args, training=False)
        if isinstance(out, dict):
            return {_clean(k): v for k, v in out.items()}
        import tensorflow as tf

        return dict(zip(output_names, tf.nest.flatten(out), strict=True))

    return UserModel(path, fmt, inputs, outputs, "serving_default", model, call, model)


def _keras_output_names(model) -> list[str]:
    """The names of the layers that make the outputs (Keras 3 names a Sequential model's
    output 'output_0'), else Keras' own output names, else output_<i>."""
    layers = []
    for t in model.outputs:
        history = getattr(t, "_keras_history", None)
        owner = getattr(history, "operation", None) or getattr(history, "layer", None)
        layers.append(getattr(owner, "name", None))
    names = list(getattr(model, "output_names", None) or [])
    if None not in layers and len(set(layers)) == len(layers):
        names = layers
    elif len(names) != len(model.outputs):
        names = [f"output_{i}" for i in range(len(model.outputs))]
    return [_clean(n) for n in names]


def _clean(name: str) -> str:
    """A TensorFlow-safe signature key: 'input_1:0' -> 'input_1'."""
    name = str(name).split(":")[0]
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name) or "x"


def _load_saved_model(path: Path, signature: str) -> UserModel:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001 - TF raises many types for a bad SavedModel
        raise UserError(f"cannot load SavedModel {path}: {str(e).splitlines()[0][:200]}") from None
    sigs = dict(loaded.signatures)
    if signature not in sigs:
        raise UserError(
            f"SavedModel {path} has no signature '{signature}'; "
            f"available: {', '.join(sorted(sigs)) or 'none'} (pass --signature)"
        )
    fn = sigs[signature]
    specs = fn.structured_input_signature[1]
    inputs = [
        TensorInfo(name, tuple(None if d is None else int(d) for d in s.shape), s.dtype.name)
        for name, s in sorted(specs.items())
    ]
    outputs = [
        TensorInfo(name, tuple(None if d is None else int(d) for d in s.shape), s.dtype.name)
        for name, s in sorted(fn.structured_outputs.items())
    ]

    def call(kw: dict) -> dict:
        return fn(**kw)

    return UserModel(str(path), "saved_model", inputs, outputs, signature, None, call, loaded)


def _load_tflite(path: Path, signature: str) -> UserModel:
    from edgequant.evaluate.runner import SignatureModel

    m = SignatureModel(path, signature=signature)
    return UserModel(str(path), "tflite", m.inputs, m.outputs, m.signature)


def load(
    path: str | Path, signature: str = "serving_default", trust_code: bool = False
) -> UserModel:
    """Loads any supported model; the format comes from the content (see module docstring).

    Safe by default (edgequant/modelfile.py): a Keras file whose loading would run code it
    carries (a Lambda layer) is refused unless `trust_code`, and archive sizes are capped.
    """
    path = Path(path).expanduser()
    fmt = detect_format(path)
    if fmt == "saved_model":
        modelfile.check_saved_model(path)
        return _load_saved_model(path, signature)
    if fmt == "tflite":
        return _load_tflite(path, signature)
    return from_keras(load_keras(path, trust_code), str(path), fmt)


def load_keras(path: str | Path, trust_code: bool = False):
    """The raw Keras model of a .keras/.h5 file (either flavour, detected from the content),
    loaded safely: what tools that rewrite the Keras graph (edgetpu/repair.py) start from."""
    path = Path(path).expanduser()
    fmt = detect_format(path)
    if fmt not in ("keras3", "tf_keras", "h5"):
        raise UserError(f"{path} is a {fmt} model, not a Keras .keras/.h5 file")
    return modelfile.load_keras(path, fmt, trust_code)
