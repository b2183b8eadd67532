"""A small MNIST CNN: Conv-BN-ReLU blocks with pooling, then a dense head.

Every op (CONV_2D with fused BN and ReLU, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX) has an
int8 kernel and is Edge TPU-mappable, so the same network serves CPU and Edge TPU studies.
ReLU (not ReLU6 or swish) keeps activation ranges one-sided, which uint8 represents best.
"""

from __future__ import annotations

import tf_keras as keras


def build(
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    filters: tuple[int, ...] = (32, 64),
    dense_units: int = 128,
    dropout: float = 0.25,
    bn_momentum: float = 0.99,
) -> keras.Model:
    """`bn_momentum` is Keras's default; a short run (a test's three epochs) needs 0.9, or
    the batch-norm moving statistics still hold their initial values when training ends."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="fc")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")
