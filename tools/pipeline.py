"""Runs the whole study for a config: train the model, then deploy it (every recipe, evaluate,
bench, report), or deploy the user's model when the config names one (configs/deploy.py).
Exits non-zero when any stage or requested device run failed.

python tools/pipeline.py --config=configs/mnist.py --workdir=runs/mnist [--config.train.epochs=3]
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_CONFIG = cli.define_config_file(None, "Config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder for models, results and report.")
flags.mark_flags_as_required(["config", "workdir"])
cli.define_verbose_flag()


def main(argv):
    import edgequant
    from edgequant import pipeline

    result = pipeline.run(_CONFIG.value, _WORKDIR.value, verbose=2)
    print(edgequant.summary(result))
    print(f"\nreport: {_WORKDIR.value}/report.md")
    failed = pipeline.failures(result)
    for line in failed:
        print(f"error: {line}")
    if _CONFIG.value.model.get("path"):  # a deployment: it succeeds when a variant qualifies
        return 0 if result["recommended"] and not failed else 1
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main)
