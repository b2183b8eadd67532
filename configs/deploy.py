"""Deploy the user's own model with the user's own data (no training: config.model.path is set).

  python tools/pipeline.py --config=configs/deploy.py --workdir=runs/deploy \
      --config.model.path=my_model.keras --config.data.path=my_images/ \
      --config.preprocess.input_range=0,1 --config.target=edgetpu
`tools/deploy.py` takes the same settings as plain flags; `edgequant.deploy(...)` as arguments.
"""

from ml_collections import ConfigDict

from edgequant import workspace

base = workspace.config_module("base")


def get_config() -> ConfigDict:
    c = base.get_config()  # quantize/evaluate/edgetpu/bench/recovery: one home for each default
    c.target = "edgetpu"  # edgetpu: uint8 full-integer variants; cpu: every recipe

    c.model = ConfigDict()
    c.model.path = ""  # .keras (Keras 3 or tf_keras), .h5, SavedModel folder or float .tflite
    c.model.signature = "serving_default"
    # Keras files are loaded safely: a Lambda layer (Python code run at load) is refused.
    # True (--trust_model_code) lets it run: only for a file you trust (edgequant/modelfile.py).
    c.model.trust_code = False

    # QAT under tools/launch.py --workers=N: multi_worker (TF_CONFIG); only the chief writes.
    c.distribute = "none"
    c.distribute_timeout_secs = 600.0

    c.quantize.aeq_recipes = ()  # AI Edge Quantizer recipes (target cpu, or a float .tflite)
    c.evaluate.batch_size = 64
    c.bench.threads = (1,)
    # Half the study's measuring time: a deploy ranks a few variants, it is not a study.
    c.bench.num_runs = 50
    c.bench.min_secs = 1.0
    return c
