"""A tiny SSD-style detector: a stride-2 Conv-BN-ReLU backbone and SSD heads on three scales.

The model ends at the raw heads, which is the Edge TPU body: `box_regressions` [A, 4] (SSD
encoding, edgequant/tasks/boxes.py) and `class_logits` [A, num_classes + 1] (background at 0)
for the A anchors of `anchors(input_shape)`. Decoding and NMS run on the CPU in float
(`edgequant.tasks.detections_from_raw`). Every op (CONV_2D with fused BN/ReLU, RESHAPE,
CONCATENATION) is Edge TPU-mappable; ReLU keeps activations one-sided for uint8.
"""

from __future__ import annotations

import numpy as np
import tf_keras as keras

from edgequant.tasks import boxes
from edgequant.zoo import conv_bn_relu

ASPECT_RATIOS = (1.0, 2.0, 0.5)
SCALES = (0.15, 0.35, 0.6)  # anchor side per head, as a fraction of the image
HEAD_STRIDES = (8, 16, 32)


def anchors(input_shape: tuple[int, ...] = (96, 96, 3)) -> np.ndarray:
    """The anchors [A, 4] (cy, cx, h, w normalized) in the order of the heads' outputs."""
    sizes = [input_shape[0] // s for s in HEAD_STRIDES]
    return boxes.grid_anchors(sizes, SCALES, ASPECT_RATIOS)


def build(
    input_shape: tuple[int, ...] = (96, 96, 3),
    num_classes: int = 3,
    filters: tuple[int, ...] = (16, 32, 48, 64, 64),
) -> keras.Model:
    if input_shape[0] != input_shape[1] or input_shape[0] % HEAD_STRIDES[-1]:
        raise ValueError(f"ssd_tiny needs a square input divisible by 32, not {input_shape}")
    k = boxes.anchors_per_cell(ASPECT_RATIOS)
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    features = []
    for i, f in enumerate(filters):  # strides 2, 4, 8, 16, 32
        x = conv_bn_relu(x, f, 2, f"conv{i}")
        x = conv_bn_relu(x, f, 1, f"conv{i}b") if i >= 2 else x
        if i >= 2:
            features.append(x)
    regs, logits = [], []
    for i, feat in enumerate(features):
        r = keras.layers.Conv2D(k * 4, 3, padding="same", name=f"box{i}")(feat)
        c = keras.layers.Conv2D(k * (num_classes + 1), 3, padding="same", name=f"cls{i}")(feat)
        regs.append(keras.layers.Reshape((-1, 4), name=f"box{i}_flat")(r))
        logits.append(keras.layers.Reshape((-1, num_classes + 1), name=f"cls{i}_flat")(c))
    box_out = keras.layers.Concatenate(axis=1, name="box_regressions")(regs)
    cls_out = keras.layers.Concatenate(axis=1, name="class_logits")(logits)
    return keras.Model(
        inputs, {"box_regressions": box_out, "class_logits": cls_out}, name="ssd_tiny"
    )
