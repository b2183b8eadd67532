"""Ground truth from a compiled `*_edgetpu.tflite`: which source ops the compiler left on the CPU.

The compiler replaces everything it mapped with `edgetpu-custom-op` and keeps every CPU op as an
ordinary builtin with its original output tensor names, so matching output names back to the
source model recovers the real mapping without running the compiler.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.edgetpu.analyzer import COMPILED, Analysis
from edgequant.tflite.model import TFLiteModel


def cpu_ops(compiled: str | Path, source: str | Path) -> set[int]:
    """Indices (in the source model) of the ops the compiler left on the CPU."""
    comp, src = TFLiteModel.load(compiled), TFLiteModel.load(source)
    by_output = {}
    for op in src.operators:
        for t in op.outputs:
            by_output[src.tensors[t].name] = op.index
    found: set[int] = set()
    for op in comp.operators:
        if op.custom_code == COMPILED:
            continue
        names = [comp.tensors[t].name for t in op.outputs]
        matches = {by_output[n] for n in names if n in by_output}
        if not matches:
            raise ValueError(
                f"{compiled}: CPU op {op.index} {op.label} has no counterpart in {source}"
            )
        found |= matches
    return found


def compare_with_prediction(analysis: Analysis, compiled: str | Path) -> dict:
    """Differences between the analyzer's prediction and what the compiler really did."""
    truth = cpu_ops(compiled, analysis.path)
    predicted = {v.index for v in analysis.cpu_ops}
    names = {v.index: v.op for v in analysis.ops}
    return {
        "matches": truth == predicted,
        "real_cpu_ops": sorted(truth),
        "predicted_cpu_ops": sorted(predicted),
        "mapped_but_predicted_cpu": [f"{i} {names[i]}" for i in sorted(predicted - truth)],
        "cpu_but_predicted_mapped": [f"{i} {names[i]}" for i in sorted(truth - predicted)],
    }
