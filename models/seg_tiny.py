"""A tiny segmenter: a Conv-BN-ReLU encoder to 1/8, one nearest-neighbour 2x upsampling joined
with the 1/4 features, and per-pixel class logits at 1/4 of the input resolution.

The model ends at `class_logits` [H/4, W/4, num_classes], the Edge TPU body; the bilinear
upsampling to the mask's size and the argmax run on the CPU in float
(`edgequant.tasks.class_map`), where an 8-bit argmax over a large upsampled map would cost
both precision and Edge TPU mapping.
"""

from __future__ import annotations

import tf_keras as keras

from edgequant.zoo import conv_bn_relu


def build(
    input_shape: tuple[int, ...] = (96, 96, 3),
    num_classes: int = 4,
    filters: tuple[int, ...] = (16, 32, 48),
) -> keras.Model:
    if input_shape[0] % 8 or input_shape[1] % 8:
        raise ValueError(f"seg_tiny needs an input divisible by 8, not {input_shape}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = conv_bn_relu(inputs, filters[0], 2, "conv0")  # 1/2
    x = conv_bn_relu(x, filters[1], 2, "conv1")  # 1/4
    quarter = conv_bn_relu(x, filters[1], 1, "conv1b")
    x = conv_bn_relu(quarter, filters[2], 2, "conv2")  # 1/8
    x = conv_bn_relu(x, filters[2], 1, "conv2b")
    x = conv_bn_relu(x, filters[2], 1, "conv2c")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up")(x)
    x = keras.layers.Concatenate(name="join")([x, quarter])
    x = conv_bn_relu(x, filters[1], 1, "fuse")
    outputs = keras.layers.Conv2D(num_classes, 1, name="class_logits")(x)
    return keras.Model(inputs, {"class_logits": outputs}, name="seg_tiny")
