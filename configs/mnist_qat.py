"""The QAT study: float CNN -> PTQ uint8/int8 -> quantization-aware fine-tuning -> qat_uint8 and
qat_int8, with Keras-vs-TFLite parity and an experimental 4-bit-weight simulation.

  python tools/pipeline.py --config=configs/mnist_qat.py --workdir=runs/mnist_qat
"""

from ml_collections import ConfigDict

from edgequant import workspace

mnist = workspace.config_module("mnist")


def get_config():
    c = mnist.get_config()
    c.quantize.recipes = ("fp32", "int8", "uint8")
    c.bench.threads = (1,)
    c.diagnose.enabled = True
    c.qat = ConfigDict()
    c.qat.enabled = True
    c.qat.layers = ("*",)  # fnmatch patterns of layers to quantize; ("*",) = whole model
    c.qat.noop_layers = ()  # pass-through layers tfmot does not know, quantized as no-ops
    c.qat.epochs = 3
    c.qat.learning_rate = 2e-4  # fine-tuning: a tenth of the float run's
    c.qat.nbit = (4, 8)  # experimental (weight bits, activation bits); () = skip
    return c
