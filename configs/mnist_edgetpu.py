"""A model made for the Edge TPU: a MobileNetV2-style net at 32x32 whose uint8 artifact the
analyzer predicts 100% mapped (ReLU6 fused into convolutions, ADD, MEAN over H and W,
FULLY_CONNECTED, SOFTMAX: all on the Edge TPU op list, static batch of 1).

  python tools/pipeline.py --config=configs/mnist_edgetpu.py --workdir=runs/mnist_edgetpu
"""

from edgequant import workspace

mnist = workspace.config_module("mnist")


def get_config():
    c = mnist.get_config()
    c.model.name = "mobilenet_v2"
    c.model.input_shape = (32, 32, 1)
    c.model.options = {"alpha": 0.5, "last_channels": 256}
    c.train.epochs = 12
    c.train.learning_rate = 3e-3
    c.quantize.recipes = ("fp32", "int8", "uint8")
    c.bench.threads = (1,)
    return c
