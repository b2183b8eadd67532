"""What Keras 3 QAT reads from a functional graph: which layers it can simulate, which
BatchNormalization folds into which convolution, and which tensors TFLite gives a range.

TFLite fuses a ReLU/ReLU6 into the convolution, Dense or Add before it and folds a
BatchNormalization into the convolution before it, so those tensors never exist as int8 and get
no fake quantization; ops that keep their input's scale (max pooling, reshape, resizing) get no
range of their own either. Everything else that computes new values gets one.
"""

from __future__ import annotations

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
PROBABILITIES = {"sigmoid", "softmax"}
SUPPORTED = CONV_LIKE | SAME_SCALE | RESCALING | {"BatchNormalization", "ReLU", "Activation"}


def is_keras3(model) -> bool:
    return type(model).__module__.startswith("keras.") or type(model).__module__ == "keras"


def activation(layer) -> str:
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


def why_unsupported(layer) -> str | None:
    cls = type(layer).__name__
    if cls == "InputLayer":
        return None
    if not is_keras3(layer) or cls not in SUPPORTED:
        return "not a standard layer this QAT supports"
    if activation(layer) not in ACTIVATIONS:
        return f"activation '{activation(layer)}' has no int8 simulation here"
    if cls in ("Conv1D", "Conv2D") and getattr(layer, "groups", 1) != 1:
        return "grouped convolution"
    if getattr(layer, "padding", "") == "causal":
        return "causal padding"
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return "channels_first"
    if len(layer._inbound_nodes) > 1:
        return "layer shared between several calls"
    return None


def functional(model):
    """The model as a functional graph (a built Sequential has one); UserError otherwise."""
    import keras

    if not isinstance(model, keras.Model):
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
    graph = functional(model)
    return [(ly.name, type(ly).__name__) for ly in graph.layers if why_unsupported(ly)]


def consumers_of(graph) -> dict[str, list]:
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


def plan(graph):
    """Which BatchNormalization folds into which layer, and which outputs need no range of
    their own (fused activations, same-scale ops)."""
    consumers = consumers_of(graph)
    outputs = {t._keras_history.operation.name for t in graph.outputs}
    folded: dict[str, str] = {}
    for ly in graph.layers:
        after = consumers[ly.name]
        rank = len(ly.output.shape) if type(ly).__name__ in CONV_LIKE else 0
        if (
            type(ly).__name__ in CONV_LIKE
            and activation(ly) == "linear"
            and len(after) == 1
            and type(after[0]).__name__ == "BatchNormalization"
            and ly.name not in outputs
            and after[0].axis in (-1, [-1], rank - 1, [rank - 1])
        ):
            folded[after[0].name] = ly.name
    no_range: set[str] = set()
    fused: dict[str, str] = {}  # activation layer -> the layer TFLite fuses it into
    for ly in graph.layers:
        cls = type(ly).__name__
        if cls in SAME_SCALE or ly.name in folded:
            no_range.add(ly.name)
            continue
        effective = next((b for b, c in folded.items() if c == ly.name), ly.name)
        after = consumers[effective]
        fusable = (cls in CONV_LIKE or cls == "Add") and activation(ly) == "linear"
        if (
            fusable
            and len(after) == 1
            and type(after[0]).__name__ in ("ReLU", "Activation")
            and activation(after[0]) in ("relu", "relu6")
            and effective not in outputs
        ):
            no_range.add(ly.name)
            fused[after[0].name] = ly.name
    return folded, no_range, fused
