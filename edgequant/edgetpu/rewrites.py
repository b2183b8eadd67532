"""Rewrite rules: Keras layers the Edge TPU cannot run, and standard-layer forms it can.

Every rule finds its targets in a Keras graph (keras_graph.nodes) or, for patterns the converter
fuses only later, in the converted TFLite model through its tensor names, which carry the Keras
layer names (`model/<layer>/...`, Keras 3 `functional_1/<layer>_1/...`). A match names the layer
whose output is replaced and how to build the replacement from standard layers only, so the
rewritten model loads anywhere without custom objects.

Exact rules change float results only by rounding; approximate ones (`exact=False`) are applied
only when asked and their error is measured by the caller. Forms were chosen by converting them
(TF 2.21): TFLiteConverter fuses `x * relu6(x + 3) / 6` (any order of the multiplies) into
HARD_SWISH and `0.5x(1 + tanh(...))` into GELU, so the replacements below are written in an
algebraically equal order the fusion patterns do not match.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from edgequant.edgetpu import keras_graph
from edgequant.edgetpu.analyzer import DOWNSTREAM, Analysis
from edgequant.tflite.model import TFLiteModel


@dataclasses.dataclass(frozen=True)
class Match:
    rule: str
    layer: str  # the layer whose output the replacement builds
    exact: bool
    make: keras_graph.Replacement
    what: str  # what was found, in words


# Rule name -> (exact, why). The order is the order they are tried.
RULES = {
    "dynamic_batch": (True, "dynamic batch -> static batch 1 (the compiler needs static shapes)"),
    "leaky_relu": (
        True,
        "LeakyReLU -> PReLU with constant per-channel alpha (Coral: LeakyReLU "
        "is not on the roadmap, google-coral/edgetpu#147; PReLU maps)",
    ),
    "hard_swish": (True, "hard-swish -> x * min(relu(x/6 + 0.5), 1) (HARD_SWISH is not mapped)"),
    "divide_const": (True, "division by a constant -> multiplication by its inverse"),
    "square": (True, "square / power of two -> x * x"),
    "negate": (True, "negation -> multiplication by -1"),
    "mean_to_avg_pool": (
        True,
        "MEAN over a large H x W -> staged AVERAGE_POOL_2D (google-coral/edgetpu#461)",
    ),
    "gelu": (False, "GELU -> tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))"),
    "elu": (
        False,
        "ELU -> relu(x) + alpha * p(sigmoid(min(x, 0))), p a degree-5 polynomial for e^m - 1",
    ),
}


def _name(layer, tag: str) -> str:
    again = f"_{keras_graph.call_index}" if keras_graph.call_index else ""
    return f"{layer.name}_etpu_{tag}{again}"


# ----------------------------------------------------------------------------- replacements


def prelu(x, alpha: float, k, base: str):
    """PReLU with alpha repeated per channel: a scalar alpha is fused back into LEAKY_RELU by
    the converter, and the Edge TPU needs alpha 1-D (shared over all axes but channels)."""
    rank = len(x.shape)
    shared = list(range(1, rank - 1)) or None
    layer = k.layers.PReLU(
        alpha_initializer=k.initializers.Constant(float(alpha)), shared_axes=shared, name=base
    )
    return layer(x)


def hard_swish(x, k, base: str):
    """x * relu6(x + 3) / 6 == x * min(max(x/6 + 0.5, 0), 1): MUL, ADD, RELU, MINIMUM, MUL."""
    s = k.layers.Rescaling(1.0 / 6.0, 0.5, name=f"{base}_affine")(x)
    s = k.layers.ReLU(max_value=1.0, name=f"{base}_clip")(s)
    return k.layers.Multiply(name=f"{base}_mul")([x, s])


def gelu_tanh(x, k, base: str):
    """0.5x(1 + tanh(c(x + 0.044715x^3))) with the 0.5 folded as Rescaling(0.5, 0.5) of the
    tanh: the form `0.5x * (1 + tanh(...))` is fused back into GELU by the converter."""
    cube = k.layers.Multiply(name=f"{base}_cube")([x, x, x])
    inner = k.layers.Add(name=f"{base}_inner")(
        [x, k.layers.Rescaling(0.044715, name=f"{base}_c3")(cube)]
    )
    inner = k.layers.Rescaling(math.sqrt(2.0 / math.pi), name=f"{base}_scale")(inner)
    t = k.layers.Activation("tanh", name=f"{base}_tanh")(inner)
    half = k.layers.Rescaling(0.5, 0.5, name=f"{base}_half")(t)
    return k.layers.Multiply(name=f"{base}_mul")([x, half])


# e^m - 1 for m <= 0 as a polynomial in s = sigmoid(m) in (0, 0.5] (e^m = s / (1 - s)); a
# Chebyshev least-squares fit of degree 5, max error 1.9e-4 on the whole half-line.
_ELU_POLY = (-1.00013273, 1.01058534, 0.80273412, 2.42495014, -3.53644673, 6.77993163)


def elu_approx(x, alpha: float, k, base: str):
    pos = k.layers.ReLU(name=f"{base}_pos")(x)
    neg = k.layers.Subtract(name=f"{base}_neg")([x, pos])  # min(x, 0)
    s = k.layers.Activation("sigmoid", name=f"{base}_sig")(neg)
    c = _ELU_POLY
    h = k.layers.Rescaling(c[5], c[4], name=f"{base}_h5")(s)
    for i in range(3, -1, -1):  # Horner: h = h * s + c[i]
        h = k.layers.Multiply(name=f"{base}_m{i}")([h, s])
        h = k.layers.Rescaling(1.0, c[i], name=f"{base}_h{i}")(h)
    h = k.layers.Rescaling(float(alpha), name=f"{base}_alpha")(h)
    return k.layers.Add(name=f"{base}_out")([pos, h])


def staged_avg_pool(x, keepdims: bool, k, base: str):
    """Global average over H x W as average pools of at most 8 per side, then the rest: a
    mean of equal-block means is the mean."""
    h, w = int(x.shape[1]), int(x.shape[2])
    y, step = x, 0
    while h > 8 or w > 8:
        ph = next((d for d in range(8, 1, -1) if h % d == 0), h) if h > 8 else 1
        pw = next((d for d in range(8, 1, -1) if w % d == 0), w) if w > 8 else 1
        y = k.layers.AveragePooling2D((ph, pw), name=f"{base}_pool{step}")(y)
        h, w, step = h // ph, w // pw, step + 1
    y = k.layers.AveragePooling2D((h, w), name=f"{base}_pool{step}")(y)
    shape = (1, 1, int(x.shape[-1])) if keepdims else (int(x.shape[-1]),)
    return k.layers.Reshape(shape, name=f"{base}_reshape")(y)


# ----------------------------------------------------------------------------- Keras-level match


def _activation_of(layer) -> tuple[str, float] | None:
    """(kind, parameter) of an activation the Edge TPU lacks, for activation layers and for
    layers with an activation= argument."""
    cls = type(layer).__name__
    cfg = layer.get_config()
    if cls == "LeakyReLU":
        return "leaky_relu", float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
    if cls == "ReLU" and cfg.get("negative_slope") and cfg.get("max_value") is None:
        if not cfg.get("threshold"):
            return "leaky_relu", float(cfg["negative_slope"])
    if cls == "ELU":
        return "elu", float(cfg.get("alpha", 1.0))
    act = cfg.get("activation")
    if isinstance(act, dict):
        act = act.get("config", {}).get("name", act.get("class_name"))
    if not isinstance(act, str):
        return None
    return {
        "leaky_relu": ("leaky_relu", 0.2),
        "hard_swish": ("hard_swish", 0.0),
        "hard_silu": ("hard_swish", 0.0),
        "gelu": ("gelu", 0.0),
        "elu": ("elu", 1.0),
    }.get(act)


def _build_activation(kind: str, param: float):
    def build(x, k, base):
        if kind == "leaky_relu":
            return prelu(x, param, k, base)
        if kind == "hard_swish":
            return hard_swish(x, k, base)
        if kind == "gelu":
            return gelu_tanh(x, k, base)
        return elu_approx(x, param, k, base)

    return build


def _activation_match(node) -> Match | None:
    found = _activation_of(node.layer)
    if found is None:
        return None
    kind, param = found
    build = _build_activation(kind, param)
    layer = node.layer
    standalone = type(layer).__name__ in ("Activation", "LeakyReLU", "ReLU", "ELU")

    def make(old, inputs, k, tensor_of):
        x = inputs[0]
        if not standalone:  # split Conv2D(activation="gelu") into the linear layer + activation
            cfg = old.get_config() | {"activation": "linear", "name": _name(old, "linear")}
            linear = type(old).from_config(cfg)
            x = linear(x)
            linear.set_weights(old.get_weights())
        return build(x, k, _name(old, kind))

    exact = RULES[kind][0]
    return Match(kind, layer.name, exact, make, f"{type(layer).__name__} '{layer.name}' ({kind})")


_OPS = {  # tf_keras TFOpLambda symbols and Keras 3 operation classes -> rule
    "math.truediv": "divide_const",
    "math.divide": "divide_const",
    "TrueDivide": "divide_const",
    "Divide": "divide_const",
    "math.square": "square",
    "Square": "square",
    "math.pow": "square",
    "Power": "square",
    "math.negative": "negate",
    "Negative": "negate",
}


def _constant(value) -> float | None:
    if isinstance(value, (int, float, np.number)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.reshape(()))
    return None


def _op_match(node) -> Match | None:
    layer = node.layer
    key = getattr(layer, "symbol", None) or type(layer).__name__
    rule = _OPS.get(key)
    if rule is None or len(node.inputs) != 1:
        return None
    other = node.args[1] if len(node.args) > 1 else node.kwargs.get("y")
    if rule == "divide_const":
        c = _constant(other)
        if c is None or c == 0 or node.args[0] is not node.inputs[0]:
            return None

        def make(old, inputs, k, tensor_of):
            return k.layers.Rescaling(1.0 / c, name=_name(old, "mul"))(inputs[0])

        return Match(rule, layer.name, True, make, f"'{layer.name}': x / {c:g}")
    if rule == "square":
        if key in ("math.pow", "Power") and _constant(other) != 2.0:
            return None

        def make(old, inputs, k, tensor_of):
            return k.layers.Multiply(name=_name(old, "sq"))([inputs[0], inputs[0]])

        return Match(rule, layer.name, True, make, f"'{layer.name}': x^2")

    def make(old, inputs, k, tensor_of):
        return k.layers.Rescaling(-1.0, name=_name(old, "neg"))(inputs[0])

    return Match(rule, layer.name, True, make, f"'{layer.name}': -x")


# ----------------------------------------------------------------------------- TFLite-level match


def _layers_in(tensor_name: str, tags: dict[str, str]) -> list[str]:
    """Keras layer names inside a tensor name converted under keras_graph.tagged_names, e.g.
    'model/etpu7x/mul;model/etpu5x_1/Relu6' (any scope suffix after the tag is TF's)."""
    found = []
    for tag in re.findall(r"etpu\d+x", tensor_name):
        if tag in tags and tags[tag] not in found:
            found.append(tags[tag])
    return found


def _output_layer(model, tfl: TFLiteModel, tensor: int) -> list[str]:
    """A model output tensor is named after the signature ('StatefulPartitionedCall:0'), not the
    layer; with one output it is the output layer's (possibly through the final QUANTIZE)."""
    graph_outputs = keras_graph._flatten(keras_graph._graph(model).outputs)
    if len(graph_outputs) != 1:
        return []
    feeds_output = tensor in tfl.outputs or any(
        op.op == "QUANTIZE" and tensor in op.inputs and op.outputs[0] in tfl.outputs
        for op in tfl.operators
    )
    return [graph_outputs[0]._keras_history[0].name] if feeds_output else []


def _tflite_matches(
    model, tfl: TFLiteModel, analysis: Analysis, tags: dict[str, str], taken: set[str]
) -> list[Match]:
    views = keras_graph.nodes(model)
    order = {n.layer.name: i for i, n in enumerate(views)}
    by_name = {n.layer.name: n for n in views}
    out: list[Match] = []
    for op, verdict in zip(tfl.operators, analysis.ops, strict=True):
        if verdict.mapped or verdict.status == DOWNSTREAM:
            continue
        if op.op == "HARD_SWISH":
            outs = _layers_in(tfl.tensors[op.outputs[0]].name, tags) or _output_layer(
                model, tfl, op.outputs[0]
            )
            ins = _layers_in(tfl.tensors[op.inputs[0]].name, tags)
            if not outs or not ins:
                continue
            last = max(outs, key=order.get)
            source = max(ins, key=order.get)
            if last in taken or order[source] >= order[last]:
                continue
            x_old = by_name[source].outputs[0]

            def make(old, inputs, k, tensor_of, x_old=x_old):
                return hard_swish(tensor_of(x_old), k, _name(old, "hard_swish"))

            out.append(
                Match("hard_swish", last, True, make, f"layers {source} -> {last} (HARD_SWISH)")
            )
        elif op.op == "MEAN":
            names = _layers_in(tfl.tensors[op.outputs[0]].name, tags) or _output_layer(
                model, tfl, op.outputs[0]
            )
            for name in names:
                node = by_name[name]
                if type(node.layer).__name__ != "GlobalAveragePooling2D" or name in taken:
                    continue
                if node.layer.get_config().get("data_format", "channels_last") != "channels_last":
                    continue
                keep = bool(node.layer.get_config().get("keepdims", False))

                def make(old, inputs, k, tensor_of, keep=keep):
                    return staged_avg_pool(inputs[0], keep, k, _name(old, "avg"))

                out.append(
                    Match(
                        "mean_to_avg_pool",
                        name,
                        True,
                        make,
                        f"GlobalAveragePooling2D '{name}': {verdict.reason}",
                    )
                )
    return out


def find(
    model,
    tfl: TFLiteModel | None = None,
    analysis: Analysis | None = None,
    tags: dict[str, str] | None = None,
) -> list[Match]:
    """Every rule match in the model, Keras-level first, then TFLite-level ones (these need the
    model converted under keras_graph.tagged_names, and its tags)."""
    out: list[Match] = []
    for node in keras_graph.nodes(model):
        m = _activation_match(node) or _op_match(node)
        if m is not None and all(m.layer != o.layer for o in out):  # a shared layer: once
            out.append(m)
    if tfl is not None and analysis is not None and tags is not None:
        out += _tflite_matches(model, tfl, analysis, tags, {m.layer for m in out})
    return out
