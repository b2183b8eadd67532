"""Accuracy-targeted quantization search: the cheapest recipe within max_drop_pp of float.

  python tools/autoquant.py --config=configs/mnist_autoquant.py --workdir=runs/mnist_autoquant \
      [--config.autoquant.target=cpu] [--config.autoquant.max_drop_pp=0.3]
Exit status: 0 target met, 1 not met (the best trial is kept), 2 bad input.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config with an autoquant block.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
flags.mark_flags_as_required(["config", "workdir"])
cli.define_verbose_flag()


def main(argv):
    from edgequant import pipeline

    config = _CONFIG.value
    if "autoquant" not in config:
        raise ValueError("the config has no autoquant block; see configs/mnist_autoquant.py")
    results = pipeline.run(config, _WORKDIR.value, verbose=0)
    if "autoquant" not in results:  # the stage failed: pipeline.run recorded why
        reasons = "; ".join(f"{e['name']}: {e['error']}" for e in results["errors"])
        raise cli.UserError(f"the autoquant search did not finish: {reasons}")
    a = results["autoquant"]
    for t in a["trials"]:
        print(
            f"{t['step']:<13} {t['description']:<55} val drop {t['drop_pp']:+.2f} pp"
            f"{'  <- meets target' if t['meets_target'] else ''}"
        )
    best = next(v for v in results["variants"] if v["name"] == "autoquant_best")
    print(a["summary"])
    print(
        f"winner on the test split: {100 * best['accuracy']:.2f}% "
        f"(float {100 * results['float']['accuracy']:.2f}%) -> {a['path']}"
    )
    return 0 if a["met"] else 1


if __name__ == "__main__":
    cli.run(main)
