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


@dataclasses.dataclass(frozen=True)
class FineTuneResult:
    seconds: float
    epochs: int
    history: dict
    distilled: bool  # True when the targets were the float model's outputs


# (layer name, class) of every layer the Keras 3 QAT cannot simulate: part of this API.
unsupported = graph_.unsupported


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


def _check_inputs(qat: QatModel, x: dict) -> int:
    """The number of samples; UserError when names or shapes do not match the model."""
    from edgequant.tensors import shapes_match

    if not isinstance(x, dict):
        raise UserError("QAT inputs must be a dict of input name -> float32 array")
    missing = [n for n in qat.input_names if n not in x]
    if missing:
        raise UserError(f"QAT training data has no input(s) {missing}; it has {sorted(x)}")
    sizes = set()
    for name, t in zip(qat.input_names, qat.model.inputs, strict=True):
        got = np.shape(x[name])[1:]
        if not shapes_match(got, tuple(t.shape[1:])):
            raise UserError(
                f"QAT training data for input '{name}' has samples of shape {list(got)}; "
                f"the model takes {list(t.shape[1:])}"
            )
        sizes.add(len(x[name]))
    if len(sizes) != 1 or 0 in sizes:
        raise UserError(f"QAT training inputs must have one, non-zero length; got {sorted(sizes)}")
    return sizes.pop()


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


def _is_probability(y: np.ndarray) -> bool:
    return (
        y.ndim == 2
        and y.shape[-1] > 1
        and bool(np.all(y >= 0))
        and np.allclose(y.sum(-1), 1, atol=1e-3)
    )


def _targets_and_losses(qat: QatModel, x: dict, targets, float_model):
    """(target arrays in output order, losses, distilled). Labels train a one-output classifier;
    otherwise the targets are per output name (given, or the float model's outputs)."""
    import keras

    reference = float_model if float_model is not None else qat.float_model
    names = qat.output_names
    if targets is None or isinstance(targets, dict):
        distilled = targets is None
        if distilled:
            if reference is None:
                raise UserError("QAT without labels distils the float model: give float_model")
            targets = predict(reference, x)
        missing = [n for n in names if n not in targets]
        if missing:
            raise UserError(f"QAT targets have no output(s) {missing}; they have {sorted(targets)}")
        ys = [np.asarray(targets[n], np.float32) for n in names]
        losses = [
            keras.losses.CategoricalCrossentropy()
            if _is_probability(y)
            else keras.losses.MeanSquaredError()
            for y in ys
        ]
        return ys, losses, distilled
    labels = np.asarray(targets)
    if len(names) != 1:
        raise UserError(
            f"labels train a one-output classifier; this model has {len(names)} outputs "
            f"({', '.join(names)}): train without labels (distillation) or give targets by name"
        )
    shape = tuple(qat.model.outputs[0].shape)
    if len(shape) != 2 or (shape[-1] or 0) < 2:
        raise UserError(
            f"labels need a classifier output [N, classes]; output '{names[0]}' is {list(shape)}"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError("QAT labels must be one integer class per sample")
    if labels.min() < 0 or labels.max() >= shape[-1]:
        raise UserError(
            f"QAT labels run {labels.min()}..{labels.max()} but the model has {shape[-1]} classes"
        )
    sample = (
        predict(reference, {k: v[:32] for k, v in x.items()})[names[0]]
        if reference is not None
        else None
    )
    probs = sample is not None and _is_probability(sample)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probs)
    return [labels.astype(np.int64)], [loss], False


def fine_tune(
    qat: QatModel,
    x: dict,
    targets=None,
    epochs: int = 1,
    learning_rate: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    float_model=None,
    strategy=None,
    verbose: int = 0,
) -> FineTuneResult:
    """Fine-tunes the QAT model in place: on integer `targets` (labels) for a one-output
    classifier, on `targets` by output name, or, with none, on the float model's outputs
    (distillation: no labels needed). NaN loss stops training with a UserError, so the caller
    keeps its PTQ variants. Under a tf.distribute `strategy` a replica is built in its scope,
    trained, and its weights copied back; nothing is written, so any worker may call this.
    """

    import keras
    import tensorflow as tf

    n = _check_inputs(qat, x)
    ys, losses, distilled = _targets_and_losses(qat, x, targets, float_model)
    for name, y in zip(qat.output_names, ys, strict=True):
        if len(y) != n:
            raise UserError(f"QAT targets for '{name}' have {len(y)} samples, the inputs {n}")
    keras.utils.set_random_seed(seed)
    activate(qat, everything=False)
    xs = [np.asarray(x[k], np.float32) for k in qat.input_names]
    start = time.perf_counter()
    _initialise_ranges(qat.model, xs, batch_size)
    model = qat.model
    if strategy is not None:
        with strategy.scope():
            model = prepare(qat.float_model, qat.layers, qat.per_channel).model
        model.set_weights(qat.model.get_weights())
    # One input or output is given bare: Keras warns about a 1-tuple for a one-input model.
    data = tf.data.Dataset.from_tensor_slices(
        (xs[0] if len(xs) == 1 else tuple(xs), ys[0] if len(ys) == 1 else tuple(ys))
    )
    data = data.shuffle(n, seed=seed).batch(batch_size)
    if strategy is None:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=list(losses))
        fit = model.fit(
            data,
            epochs=epochs,
            verbose=verbose,
            shuffle=False,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )
        history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    else:
        loss = _fit_distributed(model, data, losses, learning_rate, epochs, batch_size, strategy)
        history = {"loss": loss}
    loss = history.get("loss", [])
    if any(not np.isfinite(v) for v in loss):
        at = next(i for i, v in enumerate(loss) if not np.isfinite(v)) + 1
        raise UserError(
            f"QAT diverged: the loss became NaN in epoch {at} (learning rate {learning_rate:g}); "
            "lower qat learning_rate; the PTQ variants stand"
        )
    if model is not qat.model:
        qat.model.set_weights(model.get_weights())
    return FineTuneResult(time.perf_counter() - start, len(loss), history, distilled)


def _fit_distributed(model, data, losses, learning_rate, epochs, batch_size, strategy) -> list:
    """The training steps under a tf.distribute strategy, as a plain loop: Keras 3's `fit`
    fails across workers (it MEAN-reduces a distributed batch to build the model, and its
    scalar logs with axis=0). Each replica's per-sample loss is summed over the global batch
    (tf.distribute's rule); returns the mean loss of each epoch, stopping at a non-finite one."""
    import keras
    import tensorflow as tf

    per_sample = [type(f).from_config({**f.get_config(), "reduction": None}) for f in losses]
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(model.trainable_variables)

    def replica_step(x, y):
        ys = y if isinstance(y, tuple) else (y,)
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            preds = pred if isinstance(pred, list | tuple) else [pred]
            loss = tf.add_n(
                [tf.reduce_sum(f(t, p)) for f, t, p in zip(per_sample, ys, preds, strict=True)]
            ) / float(batch_size)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function
    def step(x, y):
        return strategy.reduce("SUM", strategy.run(replica_step, args=(x, y)), axis=None)

    history = []
    for _ in range(epochs):
        total, steps = 0.0, 0
        for x, y in strategy.experimental_distribute_dataset(data):
            total, steps = total + float(step(x, y)), steps + 1
        history.append(total / max(steps, 1))
        if not np.isfinite(history[-1]):
            break
    return history


def _initialise_ranges(model, xs: list, batch_size: int, batches: int = 8) -> None:
    """Sets every activation range from a few batches before the first gradient step, so
    training starts from calibrated ranges rather than from [0, 0]."""
    n = len(xs[0])
    for s in range(0, min(n, batches * batch_size), batch_size):
        feed = [v[s : s + batch_size] for v in xs]
        model(feed[0] if len(feed) == 1 else feed, training=True)


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


def parity(model, tflite_path, x: dict, batch_size: int = 256) -> dict:
    """Agreement of a QAT Keras model with its converted .tflite on `x`, per output name:
    SQNR (dB), cosine, max abs error, and top-1 agreement for classifier-shaped outputs.
    The .tflite is read through its signature, never by output index."""
    from edgequant.evaluate.metrics import Fidelity, is_classifier_shaped
    from edgequant.evaluate.runner import SignatureModel

    ref = predict(model, x, batch_size)
    got = SignatureModel(tflite_path, batch_size=batch_size).predict(x)
    out = {}
    for name, r in ref.items():
        if name not in got:
            raise UserError(f"{tflite_path} has no output '{name}'; it has {sorted(got)}")
        f = Fidelity(is_classifier_shaped(r.shape))
        f.update(r, got[name])
        out[name] = f.result()
    return out
