"""Quantization-aware training with tfmot (tf_keras): annotate, check, apply, fine-tune.

Whole-model QAT uses `quantize_annotate_model`; selective QAT annotates only the layers whose
names match the config's patterns (fnmatch). Layers tfmot cannot quantize are found *before*
any training: pass-through layers named in `noop_layers` get a no-op QuantizeConfig (sound for
layers that only move or select values), the others stop the run with their names and what to
do. `disable_per_axis` switches conv weights to per-tensor. The n-bit scheme is experimental:
it trains a simulated model that TFLite cannot run, and is labelled so.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path

from edgequant.data.dataset import Dataset
from edgequant.errors import UserError
from edgequant.train import fit
from edgequant.train.noop import noop_quantize_config

# Layers that carry no quantization-relevant arithmetic, or are folded by tfmot's transforms.
_ALWAYS_OK = {"InputLayer"}
_FOLDED_AFTER = {"Conv2D", "DepthwiseConv2D"}  # BatchNormalization after these is folded


def _keras():
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    return keras, tfmot


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def unsupported_layers(model, patterns=("*",), noop=()) -> list[tuple[str, str]]:
    """(name, class) of the selected layers tfmot's default 8-bit registry cannot quantize."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    reg = registry.Default8BitQuantizeRegistry()
    out = []
    for layer in model.layers:
        cls = type(layer).__name__
        if cls in _ALWAYS_OK or not _matches(layer.name, patterns) or _matches(layer.name, noop):
            continue
        if cls == "BatchNormalization":
            inbound = [n.inbound_layers for n in layer._inbound_nodes]
            if inbound and type(inbound[0]).__name__ in _FOLDED_AFTER:
                continue
        if not reg.supports(layer):
            out.append((layer.name, cls))
    return out


def annotate(model, patterns=("*",), noop=()):
    """An annotated clone: layers matching `patterns` (and `noop` with the no-op config)."""
    keras, tfmot = _keras()
    bad = unsupported_layers(model, patterns, noop)
    if bad:
        names = ", ".join(f"{n} ({c})" for n, c in bad)
        raise UserError(
            f"tfmot cannot quantize layer(s) {names}: exclude them from qat.layers, list pass-through "
            "ones in qat.noop_layers, or give them a custom QuantizeConfig"
        )
    q = tfmot.quantization.keras
    noop_cls = noop_quantize_config()

    def clone(layer):
        if _matches(layer.name, noop) and type(layer).__name__ not in _ALWAYS_OK:
            return q.quantize_annotate_layer(layer, quantize_config=noop_cls())
        if _matches(layer.name, patterns) and type(layer).__name__ not in _ALWAYS_OK:
            return q.quantize_annotate_layer(layer)
        return layer

    if tuple(patterns) == ("*",) and not noop:
        return q.quantize_annotate_model(model)
    return keras.models.clone_model(model, clone_function=clone)


def apply(annotated, per_tensor: bool = False, nbit: tuple[int, int] | None = None):
    """quantize_apply with the 8-bit scheme (or the experimental n-bit one)."""
    keras, tfmot = _keras()
    q = tfmot.quantization.keras
    noop_cls = noop_quantize_config()
    if nbit:
        from tensorflow_model_optimization.quantization.keras.experimental.default_n_bit import (
            DefaultNBitQuantizeScheme,
        )

        scheme = DefaultNBitQuantizeScheme(
            disable_per_axis=per_tensor, num_bits_weight=nbit[0], num_bits_activation=nbit[1]
        )
    else:
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_scheme,
        )

        scheme = default_8bit_quantize_scheme.Default8BitQuantizeScheme(disable_per_axis=per_tensor)
    with q.quantize_scope({"NoOpQuantizeConfig": noop_cls}):
        return q.quantize_apply(annotated, scheme)


@dataclasses.dataclass(frozen=True)
class QATResult:
    model: object
    val_accuracy: float
    seconds: float
    history: dict = dataclasses.field(default_factory=dict)  # per epoch, as fit.train's


def fine_tune(
    qat_model,
    data: Dataset,
    config,
    workdir: str | Path,
    epochs: int | None = None,
    verbose: int = 2,
    log_name: str = "qat",
    learning_rate: float | None = None,
) -> QATResult:
    """Fine-tunes a QAT model from the float weights: `fit.run_loop` with QAT's own epochs and
    learning rate (config.qat's unless given; without a qat block, as in autoquant, a tenth of
    the float learning rate), no augmentation, logged to `tensorboard/<log_name>`.

    `qat_model` is a plain (not distributed) model; under config.distribute a replica made in
    the strategy's scope is trained and its weights are copied back (see `fit.replica`).
    """
    q = config.get("qat")
    if learning_rate is None:
        learning_rate = q.learning_rate if q is not None else config.train.learning_rate / 10
    epochs = q.epochs if epochs is None else epochs
    run = fit.run_loop(
        qat_model,
        data,
        config,
        workdir,
        epochs=epochs,
        learning_rate=learning_rate,
        log_name=log_name,
        verbose=verbose,
    )
    return QATResult(qat_model, run.val_accuracy, run.seconds, run.history)
