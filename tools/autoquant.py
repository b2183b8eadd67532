"""The recovery ladder on a trained study: the cheapest variant within budget.max_drop_pp of float.

  python tools/autoquant.py --config=configs/mnist_autoquant.py --workdir=runs/mnist_autoquant \
      [--config.target=cpu] [--config.budget.max_drop_pp=0.3]
Prints every rung tried (judged on the validation split). Exit status: 0 a rung met the
budget, 1 none did (every variant is kept and measured), 2 bad input.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_CONFIG = cli.define_config_file(None, "Config file (configs/mnist_autoquant.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder.")
flags.mark_flags_as_required(["config", "workdir"])
cli.define_verbose_flag()


def main(argv):
    import edgequant
    from edgequant import pipeline

    result = pipeline.run(_CONFIG.value, _WORKDIR.value, verbose=0)
    for t in result["recovery"]:
        verdict = t.get("on_validation") or t.get("error") or t.get("skipped", "")
        met = "  <- meets the budget" if t.get("meets_budget") else ""
        print(f"{t['step']:<20} {t['name']:<28} {verdict}{met}")
    print(edgequant.summary(result))
    met = any(t.get("meets_budget") for t in result["recovery"])
    return 0 if met else 1


if __name__ == "__main__":
    cli.run(main)
