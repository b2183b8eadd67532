"""The fake-quantized clone of a Keras 3 model (where the quantizers go, and why: keras3_qat.py).

`prepare` rebuilds the float model's graph with fake_quant.py's layers and copies its weights,
leaving the float model untouched; `activate` switches the quantizers between the training
selection and all of them (what the converter sees); `export` and `predict` give the clone the
float model's input and output names.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from edgequant.errors import UserError
from edgequant.train import keras3_graph as graph_


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
    training_active: dict[str, bool]  # quantizer name -> on during training
    float_model: object = None


def _select(graph, layers: str | None) -> set[str]:
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
    return selected


def prepare(model, layers: str | None = None, per_channel: bool = True) -> QatModel:
    """A fake-quantized clone of a Keras 3 model; `layers` is a regex (re.search) of the layer
    names to quantize during training (None: all). Raises UserError naming the layers it cannot
    simulate.

    Selective QAT still places every quantizer of the full-integer model: outside the selection
    they only observe their ranges (EMA) during training and pass values through, and weights
    stay float; `export` switches them all on, since an Edge TPU model is integer throughout and
    the converter must find a range for every tensor.
    """
    import keras

    from edgequant.train.fake_quant import (
        PROBABILITY_RANGE,
        ActivationQuantizer,
        NearestUpsampling,
        QuantizedConv,
    )
    from edgequant.usermodel import from_keras

    graph = graph_.functional(model)
    selected = _select(graph, layers)
    bad = [(ly.name, type(ly).__name__) for ly in graph.layers if graph_.why_unsupported(ly)]
    if bad:
        names = ", ".join(
            f"{n} ({c}: {graph_.why_unsupported(graph.get_layer(n))})" for n, c in bad
        )
        raise UserError(f"Keras 3 QAT cannot simulate layer(s) {names}; PTQ still applies")
    folded, no_range, fused = graph_.plan(graph)
    bn_of = {conv: bn for bn, conv in folded.items()}
    weights = {ly.name: ly.get_weights() for ly in graph.layers}
    names = from_keras(model)
    quantized_inputs: dict[int, object] = {}

    def clone(layer):
        if type(layer).__name__ in graph_.CONV_LIKE:
            bn = graph.get_layer(bn_of[layer.name]) if layer.name in bn_of else None
            return QuantizedConv(layer, bn, per_channel, active=layer.name in selected)
        if type(layer).__name__ == "UpSampling2D":
            return NearestUpsampling(layer.size, layer.interpolation, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    def quantize_input(t, active: bool):
        if id(t) not in quantized_inputs:
            src = t._keras_history.operation
            q = ActivationQuantizer(name=f"{src.name}_quant", active=active)
            quantized_inputs[id(t)] = q(t)
        if active:
            quantized_inputs[id(t)]._keras_history.operation.active = True
        return quantized_inputs[id(t)]

    def is_input(t) -> bool:
        history = getattr(t, "_keras_history", None)
        return history is not None and type(history.operation).__name__ == "InputLayer"

    def call(layer, *args, **kwargs):
        if layer.name in folded:
            return args[0]  # folded into the layer before it
        # A fused activation carries the range of the op before it: on when either is selected.
        on = layer.name in selected or fused.get(layer.name) in selected
        args = keras.tree.map_structure(lambda t: quantize_input(t, on) if is_input(t) else t, args)
        out = layer(*args, **kwargs)
        if not isinstance(layer, QuantizedConv) and layer.weights:
            layer.set_weights(weights[layer.name])
        if layer.name in no_range:
            return out
        effective = bn_of.get(layer.name, layer.name)
        probabilities = graph_.activation(graph.get_layer(effective)) in graph_.PROBABILITIES
        fixed = (
            PROBABILITY_RANGE
            if probabilities or graph_.activation(layer) in graph_.PROBABILITIES
            else None
        )
        return ActivationQuantizer(fixed=fixed, name=f"{effective}_quant", active=on)(out)

    qat = keras.models.clone_model(graph, clone_function=clone, call_function=call)
    training_active = {layer.name: layer.active for layer in _switches(qat)}
    for layer in qat.layers:
        if type(layer).__name__ == "BatchNormalization":
            # Fine-tuning keeps the float model's statistics (as the folded ones are kept):
            # small QAT batches would otherwise drag them away from what the data needs.
            layer.trainable = False
    return QatModel(
        qat,
        names.input_names,
        names.output_names,
        tuple(sorted(selected)),
        folded,
        layers,
        per_channel,
        training_active,
        model,
    )


def _switches(qat_model) -> list:
    from edgequant.train.fake_quant import ActivationQuantizer, QuantizedConv

    out = []
    for layer in qat_model.layers:
        if isinstance(layer, (ActivationQuantizer, QuantizedConv)):
            out.append(layer)
            if isinstance(layer, QuantizedConv) and layer.mid is not None:
                out.append(layer.mid)
    return out


def activate(qat: QatModel, everything: bool) -> None:
    """Switches fake quantization on everywhere (`everything`: what the converter will see)
    or back to the training selection."""
    for layer in _switches(qat.model):
        layer.active = everything or qat.training_active[layer.name]


def predict(model, x: dict, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Outputs by name of a QatModel (or any Keras model / UserModel) in inference mode."""
    from edgequant.usermodel import UserModel, from_keras

    um = export(model) if isinstance(model, QatModel) else model
    um = um if isinstance(um, UserModel) else from_keras(um)
    n = len(next(iter(x.values())))
    parts: dict[str, list] = {}
    for s in range(0, n, batch_size):
        out = um.predict(
            {k: np.asarray(x[k][s : s + batch_size], np.float32) for k in um.input_names}
        )
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def export(qat: QatModel):
    """The QAT model as a convertible model (a UserModel) with the float model's input and
    output names: give it to `convert.convert` with the uint8 recipe."""
    from edgequant.usermodel import TensorInfo, UserModel, from_keras

    activate(qat, everything=True)
    names = UserModel(
        "", "keras3",
        [TensorInfo(n, ()) for n in qat.input_names],
        [TensorInfo(n, ()) for n in qat.output_names],
    )  # fmt: skip
    return from_keras(qat.model, fmt="keras3", names_from=names)
