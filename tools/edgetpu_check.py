"""Predicts how the Edge TPU compiler will map a .tflite model, and checks the full-integer gate.

  python tools/edgetpu_check.py --model=runs/mnist/uint8.tflite [--json] [--min_runtime_version=14]
Exit status: 0 when every op is predicted to map and the gate passes, 1 otherwise, 2 on bad input.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "The .tflite model to check.")
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table.")
_MIN_RT = flags.DEFINE_integer("min_runtime_version", None, "Target Edge TPU runtime version (-m).")
_MULTI = flags.DEFINE_bool("multiple_subgraphs", False, "Model the compiler's -a flag.")
_COMPILER = flags.DEFINE_integer(
    "compiler_version", 16, "edgetpu_compiler major version to predict (14, 15 or 16)."
)
_IO = flags.DEFINE_enum("io_dtype", "uint8", ["uint8", "int8"], "Model I/O type the gate requires.")
flags.mark_flag_as_required("model")
cli.define_verbose_flag()


def main(argv):
    import json

    from edgequant.edgetpu import check
    from edgequant.edgetpu.compiler import CompileOptions

    target = CompileOptions(min_runtime_version=_MIN_RT.value, multiple_subgraphs=_MULTI.value)
    options = check.CheckOptions(target, compiler_version=_COMPILER.value, io_dtype=_IO.value)
    (m,) = check.check_models([_MODEL.value], options)
    analysis, gate, predicted = m.analysis, m.gate, m.cache
    if _JSON.value:
        out = {**analysis.to_dict(), "gate": gate.to_dict(), "parameter_cache": predicted.to_dict()}
        print(json.dumps(out, indent=1))
    else:
        print(f"{'#':>4}  {'op':<28} {'where':<8} {'confidence':<11} reason")
        for v in analysis.ops:
            name = v.custom_code if v.op == "CUSTOM" else v.op
            where = "EdgeTPU" if v.mapped else "CPU"
            print(f"{v.index:>4}  {name:<28} {where:<8} {v.confidence:<11} {v.reason}")
        total = len(analysis.ops)
        print(
            f"\n{analysis.mapped_count}/{total} ops predicted on the Edge TPU, "
            f"{total - analysis.mapped_count} on the CPU; {analysis.num_subgraphs} Edge TPU subgraph(s)"
        )
        if analysis.uncertain_ops:
            print(
                f"uncertain: {len(analysis.uncertain_ops)} verdict(s) rest on thin evidence "
                "(size-dependent or undocumented rules): "
                + ", ".join(f"{v.index} {v.op}" for v in analysis.uncertain_ops[:8])
            )
        print(analysis.advice)
        print(f"parameter cache: {predicted.text}")
        print(gate.summary())
    return 0 if analysis.fully_mapped and gate.passed else 1


if __name__ == "__main__":
    cli.run(main)
