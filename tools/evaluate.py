"""Top-1, top-5 and per-class accuracy of any model (.tflite, .keras, .h5, SavedModel) on
labelled data.

  python tools/evaluate.py --model=bundle/uint8.tflite --data=images/
  python tools/evaluate.py --model=my_model.keras --data=images/ --input_range=0,1
  python tools/evaluate.py --model=runs/mnist/uint8.tflite --dataset=mnist [--data_dir=DIR]
`--dataset=NAME` is a named training dataset's test split (edgequant.datasets; a --data_dir
holding only the two t10k files evaluates on those images), preprocessed as the study does.
A bundle's .tflite carries its preprocessing (embedded when it was written): images are fed by
that spec, and a flag that contradicts it is an error naming both values. Other models need the
value mapping (--input_range or --mean/--std) unless they start with their own Rescaling.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402
from ml_collections import ConfigDict  # noqa: E402

_CONFIG = cli.define_config_file(cli.project_path("configs/deploy.py"), "Data settings.")
_MODEL = flags.DEFINE_string("model", None, "A .tflite, .keras/.h5 or SavedModel.")
_DATA = flags.DEFINE_string("data", None, "Labelled data: image folder, .npz with labels, ...")
_DATASET = flags.DEFINE_string(
    "dataset", None, "A named training dataset (edgequant.datasets) instead of --data."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "The named dataset's files (config.data.dir; alone: --dataset=mnist)."
)
_RANGE = flags.DEFINE_string("input_range", None, "Images: pixel 0..255 -> LO,HI.")
_MEAN = flags.DEFINE_string("mean", None, "Images: per-channel mean in pixel units.")
_STD = flags.DEFINE_string("std", None, "Images: per-channel std in pixel units.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Samples per invoke.")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Split seed (must match training's for the offline digits)."
)
_OUT = flags.DEFINE_string("output_json", None, "Write {accuracy, top5, per_class, n, ...} here.")
_TRUST = cli.define_trust_flag()
flags.mark_flag_as_required("model")
cli.define_verbose_flag()


def main(argv):
    import json
    from pathlib import Path

    from edgequant import atomic, datasets, usermodel
    from edgequant.data import sources
    from edgequant.errors import UserError
    from edgequant.flow import prepare

    config = _CONFIG.value
    cli.apply_flags(
        config,
        (
            (_RANGE, "preprocess.input_range"),
            (_MEAN, "preprocess.mean"),
            (_STD, "preprocess.std"),
            (_BATCH, "evaluate.batch_size"),
        ),
    )
    batch = config.evaluate.batch_size
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"--batch_size={batch}: expected a number of samples per invoke >= 1")
    if _OUT.value and Path(_OUT.value).is_dir():
        raise UserError(f"--output_json={_OUT.value} is a folder: give a file path")
    name = _DATASET.value or ("mnist" if _DATA_DIR.value and not _DATA.value else None)
    stored = None
    if not _DATA.value and name:
        data_cfg = ConfigDict(
            {"name": name, "dir": _DATA_DIR.value, "download": True, "val_fraction": 0.1}
        )
        stored = datasets.read(data_cfg, _SEED.value)  # bad data fails before the model
    model = usermodel.load(_MODEL.value, config.model.signature, trust_code=bool(_TRUST.value))
    if _DATA.value:
        split = sources.everything(prepare.open_data(config, model, _DATA.value), "data")
    elif stored is not None:
        if stored.test is None:
            raise UserError(f"no {name} test split in {_DATA_DIR.value or 'the default sources'}")
        inp = model.inputs[0]
        if len(model.inputs) != 1 or None in inp.sample_shape or len(inp.sample_shape) != 3:
            raise UserError(
                f"a named dataset feeds one image input [H, W, C]; {_MODEL.value} has inputs "
                f"{[t.to_dict() for t in model.inputs]}"
            )
        split = datasets.prepare(stored, inp.sample_shape).test.renamed([inp.name])
    else:
        raise UserError(
            f"no data: pass --data=PATH (labelled) or --dataset=NAME ({', '.join(datasets.NAMES)})"
        )
    result = prepare.evaluate_model(config, model, split)
    out = {**result, "model": str(_MODEL.value), "dataset": split.source.info()}
    print(
        f"accuracy {100 * result['top1']:.2f}% (top-5 {100 * result['top5']:.2f}%) on "
        f"{result['n']} samples from {split.source.description}"
    )
    if _OUT.value:
        Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(_OUT.value, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    cli.run(main)
