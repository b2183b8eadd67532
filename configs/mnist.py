"""The MNIST quantization study: float CNN -> every PTQ recipe -> accuracy, size, latency.

Run it (what `make run` does):
  python tools/pipeline.py --config=configs/mnist.py --workdir=runs/mnist
Override any key from the command line, e.g. `--config.train.epochs=3`; a misspelled key fails.
"""

from ml_collections import ConfigDict

from edgequant.bench import inventory
from edgequant.bench import settings as bench_settings
from edgequant.data import calibration
from edgequant.quantize import recipes


def get_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    c.distribute = "none"  # none | mirrored (all local devices) | multi_worker (TF_CONFIG)
    c.distribute_timeout_secs = 600.0  # multi_worker: a collective op waiting longer fails

    c.data = ConfigDict()
    c.data.name = "mnist"
    c.data.dir = ""  # IDX files or mnist.npz; empty = keras cache -> download -> offline digits
    c.data.download = True
    c.data.val_fraction = 0.1  # of the official training set, when full MNIST is available

    c.model = ConfigDict()
    c.model.name = "mnist_cnn"
    c.model.input_shape = (28, 28, 1)
    c.model.options = ConfigDict({"filters": (32, 64), "dense_units": 128, "dropout": 0.25})

    c.train = ConfigDict()
    # Measured on the 5,000 offline digits (2 cores, ~70 s): 30 epochs of batch 32 with light
    # augmentation reach ~98.2% test accuracy; without augmentation the CNN stalls near 97%.
    c.train.epochs = 30
    c.train.batch_size = 32
    c.train.learning_rate = 2e-3
    c.train.augment = ConfigDict(
        {"enabled": True, "rotation_deg": 8.0, "shift": 0.08, "zoom": 0.08}
    )

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

    # The study deploys the model it trained like a user's model (edgequant/flow): cpu makes
    # every recipe; the uint8 variant still goes through the Edge TPU checks.
    c.target = "cpu"

    c.budget = ConfigDict()  # what "accurate enough" means for the recommendation and recovery
    c.budget.max_drop_pp = 1.0  # labelled data: top-1 drop vs float
    c.budget.min_sqnr_db = 20.0  # unlabelled: every output's SQNR vs float

    # The recovery ladder (search/ladder.py), when the plain full-integer variant misses the
    # budget on the validation data: calibration -> granularity -> (cpu) int16 / float layers
    # -> QAT on the labelled training data.
    c.recovery = ConfigDict()
    c.recovery.enabled = True
    c.recovery.large_calibration_size = 2000
    c.recovery.denylist_k = (1, 3)
    c.recovery.validation_size = 500
    c.recovery.train_data = ""  # a user's labelled training data (the study has its own)
    c.recovery.qat_epochs = 2
    c.recovery.qat_learning_rate = 1e-4
    c.recovery.qat_samples = 20000

    c.evaluate = ConfigDict()
    c.evaluate.batch_size = 500

    c.edgetpu = ConfigDict()  # uint8 variants: full-integer gate -> analyzer -> compiler
    c.edgetpu.enabled = True
    c.edgetpu.compiler = ""  # path to edgetpu_compiler; empty = look on PATH
    c.edgetpu.min_runtime_version = 0  # -m; 0 = the compiler's default

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
