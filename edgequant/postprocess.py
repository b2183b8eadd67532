"""Postprocessing stays on the CPU: a Keras detector or segmenter is split into a body (quantized
full-integer uint8, for the Edge TPU) and a postprocess tail that runs in float on the CPU.

Why: box decoding (exp of box sizes times anchors), NMS and a segmenter's final argmax or large
upsampling are not Edge TPU ops, and quantizing them wrecks them: an 8-bit NMS compares
quantized scores and IoUs, so detections vanish or duplicate (ultralytics#22644). Coral's own SSD
models end the compiled part at the raw box/class tensors and run TFLite_Detection_PostProcess
on the CPU; this module makes the same cut in any functional Keras model.

How the cut is found (`find_split`): the model is traced once and each op is attributed to the
Keras layer whose name scope holds it. Seeds are layers holding NMS, Exp (box decoding), ArgMax,
or a resize to a large output (ops.RESIZE_MAX_OUTPUT_AREA / RESIZE_MAX_FACTOR: those stay on
the CPU anyway). The tail is every seed and everything downstream, plus the weight-free layers
(reshapes, slices, concatenations, anchor arithmetic) that feed only the tail: the body ends at
the last layers with weights, as Coral's SSDs end at their box and class convolutions. The user
can instead name the layer where postprocessing starts (`postprocess_from`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgequant.edgetpu import ops as op_table
from edgequant.errors import UserError

NMS_OPS = frozenset(
    {
        "NonMaxSuppression",
        "NonMaxSuppressionV2",
        "NonMaxSuppressionV3",
        "NonMaxSuppressionV4",
        "NonMaxSuppressionV5",
        "NonMaxSuppressionWithOverlaps",
        "CombinedNonMaxSuppression",
    }
)
DECODE_OPS = frozenset({"Exp"})
SEGMENT_OPS = frozenset({"ArgMax"})
RESIZE_OPS = frozenset({"ResizeBilinear", "ResizeNearestNeighbor"})
# TFLite builtins that are NMS: a full-integer model holding one quantized its NMS.
TFLITE_NMS = frozenset({"NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5"})


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """Where the model is cut, and why (the record the report shows)."""

    start_layers: tuple[str, ...]  # the first layers of the postprocess part
    tail_layers: tuple[str, ...]  # every layer that runs in float on the CPU
    cut_layers: tuple[str, ...]  # body outputs = tail inputs (layer names)
    chosen_by: str  # "user" (postprocess_from) or "auto"
    reasons: dict  # seed layer -> what it holds (NMS, box decoding, argmax, large resize)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _layer_ops(model) -> dict[str, set[str]]:
    """Op types per layer name, from one trace of the model at batch 1."""
    import tensorflow as tf

    specs = [tf.TensorSpec((1, *t.shape[1:]), t.dtype) for t in model.inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    graph = fn.get_concrete_function(*specs).graph
    names = {layer.name for layer in model.layers}
    out: dict[str, set[str]] = {}
    for op in graph.get_operations():
        for part in op.name.split("/")[:-1]:
            if part in names:
                out.setdefault(part, set()).add(op.type)
                break
        for sub in _nested_ops(op):
            for part in op.name.split("/")[:-1]:
                if part in names:
                    out.setdefault(part, set()).add(sub)
                    break
    return out


def _nested_ops(op) -> set[str]:
    """Op types inside a function-call op (a tf.function used inside a Lambda)."""
    found: set[str] = set()
    for attr in ("f", "then_branch", "else_branch", "body"):
        try:
            name = op.get_attr(attr).name
        except (ValueError, AttributeError):
            continue
        fn = op.graph._get_function(name)  # noqa: SLF001 - the only way to read a nested body
        if fn is not None:
            found |= {o.type for o in fn.graph.get_operations()}
    return found


def _large_resize(layer) -> bool:
    """A resize whose output the Edge TPU would not map anyway (the analyzer's own thresholds)."""
    try:
        src, dst = layer.input.shape, layer.output.shape
    except (AttributeError, ValueError):
        return False
    if len(src) != 4 or len(dst) != 4 or None in (*src[1:3], *dst[1:3]):
        return False
    factor = max(dst[1] / max(src[1], 1), dst[2] / max(src[2], 1))
    return dst[1] * dst[2] > op_table.RESIZE_MAX_OUTPUT_AREA or factor > op_table.RESIZE_MAX_FACTOR


def seed_reasons(model) -> dict[str, str]:
    """Layers that must not be quantized, with what they hold."""
    reasons = {}
    by_name = {layer.name: layer for layer in model.layers}
    for name, types in _layer_ops(model).items():
        if types & NMS_OPS:
            reasons[name] = "NMS (" + ", ".join(sorted(types & NMS_OPS)) + ")"
        elif types & DECODE_OPS:
            reasons[name] = "box decoding (exp)"
        elif types & SEGMENT_OPS:
            reasons[name] = "argmax"
        elif types & RESIZE_OPS and _large_resize(by_name[name]):
            reasons[name] = "resize to a large output (not mapped by the Edge TPU)"
    return reasons


def _graph(model) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Layer name -> names of the layers feeding it, and of the layers it feeds."""
    parents: dict[str, set[str]] = {layer.name: set() for layer in model.layers}
    for layer in model.layers:
        for node in layer._inbound_nodes:  # noqa: SLF001 - Keras keeps the graph here
            for inbound in _inbound_layers(node):
                if inbound.name in parents:
                    parents[layer.name].add(inbound.name)
    children: dict[str, set[str]] = {n: set() for n in parents}
    for n, ps in parents.items():
        for p in ps:
            children[p].add(n)
    return parents, children


def _inbound_layers(node) -> list:
    layers = getattr(node, "inbound_layers", None)
    if layers is None:  # Keras 3
        layers = [t._keras_history[0] for t in node.input_tensors]  # noqa: SLF001
    return layers if isinstance(layers, list | tuple) else [layers]


def _descendants(start: set[str], children: dict[str, set[str]]) -> set[str]:
    out, todo = set(start), list(start)
    while todo:
        for c in children[todo.pop()]:
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def find_split(model, postprocess_from: str | None = None) -> SplitPlan | None:
    """The cut for `model`: at `postprocess_from` (a layer or output name), else automatic.
    None when nothing needs to stay on the CPU."""
    parents, children = _graph(model)
    by_name = {layer.name: layer for layer in model.layers}
    inputs = {layer.name for layer in model.layers if not parents[layer.name]}
    reasons = seed_reasons(model)
    if postprocess_from:
        if postprocess_from not in by_name:
            raise UserError(
                f"postprocess_from: no layer or output named '{postprocess_from}'; layers: "
                + ", ".join(sorted(n for n in by_name if n not in inputs))
            )
        seeds, chosen = {postprocess_from}, "user"
    else:
        if not reasons:
            return None
        seeds, chosen = set(reasons), "auto"
    tail = _descendants(seeds, children)
    if chosen == "auto":
        # Pull weight-free feeders (reshape, slice, anchor arithmetic) into the float tail.
        grew = True
        while grew:
            grew = False
            for name in sorted(set(by_name) - tail - inputs):
                layer = by_name[name]
                if not layer.weights and children[name] and children[name] <= tail:
                    tail.add(name)
                    grew = True
    body_in_tail = [n for n in seeds if n in inputs]
    if body_in_tail:
        raise UserError(f"postprocess_from: '{body_in_tail[0]}' is a model input; nothing to run")
    nms_left = sorted(n for n in set(reasons) - tail if reasons[n].startswith("NMS"))
    if nms_left:
        raise UserError(
            f"layer '{nms_left[0]}' holds {reasons[nms_left[0]]} and would be quantized with the "
            f"body: set postprocess_from to '{nms_left[0]}' or an earlier layer"
        )
    cut = sorted({p for n in tail for p in parents[n] if p not in tail})
    order = [layer.name for layer in model.layers]
    starts = tuple(n for n in order if n in tail and not parents[n] <= tail)
    return SplitPlan(
        starts,
        tuple(n for n in order if n in tail),
        tuple(sorted(cut, key=order.index)),
        chosen,
        {n: reasons[n] for n in order if n in reasons},
    )


@dataclasses.dataclass
class SplitModel:
    """The body (Keras, to quantize) and the tail (Keras, to convert in float), named so that
    every body output name is the tail input name it feeds."""

    body: object
    tail: object
    plan: SplitPlan


def split_model(model, postprocess_from: str | None = None) -> SplitModel | None:
    """Splits a functional Keras model (tf_keras or Keras 3) at `find_split`'s cut."""
    plan = find_split(model, postprocess_from)
    if plan is None:
        return None
    keras = _keras_of(model)
    cut = [model.get_layer(n).output for n in plan.cut_layers]
    body = keras.Model(model.inputs, {n: t for n, t in zip(plan.cut_layers, cut, strict=True)})
    inner = keras.Model(cut, model.outputs)
    names = _output_names(model)
    fresh = [
        keras.Input(shape=tuple(t.shape[1:]), batch_size=1, name=n, dtype=t.dtype)
        for n, t in zip(plan.cut_layers, cut, strict=True)
    ]
    outs = inner(fresh if len(fresh) > 1 else fresh[0])
    outs = outs if isinstance(outs, list | tuple) else [outs]
    tail = keras.Model(fresh, {n: o for n, o in zip(names, outs, strict=True)})
    return SplitModel(body, tail, plan)


def _keras_of(model):
    if type(model).__module__.startswith("tf_keras"):
        import tf_keras

        return tf_keras
    import keras

    return keras


def _output_names(model) -> list[str]:
    from edgequant import usermodel

    return usermodel.from_keras(model).output_names


def refuse_quantized_nms(tflite: bytes) -> None:
    """Raises when a full-integer model holds an NMS op (its NMS would run quantized)."""
    from edgequant.tflite.model import TFLiteModel

    model = TFLiteModel(tflite)
    for op in model.operators:
        if op.op in TFLITE_NMS and any(
            model.tensors[i].dtype in ("INT8", "UINT8") for i in op.inputs if i >= 0
        ):
            raise UserError(
                f"op {op.index} {op.op} runs NMS on 8-bit tensors: split the model with "
                "postprocess_from (edgequant.postprocess.split_model) so NMS stays float"
            )


def convert_split(split: SplitModel, representative, recipe_name: str = "uint8"):
    """(body uint8 .tflite bytes, tail float .tflite bytes, record). The body gets the
    full-integer uint8 recipe; the tail is converted in float (fp32) and runs on the CPU."""
    from edgequant.quantize import convert, recipes

    body_recipe = recipes.Recipe(name=recipe_name, mode="uint8")
    body = convert.convert(split.body, body_recipe, representative)
    refuse_quantized_nms(body)
    tail = convert.convert(split.tail, recipes.Recipe(name="postprocess", mode="fp32"))
    record = {
        "split": split.plan.to_dict(),
        "body_recipe": body_recipe.name,
        "postprocess": "float .tflite on the CPU",
        "why": "postprocess ops (NMS, box decoding, argmax, large resizes) are not Edge TPU ops "
        "and lose their meaning in 8 bits",
    }
    return body, tail, record


def run_chained(body_path, tail_path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Body then postprocess on the host (LiteRT), by name: the body's outputs, dequantized, feed
    the tail inputs of the same name. The device runner does the same on boards."""
    from edgequant.evaluate.runner import SignatureModel

    middle = SignatureModel(body_path).predict(inputs)
    return SignatureModel(tail_path).predict(middle)
