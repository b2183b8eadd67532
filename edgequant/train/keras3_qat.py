"""Quantization-aware training of Keras 3 models, to a full-integer uint8 model (TF backend).

tfmot works only on tf_keras models; Keras 3 offers post-training quantization only. This route
rebuilds a Keras 3 functional or Sequential model with Keras 3-native fake quantization
(`fake_quant.py`) placed where TFLite quantizes a tensor:

- every model input, and the output of every op that computes new values (convolutions, Dense,
  Add, Concatenate, average pooling to a mean, standalone activations);
- not between a convolution/Dense/Add and the ReLU/ReLU6 that TFLite fuses into it, not inside a
  BatchNormalization that is folded into the convolution before it, and not after ops that keep
  their input's scale (max pooling, reshape, flatten, padding, nearest/bilinear resizing).

The trained model converts with the ordinary uint8 recipe (`convert.convert`): the converter
reads each fake-quant range as that tensor's scale and zero point. Training needs no labels:
without them (or for a regressor or multi-output model) the targets are the float model's own
outputs, matched by output name (distillation). The float model is only read: the QAT model is a
clone with copied weights.

This module is the API (prepare -> fine_tune -> export -> parity) and holds the parity check;
keras3_graph.py reads the float graph, keras3_clone.py builds the fake-quantized clone,
keras3_fit.py trains it.
"""

from __future__ import annotations

from edgequant.errors import UserError
from edgequant.train.keras3_clone import QatModel, activate, export, predict, prepare
from edgequant.train.keras3_fit import FineTuneResult, fine_tune

# (layer name, class) of every layer the Keras 3 QAT cannot simulate: part of this API.
from edgequant.train.keras3_graph import unsupported

__all__ = [
    "FineTuneResult",
    "QatModel",
    "activate",
    "export",
    "fine_tune",
    "parity",
    "predict",
    "prepare",
    "unsupported",
]


def parity(model, tflite_path, x: dict, batch_size: int = 256) -> dict:
    """Agreement of a QAT Keras model with its converted .tflite on `x`, per output name:
    SQNR (dB), cosine, max abs error, and top-1 agreement for classifier-shaped outputs.
    The .tflite is read through its signature, never by output index."""
    from edgequant.evaluate.metrics import Fidelity, is_classifier_shaped
    from edgequant.evaluate.runner import SignatureModel

    ref = predict(model, x, batch_size)
    got = SignatureModel(tflite_path, batch_size=batch_size).predict(x)
    out = {}
    for name, r in ref.items():
        if name not in got:
            raise UserError(f"{tflite_path} has no output '{name}'; it has {sorted(got)}")
        f = Fidelity(is_classifier_shaped(r.shape))
        f.update(r, got[name])
        out[name] = f.result()
    return out
