"""Quantization-aware training of Keras 3 models, to a full-integer uint8 model (TF backend).

tfmot works only on tf_keras models; Keras 3 offers post-training quantization only. This module
rebuilds a Keras 3 functional or Sequential model with Keras 3-native fake quantization
(`fake_quant.py`) placed where TFLite quantizes a tensor:

- every model input, and the output of every op that computes new values (convolutions, Dense,
  Add, Concatenate, average pooling to a mean, standalone activations);
- not between a convolution/Dense/Add and the ReLU/ReLU6 that TFLite fuses into it, not inside a
  BatchNormalization that is folded into the convolution before it, and not after ops that keep
  their input's scale (max pooling, reshape, flatten, padding, nearest/bilinear resizing).

The trained model converts with the ordinary uint8 recipe (`convert.convert`): the converter
reads each fake-quant range as that tensor's scale and zero point. Training needs no labels:
without them (or for a regressor or multi-output model) the targets are the float model's own
outputs, matched by output name (distillation). The float model is only read: the QAT model is a
clone with copied weights.
"""

from __future__ import annotations

import dataclasses
import re
import time

import numpy as np

from edgequant.errors import UserError

CONV_LIKE = {"Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"}
# Ops whose output TFLite gives the input's scale: no range of their own.
SAME_SCALE = {
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "Reshape", "Flatten", "Dropout",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D",
    "UpSampling2D", "Resizing", "Identity", "SpatialDropout1D", "SpatialDropout2D",
}  # fmt: skip
# Ops that compute new values: their output gets a range.
RESCALING = {"Add", "Concatenate", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "Softmax"}
ACTIVATIONS = {"relu", "relu6", "hard_swish", "hard_silu", "sigmoid", "softmax", "linear"}
_PROBABILITIES = {"sigmoid", "softmax"}
SUPPORTED = CONV_LIKE | SAME_SCALE | RESCALING | {"BatchNormalization", "ReLU", "Activation"}


@dataclasses.dataclass
class QatModel:
    """A Keras 3 model with fake quantization, and what it was made from.

    `model` keeps the float model's inputs and outputs in order; `output_names` and
    `input_names` are the float model's signature names (the QAT model's own layer names differ
    where a quantizer follows an output). `quantized` lists the layers that were quantized.
    """

    model: object
    input_names: list[str]
    output_names: list[str]
    quantized: tuple[str, ...]
    folded: dict[str, str]  # BatchNormalization name -> the layer it was folded into
    layers: str | None
    per_channel: bool
    float_model: object = None


@dataclasses.dataclass(frozen=True)
class FineTuneResult:
    seconds: float
    epochs: int
    history: dict
    distilled: bool  # True when the targets were the float model's outputs


def _is_keras3(model) -> bool:
    return type(model).__module__.startswith("keras.") or type(model).__module__ == "keras"


def _activation(layer) -> str:
    """The activation a layer applies (its name), 'linear' when none."""
    cls = type(layer).__name__
    if cls == "ReLU":
        if layer.negative_slope or layer.threshold:
            return "leaky"
        if layer.max_value is None:
            return "relu"
        return "relu6" if float(layer.max_value) == 6.0 else "relu_n"
    if cls == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "linear") if act is not None else "linear"


def _why_unsupported(layer) -> str | None:
    cls = type(layer).__name__
    if cls == "InputLayer":
        return None
    if not _is_keras3(layer) or cls not in SUPPORTED:
        return "not a standard layer this QAT supports"
    if _activation(layer) not in ACTIVATIONS:
        return f"activation '{_activation(layer)}' has no int8 simulation here"
    if cls in ("Conv1D", "Conv2D") and getattr(layer, "groups", 1) != 1:
        return "grouped convolution"
    if getattr(layer, "padding", "") == "causal":
        return "causal padding"
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return "channels_first"
    if len(layer._inbound_nodes) > 1:
        return "layer shared between several calls"
    return None


def _functional(model):
    """The model as a functional graph (a built Sequential has one); UserError otherwise."""
    import keras

    if not _is_keras3(model):
        raise UserError(
            f"Keras 3 QAT needs a Keras 3 model; this one is a {type(model).__module__} model "
            "(tf_keras models go through tfmot's QAT)"
        )
    if isinstance(model, keras.Sequential):
        if not model.built or not getattr(model, "inputs", None):
            raise UserError("the Sequential model is not built: give it an Input first")
        return keras.Model(model.inputs, model.outputs, name=model.name)
    if type(model).__name__ != "Functional":
        raise UserError(
            f"Keras 3 QAT needs a functional or Sequential model; this one is a subclassed "
            f"{type(model).__name__} (rebuild it functionally from the same layers), PTQ still applies"
        )
    return model


def unsupported(model) -> list[tuple[str, str]]:
    """(layer name, class) of every layer the Keras 3 QAT cannot simulate; empty when it can."""
    graph = _functional(model)
    return [(ly.name, type(ly).__name__) for ly in graph.layers if _why_unsupported(ly)]


def _consumers(graph) -> dict[str, list]:
    """layer name -> the layers of `graph` that take its output."""
    names = {ly.name for ly in graph.layers}
    out: dict[str, list] = {ly.name: [] for ly in graph.layers}
    for ly in graph.layers:
        for node in ly._inbound_nodes:
            for t in node.input_tensors:
                src = t._keras_history.operation
                if src.name in names and ly.name in names:
                    out[src.name].append(ly)
    return out


def _plan(graph, selected: set[str]):
    """Which BatchNormalization folds into which layer, and which outputs need no range of
    their own (fused activations, same-scale ops)."""
    consumers = _consumers(graph)
    outputs = {t._keras_history.operation.name for t in graph.outputs}
    folded: dict[str, str] = {}
    for ly in graph.layers:
        cls = type(ly).__name__
        after = consumers[ly.name]
        if (
            cls in CONV_LIKE
            and ly.name in selected
            and _activation(ly) == "linear"
            and len(after) == 1
            and type(after[0]).__name__ == "BatchNormalization"
            and after[0].name in selected
            and ly.name not in outputs
            and after[0].axis in (-1, [-1], len(ly.output.shape) - 1, [len(ly.output.shape) - 1])
        ):
            folded[after[0].name] = ly.name
    no_range: set[str] = set()
    for ly in graph.layers:
        cls = type(ly).__name__
        if cls in SAME_SCALE or ly.name in folded:
            no_range.add(ly.name)
            continue
        effective = ly.name
        after = consumers[ly.name]
        if ly.name in folded.values():
            effective = next(b for b, c in folded.items() if c == ly.name)
            after = consumers[effective]
        fusable = (cls in CONV_LIKE or cls == "Add") and _activation(ly) == "linear"
        if (
            fusable
            and len(after) == 1
            and type(after[0]).__name__ in ("ReLU", "Activation")
            and _activation(after[0]) in ("relu", "relu6")
            and after[0].name in selected
            and effective not in outputs
        ):
            no_range.add(ly.name)
    return folded, no_range


def prepare(model, layers: str | None = None, per_channel: bool = True) -> QatModel:
    """A fake-quantized clone of a Keras 3 model; `layers` is a regex of the layer names to
    quantize (None: all). Raises UserError naming the layers it cannot simulate."""
    import keras

    from edgequant.train.fake_quant import ActivationQuantizer, NearestUpsampling, QuantizedConv
    from edgequant.usermodel import from_keras

    graph = _functional(model)
    try:
        pattern = re.compile(layers) if layers else None
    except re.error as e:
        raise UserError(f"qat layers: '{layers}' is not a regular expression ({e})") from None
    selected = {
        ly.name
        for ly in graph.layers
        if type(ly).__name__ != "InputLayer" and (pattern is None or pattern.search(ly.name))
    }
    if not selected:
        raise UserError(f"qat layers: '{layers}' matches no layer of the model")
    bad = [(ly.name, type(ly).__name__) for ly in graph.layers if ly.name in selected and _why_unsupported(ly)]
    if bad:
        names = ", ".join(f"{n} ({c}: {_why_unsupported(graph.get_layer(n))})" for n, c in bad)
        raise UserError(
            f"Keras 3 QAT cannot simulate layer(s) {names}: leave them out of the QAT layers "
            "regex or use the PTQ variants"
        )
    folded, no_range = _plan(graph, selected)
    bn_of = {conv: bn for bn, conv in folded.items()}
    weights = {ly.name: ly.get_weights() for ly in graph.layers}
    names = from_keras(model)
    quantized_inputs: dict[int, object] = {}

    def clone(layer):
        if layer.name in bn_of or (layer.name in selected and type(layer).__name__ in CONV_LIKE):
            bn = graph.get_layer(bn_of[layer.name]) if layer.name in bn_of else None
            return QuantizedConv(layer, bn, per_channel=per_channel)
        if type(layer).__name__ == "UpSampling2D" and layer.data_format == "channels_last":
            return NearestUpsampling(layer.size, layer.interpolation, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    def quantize_input(t):
        if id(t) not in quantized_inputs:
            src = t._keras_history.operation
            quantized_inputs[id(t)] = ActivationQuantizer(name=f"{src.name}_quant")(t)
        return quantized_inputs[id(t)]

    def call(layer, *args, **kwargs):
        if layer.name in folded:
            return args[0]  # folded into the layer before it
        if layer.name in selected:
            args = keras.tree.map_structure(
                lambda t: quantize_input(t)
                if isinstance(t, keras.KerasTensor)
                and type(t._keras_history.operation).__name__ == "InputLayer"
                else t,
                args,
            )
        out = layer(*args, **kwargs)
        if not isinstance(layer, QuantizedConv) and layer.weights:
            layer.set_weights(weights[layer.name])
        if layer.name not in selected or layer.name in no_range:
            return out
        fixed = None
        effective = bn_of.get(layer.name, layer.name)
        if _activation(graph.get_layer(effective)) in _PROBABILITIES or _activation(layer) in _PROBABILITIES:
            fixed = (0.0, 255.0 / 256.0)
        return ActivationQuantizer(fixed=fixed, name=f"{effective}_quant")(out)

    qat = keras.models.clone_model(graph, clone_function=clone, call_function=call)
    return QatModel(
        qat,
        names.input_names,
        names.output_names,
        tuple(sorted(selected)),
        folded,
        layers,
        per_channel,
        model,
    )
