"""Applies one PTQ recipe to any model: writes <recipe>.tflite and <recipe>.recipe.json.

  python tools/quantize.py --model=my_model.keras --recipe=uint8 --data=images/ \
      --input_range=0,1 --out_dir=out
Calibrated recipes need the user's own --data: there is no default dataset.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

from edgequant.quantize import recipes  # noqa: E402

_CONFIG = cli.define_config_file(
    cli.project_path("configs/deploy.py"), "Data and calibration settings."
)
_MODEL = flags.DEFINE_string("model", None, ".keras/.h5, SavedModel folder.")
_RECIPE = flags.DEFINE_string("recipe", None, f"One of: {', '.join(recipes.PTQ_RECIPES)}.")
_DATA = flags.DEFINE_string("data", None, "Calibration data (image folder, .npy/.npz, ...).")
_RANGE = flags.DEFINE_string("input_range", None, "Images: pixel 0..255 -> LO,HI.")
_MEAN = flags.DEFINE_string("mean", None, "Images: per-channel mean in pixel units.")
_STD = flags.DEFINE_string("std", None, "Images: per-channel std in pixel units.")
_OUT = flags.DEFINE_string(
    "out_dir", ".", "Where to write <recipe>.tflite and <recipe>.recipe.json."
)
flags.mark_flags_as_required(["model", "recipe"])
cli.define_verbose_flag()


def main(argv):
    from edgequant.flow import prepare

    config = _CONFIG.value
    cli.apply_flags(
        config,
        (
            (_MODEL, "model.path"),
            (_DATA, "data.path"),
            (_RANGE, "preprocess.input_range"),
            (_MEAN, "preprocess.mean"),
            (_STD, "preprocess.std"),
        ),
    )
    path = prepare.quantize_model(config, _RECIPE.value, _OUT.value)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    cli.run(main)
