"""Your model, your data: a verified Edge TPU or CPU bundle in --out_dir.

  python tools/deploy.py --model=my_model.keras --data=images/ --input_range=0,1 \
      --target=edgetpu --out_dir=bundle
  python tools/deploy.py --model=saved_model_dir --data=calib.npz --eval_data=eval.npz \
      --target=cpu --out_dir=bundle
  python tools/deploy.py --model=m.keras --data=images/ --input_range=0,1 --out_dir=bundle \
      --device=coral-1            # or mendel@192.0.2.7:22 --remote_python=/usr/bin/python3
  python tools/deploy.py --model=m.keras --data=images/ --input_range=0,1 --out_dir=bundle \
      --qat --train_data=train_images/ [--qat_layers=REGEX] [--qat_epochs=3]
With --qat, the model is fine-tuned with fake quantization (tf_keras: tfmot; Keras 3: edgequant's
own) and its qat_* variants sit beside the PTQ ones; without labels it learns from the float
model's outputs. With --device, every variant is timed on each device (the first one ranks them); a device
that fails is one line and a non-zero exit, and every other result is still written.
Any key of configs/deploy.py can be set too, e.g. --config.budget.max_drop_pp=0.5.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_CONFIG = cli.define_config_file(cli.project_path("configs/deploy.py"), "Deployment settings.")
_MODEL = flags.DEFINE_string("model", None, ".keras/.h5 file, SavedModel folder or float .tflite.")
_DATA = flags.DEFINE_string(
    "data", None, "Calibration data: image folder, .npy/.npz, .tfrecord, module:function."
)
_EVAL = flags.DEFINE_string("eval_data", None, "Evaluation data (default: held out of --data).")
_RANGE = flags.DEFINE_string("input_range", None, "Images: pixel 0..255 -> LO,HI, e.g. 0,1.")
_MEAN = flags.DEFINE_string("mean", None, "Images: per-channel mean in pixel units.")
_STD = flags.DEFINE_string("std", None, "Images: per-channel std in pixel units.")
_COLOR = flags.DEFINE_enum("color", None, ["rgb", "grayscale"], "Images: color mode.")
_TRAIN = flags.DEFINE_string(
    "train_data", None, "Training data for QAT (--qat, recovery); same kinds as --data."
)
_QAT = flags.DEFINE_bool("qat", None, "Quantization-aware training: qat_* variants too.")
_QAT_LAYERS = flags.DEFINE_string(
    "qat_layers", None, "QAT only the layers matching this regex (Keras 3; default: all)."
)
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", None, "QAT epochs.")
_QAT_LR = flags.DEFINE_float("qat_learning_rate", None, "QAT learning rate.")
_LABELS = flags.DEFINE_string(
    "labels", None, "labels.txt: class names in the model's output order (default: sorted folders)."
)
_RESIZE = flags.DEFINE_string("resize", None, "Images: H,W (default: the model's input size).")
_SIGNATURE = flags.DEFINE_string("signature", None, "SavedModel signature (serving_default).")
_TARGET = flags.DEFINE_enum("target", None, ["edgetpu", "cpu"], "Deployment target.")
_FIX = flags.DEFINE_bool(
    "fix", None, "Edge TPU: rewrite the Keras model so more of it maps (exact rewrites)."
)
_APPROX = flags.DEFINE_bool("approximate", None, "With --fix: the approximate rewrites too.")
_OUT = flags.DEFINE_string("out_dir", None, "Where the bundle is written.")
_DEVICES = flags.DEFINE_list(
    "device", None, "Inventory names or user@host:port; the first one is the target."
)
_INVENTORY = flags.DEFINE_string(
    "inventory", None, "Device inventory (TOML); default: configs/devices.toml; empty: none."
)
_REMOTE_PY = flags.DEFINE_string(
    "remote_python", None, "Python on the device (overrides the inventory)."
)
_SSH_CONFIG = flags.DEFINE_string("ssh_config", None, "ssh config file handed to ssh as -F.")
_TASK = flags.DEFINE_enum(
    "task", None, ["auto", "classification", "detection", "segmentation"], "What to measure."
)
_ANNOTATIONS = flags.DEFINE_string(
    "annotations", None, "COCO JSON, or a folder of VOC XML / YOLO txt / mask PNG (--eval_data)."
)
_POST_FROM = flags.DEFINE_string(
    "postprocess_from", None, "Layer where the CPU postprocess starts (default: found)."
)
_ANCHORS = flags.DEFINE_string("anchors", None, "Raw-head detector: anchors .npy [A, 4].")
_TRUST = cli.define_trust_flag()
flags.mark_flags_as_required(["model", "out_dir"])
cli.define_verbose_flag()

# flag -> config key: the flags are shorthands for configs/deploy.py, one home for defaults.
_SHORTHANDS = (
    (_MODEL, "model.path"),
    (_DATA, "data.path"),
    (_EVAL, "data.eval_path"),
    (_LABELS, "data.labels"),
    (_TRAIN, "recovery.train_data"),
    (_QAT, "qat.enabled"),
    (_QAT_EPOCHS, "qat.epochs"),
    (_QAT_LR, "qat.learning_rate"),
    (_RANGE, "preprocess.input_range"),
    (_MEAN, "preprocess.mean"),
    (_STD, "preprocess.std"),
    (_COLOR, "preprocess.color"),
    (_RESIZE, "preprocess.resize"),
    (_SIGNATURE, "model.signature"),
    (_TARGET, "target"),
    (_FIX, "edgetpu.fix"),
    (_APPROX, "edgetpu.approximate"),
    (_INVENTORY, "bench.inventory"),
    (_REMOTE_PY, "bench.remote_python"),
    (_SSH_CONFIG, "bench.ssh_config"),
    (_TRUST, "model.trust_code"),
    (_TASK, "task.kind"),
    (_ANNOTATIONS, "task.annotations"),
    (_POST_FROM, "task.postprocess_from"),
    (_ANCHORS, "task.anchors"),
)


def main(argv):
    import sys

    import edgequant

    config = _CONFIG.value
    cli.apply_flags(config, _SHORTHANDS)
    if _DEVICES.value is not None:
        config.bench.devices = tuple(_DEVICES.value)  # a list flag, a tuple config key
    if _QAT_LAYERS.value is not None:
        config.qat.layers = (_QAT_LAYERS.value,)  # one regex, a tuple config key
    result = edgequant.deploy_config(config, _OUT.value)
    print(edgequant.summary(result))
    # Non-zero when nothing meets the budget, or when anything failed (a device, a recipe):
    # the bundle then holds every other result, the summary names each, and stderr carries
    # the one `error:` line a script or CI log looks for.
    errors = [f"{e['name']}: {e['error']}" for e in result["errors"]]
    if errors:
        more = f" (and {len(errors) - 1} more: see the summary)" if len(errors) > 1 else ""
        print(f"error: {errors[0]}{more}", file=sys.stderr)
        return 1
    if not result["recommended"]:
        print("error: no variant meets the budget (the summary says why)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main)
