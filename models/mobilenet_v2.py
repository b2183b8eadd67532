"""A MobileNetV2-style network (inverted residuals, linear bottlenecks) with width multiplier
and input size, small enough for MNIST-sized studies and Edge TPU checks.

ReLU6 as in the paper; channel counts are rounded to multiples of 8 as in the reference
implementation, which keeps every layer on the fast paths of int8 kernels.
"""

from __future__ import annotations

import tf_keras as keras

# (expansion t, output channels c, repeats n, first stride s), the paper's table 2 trimmed for
# small inputs.
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2), (6, 96, 1, 1))


def _round(channels: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def _conv_bn(x, filters, kernel, stride, name, act=True):
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(name=name + "_bn")(x)
    return keras.layers.ReLU(6.0, name=name + "_relu")(x) if act else x


def _inverted_residual(x, expansion, out_channels, stride, name):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = _conv_bn(y, in_channels * expansion, 1, 1, name + "_expand")
    y = keras.layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=name + "_dw")(
        y
    )
    y = keras.layers.BatchNormalization(name=name + "_dw_bn")(y)
    y = keras.layers.ReLU(6.0, name=name + "_dw_relu")(y)
    y = _conv_bn(y, out_channels, 1, 1, name + "_project", act=False)
    if stride == 1 and in_channels == out_channels:
        y = keras.layers.Add(name=name + "_add")([x, y])
    return y


def build(
    input_shape: tuple[int, ...] = (32, 32, 1),
    num_classes: int = 10,
    alpha: float = 0.5,
    last_channels: int = 256,
) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, _round(32 * alpha), 3, 1 if input_shape[0] <= 64 else 2, "stem")
    for b, (t, c, n, s) in enumerate(_BLOCKS):
        for i in range(n):
            x = _inverted_residual(x, t, _round(c * alpha), s if i == 0 else 1, f"block{b}_{i}")
    x = _conv_bn(x, _round(last_channels * max(alpha, 1.0)), 1, 1, "head")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")
