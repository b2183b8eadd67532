"""What every run shares, training study or deployment: seed, quantization, evaluation, Edge TPU,
benchmarks, the accuracy budget and its recovery, diagnosis, QAT, image preprocessing and the
data-source keys. It names no dataset, model or training run: configs/mnist.py (the study) and
configs/deploy.py (the user's model) build on it with workspace.config_module("base").
"""

from ml_collections import ConfigDict

from edgequant.bench import inventory
from edgequant.bench import settings as bench_settings
from edgequant.data import calibration
from edgequant.quantize import recipes


def get_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0

    # The user's data (a deployment), or evaluation data beside a named training dataset.
    c.data = ConfigDict()
    c.data.path = ""  # image folder, .npy/.npz, .tfrecord, or module:function
    c.data.eval_path = ""  # empty: a seeded holdout_fraction of data.path is held out
    c.data.kind = "auto"  # auto | images | arrays | tfrecord | callable
    c.data.holdout_fraction = 0.2
    c.data.max_eval = 0  # evaluate on at most this many samples (0 = all)
    c.data.max_corrupt_fraction = 0.01  # files skipped (any reason) above this: refused
    c.data.max_samples = 100_000  # a data callable yielding more is refused (endless generator)
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

    c.quantize = ConfigDict()
    c.quantize.recipes = recipes.PTQ_RECIPES
    c.quantize.weights = "per_channel"  # or per_tensor
    c.quantize.calibration_size = calibration.DEFAULT_SIZE
    # The same float model through the AI Edge (LiteRT) Quantizer, side by side in the table.
    c.quantize.aeq_recipes = (
        "static_wi8_ai8",
        "static_wi8_ai16",
        "dynamic_wi8_afp32",
        "weight_only_wi4_afp32",
    )

    c.diagnose = ConfigDict()  # the calibration check always runs; the rest when enabled
    c.diagnose.enabled = (
        False  # per-layer error (QuantizationDebugger) and mixed-precision variants
    )
    c.diagnose.min_calibration = 100
    c.diagnose.debug_samples = 64  # validation images the debugger compares float and int8 on
    c.diagnose.denylist_k = (1, 2)  # mixed-precision variants keeping the k worst layers in float

    # Quantization-aware training, off unless asked for (--qat, configs/mnist_qat.py): tfmot for
    # tf_keras models, edgequant's Keras 3 fake quantization for Keras 3 ones. Its training data
    # is the study's train split, or a deployment's recovery.train_data (--train_data).
    c.qat = ConfigDict()
    c.qat.enabled = False
    # Layers to quantize; ("*",) = whole model. tf_keras: fnmatch patterns; Keras 3: regexes.
    c.qat.layers = ("*",)
    c.qat.noop_layers = ()  # pass-through layers tfmot does not know, quantized as no-ops
    c.qat.epochs = 3
    c.qat.learning_rate = 2e-4  # fine-tuning: a tenth of the float run's
    c.qat.nbit = (4, 8)  # experimental (weight bits, activation bits); () = skip

    c.evaluate = ConfigDict()
    c.evaluate.batch_size = 500

    c.budget = ConfigDict()
    c.budget.max_drop_pp = 1.0  # labelled data: top-1 drop vs float
    c.budget.min_top1 = 0.0  # labelled data: and an absolute top-1 floor, e.g. 0.95 (0: none)
    c.budget.min_sqnr_db = 20.0  # unlabelled: every output's SQNR vs float
    c.budget.max_drop_map_pp = 2.0  # detection: COCO mAP@0.5 drop vs float, in points
    c.budget.max_drop_miou_pp = 2.0  # segmentation: mIoU drop vs float, in points

    # Detectors and segmenters (edgequant/flow/tasks.py): task metrics from annotations.
    c.task = ConfigDict()
    c.task.kind = "auto"  # auto (from the annotations) | classification | detection | segmentation
    c.task.annotations = ""  # COCO JSON, or a folder of VOC XML / YOLO txt / mask PNGs
    c.task.postprocess_from = ""  # layer where the CPU postprocess starts; empty = found
    c.task.anchors = ""  # .npy [A, 4] (cy, cx, h, w) for a raw-head (SSD-style) detector

    c.recovery = ConfigDict()
    c.recovery.enabled = True
    c.recovery.large_calibration_size = 2000
    c.recovery.denylist_k = (1, 3)
    c.recovery.validation_size = 500
    c.recovery.train_data = ""  # training data: enables QAT (Keras 3: labels optional)
    c.recovery.qat_epochs = 2
    c.recovery.qat_learning_rate = 1e-4
    c.recovery.qat_samples = 20000
    c.recovery.qat_batch_size = 32  # the recovery's fine-tuning (fit.run_loop batch_size=)

    c.edgetpu = ConfigDict()  # uint8 variants: full-integer gate -> analyzer -> compiler
    c.edgetpu.enabled = True
    c.edgetpu.compiler = ""  # path to edgetpu_compiler; empty = look on PATH
    c.edgetpu.min_runtime_version = 0  # -m; 0 = the compiler's default
    c.edgetpu.fix = False  # rewrite the Keras model so more of it maps (edgetpu/repair.py)
    c.edgetpu.approximate = False  # with fix: also the approximate rewrites (GELU, ELU)

    c.bench = ConfigDict()
    c.bench.enabled = True
    c.bench.threads = (1, 0)  # host latency at each thread count; 0 = all cores
    # Counts and times: the one home is edgequant/bench/settings.py (the tool's flags read it too).
    for key in bench_settings.CONFIG_FIELDS:
        c.bench[key] = getattr(bench_settings.DEFAULT, key)
    # Devices to benchmark every variant on (names from the inventory, or user@host:port).
    c.bench.devices = ()
    c.bench.inventory = str(inventory.DEFAULT)  # configs/devices.toml, from any cwd
    c.bench.ssh_config = ""  # handed to ssh as -F; empty = the user's own ~/.ssh/config
    c.bench.remote_python = ""  # overrides the inventory's python
    return c
