"""The Keras model zoo (tf_keras): every `models/<name>.py` of the workspace is a model.

A config names a model by string; this is the one place that resolves it, so an unknown name or
option fails with the list of valid ones. To add a model, write `models/<name>.py` with
`build(input_shape, num_classes, **options)` returning an uncompiled tf_keras functional model.
"""

from __future__ import annotations

import inspect
from typing import Any

from edgequant import workspace


def names() -> tuple[str, ...]:
    return workspace.names("models")


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any):
    """Builds model `name`; unknown names or keyword arguments raise ValueError listing choices."""
    if name not in names():
        raise ValueError(f"unknown model '{name}'; valid models: {', '.join(names())}")
    builder = workspace.module("models", name).build
    params = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        valid = [p for p in params if p not in ("input_shape", "num_classes")]
        raise ValueError(f"model '{name}' has no option(s) {unknown}; valid options: {valid}")
    return builder(tuple(input_shape), num_classes, **kwargs)


def conv_bn_relu(x, filters: int, stride: int, name: str):
    """The zoo's 3x3 convolution block, written once: Conv2D (no bias: BN carries it) -> BN
    -> ReLU, the pattern the converter folds into one fused CONV_2D the Edge TPU maps."""
    import tf_keras as keras

    x = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(name=name + "_bn")(x)
    return keras.layers.ReLU(name=name + "_relu")(x)


def widen_activation_range(
    model, bn_layer: str, next_conv: str, channel: int, factor: float
) -> None:
    """Makes one activation channel `factor` times wider without changing what the model computes.

    Scaling a BatchNormalization channel's gamma and beta by f scales that channel after ReLU
    and max-pooling by f (both are positively homogeneous), and dividing the next convolution's
    weights for that input channel by f undoes it exactly. Real networks end up like this on
    their own (the imbalance cross-layer equalization removes); a per-tensor 8-bit activation
    scale then has to cover the wide channel and crushes the others. Used to build a hard case.
    """
    if factor <= 0:
        raise ValueError("factor must be positive")
    bn, conv = model.get_layer(bn_layer), model.get_layer(next_conv)
    gamma, beta, mean, var = bn.get_weights()
    gamma[channel] *= factor
    beta[channel] *= factor
    bn.set_weights([gamma, beta, mean, var])
    weights = conv.get_weights()
    weights[0][:, :, channel, :] /= factor
    conv.set_weights(weights)
