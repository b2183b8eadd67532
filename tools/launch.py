"""Runs any binary as N local TensorFlow workers (TF_CONFIG on free 127.0.0.1 ports).

  python tools/launch.py --workers=2 -- tools/pipeline.py --config=configs/test.py \
      --config.distribute=multi_worker --workdir=runs/test2
Worker 0 is the chief: it alone writes the workdir. Output lines are prefixed `[worker i]`. The
exit status is the chief's; if any worker dies, the others are stopped and one `error:` line
names it. On a real cluster, set TF_CONFIG on each host instead (see WORKSPACE.md).
"""

from absl import flags

from edgequant import cli

_WORKERS = flags.DEFINE_integer("workers", 2, "Number of local workers.")
_GRACE = flags.DEFINE_float(
    "finish_grace_secs", 120.0, "How long the others may run on after the chief succeeded."
)
cli.define_verbose_flag()


def main(argv):
    from edgequant import distribute

    return distribute.launch(argv[1:], _WORKERS.value, _GRACE.value)


if __name__ == "__main__":
    cli.run(main)
