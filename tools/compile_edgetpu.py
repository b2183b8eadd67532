"""Compiles a .tflite for the Edge TPU with edgetpu_compiler, parses its log, and compares the
real mapping with the analyzer's prediction.

  python tools/compile_edgetpu.py --model=runs/mnist/uint8.tflite --out_dir=runs/mnist/edgetpu
  python tools/compile_edgetpu.py --model=a.tflite,b.tflite   # co-compiled: one shared cache
  python tools/compile_edgetpu.py --model=big.tflite --num_segments=2   # pipeline on 2 TPUs
Each model's parameter bytes are predicted against the on-chip cache ("fits on-chip" or
"streams N MiB from the host per inference") before compiling.
Exit status: 0 compiled, 1 compile failed or gate failed, 3 compiler not installed (the
prediction is still printed), 2 bad input.
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
    from edgequant.edgetpu import cache

    models = _MODEL.value
    gates = [edgetpu.check_full_integer(m) for m in models]
    analyses = [
        edgetpu.analyze(m, _MIN_RT.value, _MULTI.value, _COMPILER_VERSION.value) for m in models
    ]
    caches = cache.predict_co_compiled(models)
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
    result = edgetpu.compile_models(models, _OUT.value, _COMPILER.value, options)
    out = {
        "gate": [g.to_dict() for g in gates],
        "prediction": [a.to_dict() for a in analyses],
        "cache": [c.to_dict() for c in caches],
        "compile": result.to_dict(),
    }
    compiled = [f for f in result.output_files if "_segment_" not in f]
    if result.status == "compiled" and len(models) == 1 and compiled and not _SEGMENTS.value:
        out["comparison"] = edgetpu.compare_with_prediction(analyses[0], compiled[0])
    if _JSON.value:
        print(json.dumps(out, indent=1))
    else:
        for gate, analysis, predicted in zip(gates, analyses, caches, strict=True):
            print(gate.summary())
            print(f"predicted: {analysis.mapped_count}/{len(analysis.ops)} ops on the Edge TPU")
            print(f"parameter cache: {predicted.text}")
        print(f"compile: {result.status}: {result.reason}")
        for block in result.logs:
            print(
                f"  {block.output_model}: on-chip {block.on_chip_used} B, "
                f"off-chip {block.off_chip_used} B"
            )
        if "comparison" in out:
            c = out["comparison"]
            print("prediction matches the compiler" if c["matches"] else f"prediction differs: {c}")
    if result.status == "not_compiled":
        return 3
    return 0 if result.status == "compiled" and all(g.passed for g in gates) else 1


if __name__ == "__main__":
    cli.run(main)
