"""Runs the whole study for a config: train, quantize with every recipe, evaluate, bench, report.

python tools/pipeline.py --config=configs/mnist.py --workdir=runs/mnist [--config.train.epochs=3]
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (configs/*.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder for models, results and report.")
flags.mark_flags_as_required(["config", "workdir"])
cli.define_verbose_flag()


def main(argv):
    from edgequant import pipeline
    from edgequant.report import markdown

    results = pipeline.run(_CONFIG.value, _WORKDIR.value, verbose=2)
    if "recommended" in results:  # a deployment of the user's model (config.model.path)
        import edgequant

        print(edgequant.summary(results))
        print(f"\nreport: {_WORKDIR.value}/report.md")
        return 0 if results["recommended"] else 1
    print()
    print(markdown.summary_table(results))
    print(f"\nreport: {_WORKDIR.value}/report.md")
    for err in results["errors"]:
        print(f"error: {err['name']}: {err['error']}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    cli.run(main)
