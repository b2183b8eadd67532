"""A deliberately hard case for the recovery ladder: after training, one activation channel is
made 100x wider without changing the float model's outputs (the channel imbalance cross-layer
equalization exists for), and PTQ starts from per-tensor weights and only 4 calibration
images. Plain PTQ then loses tens of points; the ladder must bring uint8 within 0.5 pp of
float for the Edge TPU (full-integer only, so no float layers): more calibration data, the
other weight granularity, then QAT.

  python tools/autoquant.py --config=configs/mnist_autoquant.py --workdir=runs/mnist_autoquant \
      [--config.target=cpu] [--config.budget.max_drop_pp=0.3]
"""

from ml_collections import ConfigDict

from edgequant import workspace

mnist = workspace.config_module("mnist")


def get_config():
    c = mnist.get_config()
    c.model.widen = ConfigDict(
        {"bn_layer": "bn0", "next_conv": "conv1", "channel": 0, "factor": 100.0}
    )
    c.target = "edgetpu"  # edgetpu: full-integer uint8 only; cpu: float layers allowed
    c.quantize.recipes = ("uint8",)
    c.quantize.aeq_recipes = ()
    c.quantize.weights = "per_tensor"
    c.quantize.calibration_size = 4
    c.bench.threads = (1,)
    c.budget.max_drop_pp = 0.5
    c.recovery.large_calibration_size = 500
    c.recovery.denylist_k = (1, 2)  # cpu target only
    c.recovery.qat_epochs = 4
    c.recovery.qat_learning_rate = 1e-3
    return c
