"""Compiles a .tflite for the Edge TPU with edgetpu_compiler, parses its log, and compares the
real mapping with the analyzer's prediction.

  python tools/compile_edgetpu.py --model=runs/mnist/uint8.tflite --out_dir=runs/mnist/edgetpu
Exit status: 0 compiled, 1 compile failed or gate failed, 3 compiler not installed (the
prediction is still printed), 2 bad input.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "The full-integer .tflite to compile.")
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
_JSON = flags.DEFINE_bool("json", False, "Print the result as JSON.")
flags.mark_flag_as_required("model")
cli.define_verbose_flag()


def main(argv):
    import json

    from edgequant import edgetpu

    gate = edgetpu.check_full_integer(_MODEL.value)
    analysis = edgetpu.analyze(_MODEL.value, _MIN_RT.value, _MULTI.value)
    options = edgetpu.CompileOptions(
        _SHOW.value,
        _MIN_RT.value,
        _SEGMENTS.value,
        tuple(_INTERMEDIATE.value),
        _MULTI.value,
        _SEARCH.value,
        _STEP.value,
        _TIMEOUT.value,
    )
    result = edgetpu.compile_model(_MODEL.value, _OUT.value, _COMPILER.value, options)
    out = {"gate": gate.to_dict(), "prediction": analysis.to_dict(), "compile": result.to_dict()}
    compiled = [f for f in result.output_files if "_segment_" not in f]
    if result.status == "compiled" and compiled and not _SEGMENTS.value:
        out["comparison"] = edgetpu.compare_with_prediction(analysis, compiled[0])
    if _JSON.value:
        print(json.dumps(out, indent=1))
    else:
        print(gate.summary())
        print(f"predicted: {analysis.mapped_count}/{len(analysis.ops)} ops on the Edge TPU")
        print(f"compile: {result.status}: {result.reason}")
        if "comparison" in out:
            c = out["comparison"]
            print("prediction matches the compiler" if c["matches"] else f"prediction differs: {c}")
    if result.status == "not_compiled":
        return 3
    return 0 if result.status == "compiled" and gate.passed else 1


if __name__ == "__main__":
    cli.run(main)
