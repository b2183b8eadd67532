"""Edge TPU: the full-integer gate, the compatibility analyzer, and the compiler wrapper.

check_and_compile(paths, out_dir, CheckOptions()) -> EdgeTpuResult
                                        the one sequence: gate -> analyzer -> compiler -> compare

check_full_integer(path, io_dtype="uint8") -> GateReport   may it be compiled at all?
analyze(path, min_runtime_version=None, multiple_subgraphs=False) -> Analysis
                                                            which ops will map, and why not
compile_model(path, out_dir, compiler=None, options=CompileOptions()) -> CompileResult
compile_models(paths, out_dir, ...) -> CompileResult       co-compiled: one shared cache
compare_with_prediction(analysis, compiled_path) -> dict    analyzer vs the real compiler
cache.predict_cache(path) -> CachePrediction                fits on-chip / streams N MiB
repair.repair(model, calibration, approximate) -> RepairResult   rewrite Keras so more maps
  (the module `edgequant.edgetpu.repair`; `repair_file(path, out, ...)` is exported here)
"""

from edgequant.edgetpu.analyzer import Analysis, analyze
from edgequant.edgetpu.check import CheckOptions, EdgeTpuResult, check_and_compile
from edgequant.edgetpu.compiled import compare_with_prediction, cpu_ops
from edgequant.edgetpu.compiler import (
    CompileOptions,
    CompileResult,
    compile_model,
    compile_models,
    find_compiler,
)
from edgequant.edgetpu.gate import GateReport, check_full_integer
from edgequant.edgetpu.repair import RepairResult, repair_file

__all__ = [
    "Analysis",
    "CheckOptions",
    "CompileOptions",
    "CompileResult",
    "EdgeTpuResult",
    "GateReport",
    "RepairResult",
    "analyze",
    "check_and_compile",
    "check_full_integer",
    "compare_with_prediction",
    "compile_model",
    "compile_models",
    "cpu_ops",
    "find_compiler",
    "repair_file",
]
