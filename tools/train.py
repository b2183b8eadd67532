"""Trains the config's float model and saves it as <workdir>/float.keras.

python tools/train.py --config=configs/mnist.py --workdir=runs/mnist
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_CONFIG = cli.define_config_file(None, "Config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
flags.mark_flags_as_required(["config", "workdir"])
cli.define_verbose_flag()


def main(argv):
    from edgequant import config_check, pipeline
    from edgequant.train import fit

    config = _CONFIG.value
    config_check.validate(config)
    data = pipeline.load_data(config)
    model = pipeline.build_model(config, data.num_classes)
    result = fit.train(model, data, config, _WORKDIR.value)
    print(
        f"saved {result.model_path}: val accuracy {100 * result.val_accuracy:.2f}% "
        f"({result.seconds:.0f} s, data {data.source})"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
