"""The one Edge TPU check-and-compile sequence: uint8 gate -> analyzer -> compiler -> comparison.

The pipeline stage (`edgetpu/stage.py`), the deployment flow (`deployment.edgetpu_checks`) and
`tools/compile_edgetpu.py` all call `check_and_compile`, so a model gets the same verdict, the
same compile command and the same JSON whichever way it was checked.

Order and why:
1. The full-integer gate first: a model with a float tensor or int8 I/O cannot be compiled for
   the Edge TPU at all, so it is never handed to the compiler ("gate_failed", with the
   violations) and the compiler's own terse "Model not quantized" never hides the reason.
2. The analyzer's per-op prediction and the parameter-cache verdict: available on every
   machine, and kept when the compiler is absent.
3. `edgetpu_compiler` when installed; otherwise the status is "not_compiled" with the install
   hint (the compiler exists only for x86-64 Debian), never an exception.
4. When exactly one model compiled, the compiled file's real CPU ops are compared with the
   prediction (with --num_segments there is no whole compiled model to compare).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgequant.edgetpu import cache, compiled, versions
from edgequant.edgetpu.analyzer import Analysis, analyze
from edgequant.edgetpu.compiler import (
    CompileOptions,
    CompileResult,
    compile_models,
    find_compiler,
)
from edgequant.edgetpu.gate import GateReport, check_full_integer
from edgequant.edgetpu.ops import COMPILER_MAJOR


@dataclasses.dataclass(frozen=True)
class CheckOptions:
    """How to check and compile. `compile.min_runtime_version` and `compile.multiple_subgraphs`
    drive both the compiler (-m, -a) and the analyzer's prediction, so the two never disagree
    on the target."""

    compile: CompileOptions = CompileOptions()
    compiler: str | None = None  # path to edgetpu_compiler; None = look on PATH
    compiler_version: int = COMPILER_MAJOR  # the compiler major version the prediction assumes
    io_dtype: str = "uint8"  # the I/O type the gate requires


@dataclasses.dataclass(frozen=True)
class ModelCheck:
    """What is known about one model before compiling: gate, prediction, cache verdict, and
    the op versions compiler 16 is not known to accept (a refused one also fails the gate)."""

    gate: GateReport
    analysis: Analysis
    cache: cache.CachePrediction
    op_versions: tuple[versions.VersionFinding, ...] = ()

    def to_dict(self) -> dict:
        a = self.analysis
        return {
            "model": Path(a.path).name,
            "gate": self.gate.to_dict(),
            "mapped_count": a.mapped_count,
            "op_count": len(a.ops),
            "cpu_ops": [f"{v.index} {v.custom_code or v.op}" for v in a.cpu_ops],
            "first_unmapped": a.first_unmapped.to_dict() if a.first_unmapped else None,
            "fully_mapped": a.fully_mapped,
            "advice": a.advice,
            "parameter_cache": self.cache.to_dict(),
            "op_versions": [f.to_dict() for f in self.op_versions],
        }


@dataclasses.dataclass(frozen=True)
class EdgeTpuResult:
    """The sequence's outcome for one compiler call (one model, or several co-compiled)."""

    models: tuple[ModelCheck, ...]
    compile: CompileResult | None  # None when a gate failed (nothing was compiled)
    comparison: dict | None = None  # analyzer vs the compiled model (one model, compiled)

    @property
    def status(self) -> str:
        """ "gate_failed", or the compiler's "compiled" / "failed" / "not_compiled"."""
        return "gate_failed" if self.compile is None else self.compile.status

    @property
    def reason(self) -> str:
        if self.compile is None:
            return "; ".join(m.gate.summary() for m in self.models if not m.gate.passed)
        return self.compile.reason

    def entries(self) -> list[dict]:
        """One JSON entry per model: its checks plus the shared compile outcome. The pipeline
        stores entries()[0] as a variant's `edgetpu`; the tool prints all of them."""
        out = []
        for m in self.models:
            e = m.to_dict()
            e.update(compile_status=self.status, compile_reason=self.reason)
            if self.compile is not None:
                e["compile"] = self.compile.to_dict()
            if self.comparison is not None:
                e["comparison"] = self.comparison
            out.append(e)
        return out

    def to_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "models": self.entries()}


def check_and_compile(
    paths: str | Path | list[str | Path],
    out_dir: str | Path,
    options: CheckOptions = CheckOptions(),
) -> EdgeTpuResult:
    """Gate, predict and (when every gate passes) compile `paths` in one compiler call.

    Never raises for a failed gate, a missing compiler or a failed compile: those are statuses.
    Raises FileNotFoundError for a missing model or an explicit compiler path that does not
    exist, and ValueError for a file that is not a .tflite model.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, str | Path) else paths)]
    if options.compiler:
        find_compiler(options.compiler)  # a wrong explicit path is an error even if a gate fails
    models = check_models(paths, options)
    if not all(m.gate.passed for m in models):
        return EdgeTpuResult(models, None)
    result = compile_models(paths, out_dir, options.compiler, options.compile)
    whole = [f for f in result.output_files if "_segment_" not in f]
    comparison = None
    if result.status == "compiled" and len(paths) == 1 and whole:
        comparison = compiled.compare_with_prediction(models[0].analysis, whole[0])
    return EdgeTpuResult(models, result, comparison)


def check_models(
    paths: list[str | Path], options: CheckOptions = CheckOptions()
) -> tuple[ModelCheck, ...]:
    """Steps 1 and 2 alone (gate, prediction, cache verdict): what `tools/edgetpu_check.py`
    reports on a machine without the compiler. The models share the parameter cache as one
    co-compilation would."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no model to check")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"model not found: {p}")
    c = options.compile
    gates = [check_full_integer(p, options.io_dtype) for p in paths]
    analyses = [
        analyze(p, c.min_runtime_version, c.multiple_subgraphs, options.compiler_version)
        for p in paths
    ]
    caches = cache.predict_co_compiled(paths, analyses)
    found = [tuple(versions.check_op_versions(p)) for p in paths]
    return tuple(ModelCheck(*m) for m in zip(gates, analyses, caches, found, strict=True))
