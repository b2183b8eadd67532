"""The tiny config (configs/test.py) made to converge, with QAT: the two-worker tests' config.

Two local workers (worker 0, the chief, writes the workdir):
  python tools/launch.py --workers=2 -- tools/pipeline.py --config=configs/test_multi_worker.py \
      --workdir=/tmp/eq-mw
One process, for comparison:
  python tools/pipeline.py --config=configs/test_multi_worker.py --config.distribute=none \
      --workdir=/tmp/eq-sw
"""

from edgequant import workspace

test = workspace.config_module("test")


def get_config():
    c = test.get_config()
    c.distribute = "multi_worker"
    # One epoch leaves the batch-norm statistics unsettled (test accuracy swings 40-80% with
    # any change); five epochs without dropout plateau near 96%, so runs compare to <1 pp.
    c.model.options.dropout = 0.0
    c.train.epochs = 5
    c.quantize.recipes = ("fp32", "uint8")
    c.quantize.aeq_recipes = ()
    c.edgetpu.enabled = False
    c.bench.enabled = False
    c.qat.enabled = True
    c.qat.epochs = 1
    c.qat.learning_rate = 2e-4
    c.qat.nbit = ()
    return c
