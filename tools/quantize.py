"""Applies one PTQ recipe to a saved Keras model: writes <recipe>.tflite and <recipe>.recipe.json.

  python tools/quantize.py --config=configs/mnist.py --model=runs/mnist/float.keras \
      --recipe=uint8 --out_dir=runs/mnist
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from edgequant.quantize import recipes  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    cli.project_path("configs/mnist.py"),
    "Config (data and calibration settings).",
    lock_config=True,
)
_MODEL = flags.DEFINE_string("model", None, "Saved float Keras model (.keras).")
_RECIPE = flags.DEFINE_string("recipe", None, f"One of: {', '.join(recipes.PTQ_RECIPES)}.")
_OUT = flags.DEFINE_string(
    "out_dir", ".", "Where to write <recipe>.tflite and <recipe>.recipe.json."
)
flags.mark_flags_as_required(["model", "recipe"])
cli.define_verbose_flag()


def main(argv):
    from edgequant import pipeline
    from edgequant.data import calibration
    from edgequant.quantize import convert
    from edgequant.train import fit

    config = _CONFIG.value
    recipe = recipes.get(_RECIPE.value, config.quantize.weights, config.quantize.calibration_size)
    model = fit.load_model(_MODEL.value)
    representative = None
    if recipe.needs_calibration:
        data = pipeline.load_data(config)
        representative = calibration.build(
            data.require("train"),
            recipe.calibration_size,
            config.seed,
            tuple(model.input_shape[1:]),
        )
    path = convert.write(convert.convert(model, recipe, representative), recipe, _OUT.value)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    cli.run(main)
