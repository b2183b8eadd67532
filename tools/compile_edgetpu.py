"""Compiles a .tflite for the Edge TPU with edgetpu_compiler, parses its log, and compares the
real mapping with the analyzer's prediction.

  python tools/compile_edgetpu.py --model=runs/mnist/uint8.tflite --out_dir=runs/mnist/edgetpu
  python tools/compile_edgetpu.py --model=a.tflite,b.tflite   # co-compiled: one shared cache
  python tools/compile_edgetpu.py --model=big.tflite --num_segments=2   # pipeline on 2 TPUs
Each model's parameter bytes are predicted against the on-chip cache ("fits on-chip" or
"streams N MiB from the host per inference") before compiling.
Exit status: 0 compiled, 1 compile failed or gate failed (a model that fails the full-integer
gate is not handed to the compiler), 3 compiler not installed (the prediction is still
printed), 2 bad input. The sequence is edgequant.edgetpu.check.check_and_compile, the one the
pipeline's Edge TPU stage runs, and --json prints the same entries the pipeline stores.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_list(
    "model", None, "The full-integer .tflite(s) to compile; several are co-compiled in one call."
)
_OUT = flags.DEFINE_string(
    "out_dir", ".", "Where the compiler writes *_edgetpu.tflite and .log (-o)."
)
_COMPILER = flags.DEFINE_string("compiler", None, "Path to edgetpu_compiler (default: PATH).")
_SHOW = flags.DEFINE_bool("show_operations", True, "-s: print the operator table.")
_MIN_RT = flags.DEFINE_integer("min_runtime_version", None, "-m: lowest runtime to support.")
_SEGMENTS = flags.DEFINE_integer("num_segments", None, "-n: split into N segments for pipelining.")
_INTERMEDIATE = flags.DEFINE_list(
    "intermediate_tensors", [], "-i: end the Edge TPU part at these tensors."
)
_MULTI = flags.DEFINE_bool(
    "enable_multiple_subgraphs", False, "-a: allow several Edge TPU subgraphs."
)
_SEARCH = flags.DEFINE_bool(
    "search_delegate", False, "-d: search for a compilable prefix on failure."
)
_STEP = flags.DEFINE_integer("delegate_search_step", None, "-k: step of the -d search.")
_TIMEOUT = flags.DEFINE_integer(
    "timeout_sec", None, "-t: compile timeout in seconds (compiler default 180)."
)
_COMPILER_VERSION = flags.DEFINE_integer(
    "compiler_version", 16, "Compiler major version the prediction assumes."
)
_JSON = flags.DEFINE_bool("json", False, "Print the result as JSON.")
flags.mark_flag_as_required("model")
cli.define_verbose_flag()


def main(argv):
    import json

    from edgequant import edgetpu
    from edgequant.edgetpu import check

    options = check.CheckOptions(
        edgetpu.CompileOptions(
            _SHOW.value,
            _MIN_RT.value,
            _SEGMENTS.value,
            tuple(_INTERMEDIATE.value),
            _MULTI.value,
            _SEARCH.value,
            _STEP.value,
            _TIMEOUT.value,
        ),
        _COMPILER.value or None,
        _COMPILER_VERSION.value,
    )
    result = check.check_and_compile(_MODEL.value, _OUT.value, options)
    if _JSON.value:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        for m in result.models:
            print(m.gate.summary())
            print(f"predicted: {m.analysis.mapped_count}/{len(m.analysis.ops)} ops on the Edge TPU")
            print(f"parameter cache: {m.cache.text}")
        print(f"compile: {result.status}: {result.reason}")
        for block in result.compile.logs if result.compile else ():
            print(
                f"  {block.output_model}: on-chip {block.on_chip_used} B, "
                f"off-chip {block.off_chip_used} B"
            )
        c = result.comparison
        if c is not None:
            print("prediction matches the compiler" if c["matches"] else f"prediction differs: {c}")
    if result.status == "not_compiled":
        return 3
    return 0 if result.status == "compiled" else 1


if __name__ == "__main__":
    cli.run(main)
