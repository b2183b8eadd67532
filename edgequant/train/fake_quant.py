"""Keras 3 layers that simulate TFLite's int8 arithmetic during training (TensorFlow backend).

Fake quantization is `tf.quantization.fake_quant_with_min_max_vars[_per_channel]` (reached through
`keras.quantizers.fake_quant_with_min_max_vars`): the op TFLiteConverter reads back as the
tensor's scale and zero point, so the ranges trained here ARE the ranges of the converted model.

- Weights: symmetric int8 with the narrow range [-127, 127] (TFLite's weight spec, zero point 0),
  per output channel for convolutions, per tensor for Dense (as tfmot: the Edge TPU's
  FULLY_CONNECTED takes per-tensor weights). A BatchNormalization after a convolution is folded
  into its kernel and bias with the moving statistics (frozen, as at inference), so the weights
  that are quantized during training are the folded weights the converter will quantize.
- Activations: asymmetric 8-bit over [min, max], tracked by an exponential moving average of the
  batch ranges in training (tfmot's MovingAverageQuantizer); the range always contains 0, as
  TFLite's zero point must be representable. Sigmoid and softmax outputs take TFLite's fixed
  output range [0, 255/256] (scale 1/256).
"""

from __future__ import annotations

import keras
import numpy as np

# The output range TFLite fixes for LOGISTIC and SOFTMAX in int8/uint8 (scale 1/256).
PROBABILITY_RANGE = (0.0, 255.0 / 256.0)
EMA_DECAY = 0.99


def fake_quant_weights(w, axis: int | None):
    """Symmetric narrow-range int8 fake quantization of a kernel, per channel along `axis`
    (None: per tensor). The range is the kernel's own max |w|: TFLite's weight quantization."""
    from keras import ops

    if axis is None:
        m = ops.maximum(ops.max(ops.abs(w)), 1e-8)
        m = ops.stop_gradient(m)
        return keras.quantizers.fake_quant_with_min_max_vars(
            w, -m, m, num_bits=8, narrow_range=True
        )
    perm = [i for i in range(len(w.shape)) if i != axis % len(w.shape)]
    m = ops.stop_gradient(ops.maximum(ops.max(ops.abs(w), axis=perm), 1e-8))
    return keras.quantizers.fake_quant_with_min_max_vars(
        w, -m, m, num_bits=8, narrow_range=True, axis=axis
    )


@keras.saving.register_keras_serializable("edgequant")
class ActivationQuantizer(keras.layers.Layer):
    """Fake-quantizes a tensor to 8 bits over a range learnt by EMA (or a fixed range).

    The range starts unset; the first training batch sets it, later ones move it by
    EMA_DECAY. `aggregation="mean"` makes replicas of a distributed run agree on it.
    """

    def __init__(
        self,
        fixed: tuple[float, float] | None = None,
        decay: float = EMA_DECAY,
        active: bool = True,
        **kw,
    ):
        super().__init__(**kw)
        self.active = active  # False: observe the range only (a layer outside selective QAT)
        self.fixed = None if fixed is None else (float(fixed[0]), float(fixed[1]))
        self.decay = float(decay)

    def build(self, input_shape):
        lo, hi = self.fixed or (0.0, 0.0)
        self.range_min = self.add_weight(
            name="min", shape=(), initializer=keras.initializers.Constant(lo),
            trainable=False, aggregation="mean",
        )  # fmt: skip
        self.range_max = self.add_weight(
            name="max", shape=(), initializer=keras.initializers.Constant(hi),
            trainable=False, aggregation="mean",
        )  # fmt: skip
        self.seen = self.add_weight(
            name="seen", shape=(), initializer="zeros", trainable=False, aggregation="mean"
        )

    def call(self, x, training=None):
        from keras import ops

        if training and self.fixed is None:
            lo = ops.stop_gradient(ops.min(x))
            hi = ops.stop_gradient(ops.max(x))
            first = ops.equal(self.seen, 0.0)
            d = self.decay
            self.range_min.assign(ops.where(first, lo, d * self.range_min + (1 - d) * lo))
            self.range_max.assign(ops.where(first, hi, d * self.range_max + (1 - d) * hi))
            self.seen.assign(1.0)
        if not self.active:
            return x
        lo, hi = self.bounds()
        return keras.quantizers.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8)

    def bounds(self):
        """The range the op uses: widened to contain 0 and never empty."""
        from keras import ops

        lo = ops.minimum(ops.convert_to_tensor(self.range_min), 0.0)
        hi = ops.maximum(ops.convert_to_tensor(self.range_max), 0.0)
        return lo, ops.maximum(hi, lo + 1e-6)

    def get_config(self):
        return {**super().get_config(), "fixed": self.fixed, "decay": self.decay}


def _clone(layer):
    """A fresh, unbuilt copy of a standard layer (its weights are set when it is built)."""
    return layer.__class__.from_config(layer.get_config())


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "linear") if act is not None else "linear"


@keras.saving.register_keras_serializable("edgequant")
class QuantizedConv(keras.layers.Layer):
    """A Conv1D/Conv2D/DepthwiseConv2D/SeparableConv2D/Dense with its BatchNormalization folded
    in and its weights fake-quantized; computes what TFLite's fused op computes.

    Built from the float layers' weights (copied, never shared: the float model stays as it
    is). The layer's own activation runs before the output quantizer (placed by the caller),
    as TFLite fuses it into the op.
    """

    def __init__(self, layer, bn=None, per_channel: bool = True, active: bool = True, **kw):
        super().__init__(name=layer.name, **kw)
        self.active = active  # False: float weights (a layer outside selective QAT)
        self.kind = type(layer).__name__
        self.inner = _clone(layer)
        self.bn = None if bn is None else _clone(bn)
        self.per_channel = per_channel
        self._weights_from = [np.array(w) for w in layer.get_weights()]
        self._bn_weights_from = None if bn is None else [np.array(w) for w in bn.get_weights()]
        # The tensor between the depthwise and pointwise halves of a separable convolution is a
        # real int8 tensor in TFLite (two ops): it has its own range.
        self.mid = (
            ActivationQuantizer(name=f"{layer.name}_mid", active=active)
            if self.kind == "SeparableConv2D"
            else None
        )

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.inner.set_weights(self._weights_from)
        if self.bn is not None:
            out_shape = self.inner.compute_output_shape(input_shape)
            self.bn.build(out_shape)
            self.bn.set_weights(self._bn_weights_from)
        if self.mid is not None:
            self.mid.build(None)

    def _fold(self):
        """(per-output-channel multiplier, additive term) of the folded BatchNormalization."""
        from keras import ops

        bn = self.bn
        inv = ops.rsqrt(bn.moving_variance + bn.epsilon)
        gamma = bn.gamma if bn.scale else 1.0
        mult = gamma * inv
        beta = bn.beta if bn.center else 0.0
        return mult, beta - bn.moving_mean * mult

    def call(self, x):
        from keras import ops

        layer = self.inner
        ch_axis = -1 if self.per_channel else None
        fq = fake_quant_weights if self.active else (lambda w, axis: w)
        bias = layer.bias if layer.use_bias else None
        if self.kind == "SeparableConv2D":
            dk = layer.depthwise_kernel
            x = ops.depthwise_conv(
                x, _dw_quant(dk, self.per_channel) if self.active else dk, layer.strides, layer.padding,
                layer.data_format, layer.dilation_rate,
            )  # fmt: skip
            x = self.mid(x)
            kernel, kind = layer.pointwise_kernel, "Conv2D"
            strides, padding, dilation = 1, "valid", 1
        else:
            kernel, kind = layer.kernel, self.kind
            strides = getattr(layer, "strides", 1)
            padding = getattr(layer, "padding", "valid")
            dilation = getattr(layer, "dilation_rate", 1)
        if self.bn is not None:
            mult, add = self._fold()
            if kind == "DepthwiseConv2D":
                kernel = kernel * ops.reshape(mult, (kernel.shape[2], kernel.shape[3]))
            else:
                kernel = kernel * mult
            bias = add if bias is None else bias * mult + add
        if kind == "Dense":
            y = ops.matmul(x, fq(kernel, None))
        elif kind == "Conv1D":
            # As a 2-D convolution over [N, 1, L, C], quantized on the 4-D kernel: the converter
            # cannot carry per-channel parameters through the ExpandDims of a Conv1D's kernel.
            y = ops.conv(
                ops.expand_dims(x, 1),
                fq(ops.expand_dims(kernel, 0), ch_axis),
                (1, strides[0]),
                padding,
                layer.data_format,
                (1, dilation[0]),
            )
            y = ops.squeeze(y, 1)
        elif kind == "DepthwiseConv2D":
            y = ops.depthwise_conv(
                x, _dw_quant(kernel, self.per_channel) if self.active else kernel, strides, padding, layer.data_format,
                dilation,
            )  # fmt: skip
        else:
            y = ops.conv(
                x,
                fq(kernel, ch_axis),
                strides,
                padding,
                layer.data_format,
                dilation,
            )
        if bias is not None:
            y = y + bias
        return layer.activation(y)

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)


def _dw_quant(kernel, per_channel: bool):
    """A depthwise kernel [kh, kw, in, mult] quantized per output channel (in * mult), the axis
    TFLite's DEPTHWISE_CONV_2D quantizes (its kernel is [1, kh, kw, in * mult])."""
    from keras import ops

    kh, kw, cin, mult = kernel.shape
    flat = ops.reshape(kernel, (kh, kw, cin * mult))
    q = fake_quant_weights(flat, -1 if per_channel else None)
    return ops.reshape(q, (kh, kw, cin, mult))


@keras.saving.register_keras_serializable("edgequant")
class NearestUpsampling(keras.layers.Layer):
    """UpSampling2D as one resize op. Keras 3's UpSampling2D repeats along each axis, which
    TFLite keeps as rank-5 RESHAPE/TILE ops the Edge TPU cannot run; for an integer factor,
    nearest resizing (half-pixel centres) picks the same pixels and converts to one
    RESIZE_NEAREST_NEIGHBOR (or RESIZE_BILINEAR for bilinear interpolation)."""

    def __init__(self, size=(2, 2), interpolation: str = "nearest", **kw):
        super().__init__(**kw)
        self.size = tuple(int(s) for s in size)
        self.interpolation = interpolation

    def call(self, x):
        from keras import ops

        h, w = x.shape[1] * self.size[0], x.shape[2] * self.size[1]
        return ops.image.resize(x, (h, w), interpolation=self.interpolation)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, h * self.size[0], w * self.size[1], c)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}
