"""The QAT study: float CNN -> PTQ uint8/int8 -> quantization-aware fine-tuning -> qat_uint8 and
qat_int8, with Keras-vs-TFLite parity and an experimental 4-bit-weight simulation.

  python tools/pipeline.py --config=configs/mnist_qat.py --workdir=runs/mnist_qat
"""

from edgequant import workspace

mnist = workspace.config_module("mnist")


def get_config():
    c = mnist.get_config()
    c.quantize.recipes = ("fp32", "int8", "uint8")
    c.bench.threads = (1,)
    c.diagnose.enabled = True
    c.qat.enabled = True  # the other qat keys' defaults: configs/base.py
    return c
