"""Rewrites a Keras model so more of it maps to the Edge TPU, and reports what changed.

  python tools/edgetpu_fix.py --model=net.h5 --out=net_fixed.h5 [--approximate]
      [--calibration=samples.npy] [--json]
The output keeps the input's format (.h5 or .keras) and Keras flavour (tf_keras or Keras 3) and
uses only standard layers. Exact rewrites are always applied; approximate ones (GELU, ELU) only
with --approximate, each with its measured maximum output error.
Exit status: 0 when the repaired model is predicted fully mapped, 1 otherwise, 2 on bad input.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "The Keras model (.h5 or .keras) to repair.")
_OUT = flags.DEFINE_string("out", None, "Where to write the repaired model (same suffix).")
_APPROX = flags.DEFINE_bool(
    "approximate", False, "Also apply approximate rewrites (GELU, ELU); errors are reported."
)
_CALIB = flags.DEFINE_string(
    "calibration",
    None,
    "A .npy of input samples (N, ...) to measure errors and calibrate the uint8 conversion "
    "(default: 32 synthetic standard-normal samples).",
)
_JSON = flags.DEFINE_bool("json", False, "Print the result as JSON.")
_TRUST = cli.define_trust_flag()
flags.mark_flags_as_required(["model", "out"])
cli.define_verbose_flag()


def main(argv):
    import json

    import numpy as np

    from edgequant.edgetpu import repair

    samples = None
    if _CALIB.value:
        try:
            samples = np.load(_CALIB.value, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read --calibration {_CALIB.value}: {e}") from None
        if not isinstance(samples, np.ndarray):  # an .npz archive: no input order to map it by
            raise ValueError(f"--calibration {_CALIB.value} must be one .npy array (N, ...)")
    result = repair.repair_file(
        _MODEL.value, _OUT.value, samples, _APPROX.value, trust_code=bool(_TRUST.value)
    )
    if _JSON.value:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(result.summary())
        print(f"wrote {_OUT.value}")
    return 0 if result.after.fully_mapped else 1


if __name__ == "__main__":
    cli.run(main)
