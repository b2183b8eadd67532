"""The analyzer and the cache rule against every piece of real compiler output we have.

- Compiled pairs (`X.tflite` beside `X_edgetpu.tflite`): the ops left outside
  `edgetpu-custom-op` are the compiler's real CPU ops; the analyzer must predict exactly those.
  The PARAMETER_CACHING executable inside the compiled model holds the real on-chip bytes.
- Compiler logs: their "On-chip memory used/remaining" and "Off-chip memory" lines.
"""

from __future__ import annotations

from pathlib import Path

from edgequant.edgetpu import cache, compiler_log
from edgequant.edgetpu.analyzer import analyze, judge
from edgequant.edgetpu.compiled import compare_with_prediction, cpu_ops
from edgequant.tflite.model import TFLiteModel

# Detection/segmentation head ops whose own (size) rule decides their mapping: judged alone, one
# the real compiler left on the CPU must never be predicted mapped (the partition can hide such
# an optimistic verdict when the op sits downstream of an earlier cut).
HEAD_OPS = frozenset({"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE", "ARG_MAX"})


def optimistic_head_ops(source: str | Path, compiled: str | Path) -> list[str]:
    """Head ops the compiler left on the CPU that the per-op verdict calls mapped."""
    model = TFLiteModel.load(source)
    real = cpu_ops(compiled, source)
    return [
        f"{op.index} {op.op}"
        for op in model.operators
        if op.op in HEAD_OPS and op.index in real and judge(model, op).mapped
    ]


def compiled_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    folder = Path(folder)
    out = []
    for compiled in sorted(folder.glob("*_edgetpu.tflite")):
        source = compiled.with_name(compiled.name.replace("_edgetpu.tflite", ".tflite"))
        if source.is_file():
            out.append((source, compiled))
    return out


def check_pairs(folder: str | Path) -> list[dict]:
    """Per pair: does the prediction match, and predicted vs real on-chip parameter bytes."""
    rows = []
    for source, compiled in compiled_pairs(folder):
        analysis = analyze(source)
        comparison = compare_with_prediction(analysis, compiled)
        predicted = cache.predict_cache(source, analysis)
        real = cache.compiled_parameter_bytes(compiled)
        rows.append(
            {
                "model": source.name,
                "ops": len(analysis.ops),
                "predicted_mapped": analysis.mapped_count,
                "real_cpu_ops": comparison["real_cpu_ops"],
                "matches": comparison["matches"],
                "optimistic_head_ops": optimistic_head_ops(source, compiled),
                "predicted_parameter_bytes": predicted.parameter_bytes,
                "real_caching_bytes": real["caching"],
                "real_streamed_bytes": real["execution_only"],
                "cache_verdict": predicted.verdict,
            }
        )
    return rows


def check_logs(paths: list[str | Path]) -> list[dict]:
    """Per log with cache lines: capacity (used + remaining) and the rule's verdict vs reality."""
    rows = []
    for path in paths:
        log = compiler_log.parse(Path(path).read_text())
        if log.on_chip_used is None:
            continue
        row = cache.check_log(Path(path).name, log)
        rows.append(
            {
                "log": row.name,
                "version": log.version,
                "on_chip_used": row.used,
                "off_chip": row.off_chip,
                "capacity": row.capacity,
                "predicted": row.predicted,
                "actual": row.actual,
            }
        )
    return rows
