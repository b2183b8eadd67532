"""Deploy the user's own model with the user's own data (no training: config.model.path is set).

  python tools/pipeline.py --config=configs/deploy.py --workdir=runs/deploy \
      --config.model.path=my_model.keras --config.data.path=my_images/ \
      --config.preprocess.input_range=0,1 --config.target=edgetpu
`tools/deploy.py` takes the same settings as plain flags; `edgequant.deploy(...)` as arguments.
"""

from ml_collections import ConfigDict

from edgequant import workspace

mnist = workspace.config_module("mnist")


def get_config() -> ConfigDict:
    c = mnist.get_config()  # quantize/evaluate/edgetpu/bench blocks: one home for each default
    c.target = "edgetpu"  # edgetpu: uint8 full-integer variants; cpu: every recipe

    c.model = ConfigDict()
    c.model.path = ""  # .keras (Keras 3 or tf_keras), .h5, SavedModel folder or float .tflite
    c.model.signature = "serving_default"
    # Keras files are loaded safely: a Lambda layer (Python code run at load) is refused.
    # True (--trust_model_code) lets it run: only for a file you trust (edgequant/modelfile.py).
    c.model.trust_code = False

    c.data = ConfigDict()
    c.data.path = ""  # image folder, .npy/.npz, .tfrecord, MNIST folder, or module:function
    c.data.eval_path = ""  # empty: a seeded holdout_fraction of data.path is held out
    c.data.kind = "auto"  # auto | images | arrays | tfrecord | mnist | callable
    c.data.holdout_fraction = 0.2
    c.data.max_eval = 0  # evaluate on at most this many samples (0 = all)
    c.data.max_corrupt_fraction = 0.01  # unreadable images skipped above this: refused
    c.data.tfrecord_features = ""  # INPUT:KEY,... (default: each input's own name)
    c.data.label_key = "label"
    c.data.labels = ""  # labels.txt in the model's output order; empty = sorted folder names

    # Images only: how pixels become model inputs. No guess: a model without its own
    # Rescaling/Normalization layer needs input_range or mean/std.
    c.preprocess = ConfigDict()
    c.preprocess.input_range = ""  # "LO,HI", e.g. "0,1" or "-1,1"
    c.preprocess.mean = ""  # per channel, pixel units, e.g. "123.675,116.28,103.53"
    c.preprocess.std = ""
    c.preprocess.color = ""  # rgb | grayscale; empty = the model input's channels
    c.preprocess.resize = ""  # "H,W"; empty = the model input's size
    c.preprocess.fit = "stretch"  # stretch | crop (center, keep aspect) | pad (letterbox)
    c.preprocess.method = "bilinear"

    c.edgetpu.fix = False  # rewrite the Keras model so more of it maps (edgetpu/repair.py)
    c.edgetpu.approximate = False  # with fix: also the approximate rewrites (GELU, ELU)

    c.quantize.aeq_recipes = ()  # AI Edge Quantizer recipes (target cpu, or a float .tflite)

    c.budget = ConfigDict()
    c.budget.max_drop_pp = 1.0  # labelled data: top-1 drop vs float
    c.budget.min_sqnr_db = 20.0  # unlabelled: every output's SQNR vs float

    c.recovery = ConfigDict()
    c.recovery.enabled = True
    c.recovery.large_calibration_size = 2000
    c.recovery.denylist_k = (1, 3)
    c.recovery.validation_size = 500
    c.recovery.train_data = ""  # labelled training data: enables QAT (tf_keras models)
    c.recovery.qat_epochs = 2
    c.recovery.qat_learning_rate = 1e-4
    c.recovery.qat_samples = 20000

    c.evaluate.batch_size = 64
    c.bench.threads = (1,)
    # Half the study's measuring time: a deploy ranks a few variants, it is not a study.
    c.bench.num_runs = 50
    c.bench.min_secs = 1.0
    return c
