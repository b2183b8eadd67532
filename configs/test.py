"""A tiny, CPU-quick version of configs/mnist.py for tests and smoke runs (about a minute).

python tools/pipeline.py --config=configs/test.py --workdir=/tmp/eq-test
"""

from edgequant import workspace

mnist = workspace.config_module("mnist")


def get_config():
    c = mnist.get_config()
    c.data.download = False
    c.model.options.filters = (8, 16)
    c.model.options.dense_units = 32
    c.train.epochs = 1
    c.train.augment.enabled = False
    c.quantize.calibration_size = 50
    c.bench.threads = (1,)
    # Deliberately short: a smoke run checks the path, not the number.
    c.bench.num_runs = 10
    c.bench.min_secs = 0.05
    c.bench.warmup_runs = 2
    c.bench.warmup_min_secs = 0.0
    return c
