"""A deliberately hard case for the accuracy-targeted search: per-tensor weights and a
calibration set of only 4 training images, which clips activation ranges and costs plain PTQ
well over a point; the search must bring uint8 within 0.5 pp of float (Edge TPU target).

  python tools/autoquant.py --config=configs/mnist_autoquant.py --workdir=runs/mnist_autoquant
"""

from ml_collections import ConfigDict

from configs import mnist


def get_config():
    c = mnist.get_config()
    c.quantize.recipes = ("uint8",)
    c.quantize.aeq_recipes = ()
    c.quantize.weights = "per_tensor"
    c.quantize.calibration_size = 4
    c.bench.threads = (1,)
    c.autoquant = ConfigDict()
    c.autoquant.enabled = True
    c.autoquant.target = "edgetpu"  # edgetpu: full-integer uint8 only; cpu: float layers allowed
    c.autoquant.max_drop_pp = 0.5
    c.autoquant.max_trials = 8  # budget
    c.autoquant.large_calibration_size = 500
    c.autoquant.max_float_layers = 2  # cpu target only
    c.autoquant.qat_epochs = 2
    return c
