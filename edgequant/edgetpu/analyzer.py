"""Predicts what `edgetpu_compiler` will map, without the compiler.

Two steps. First each op is judged on its own against the supported-op table (rules.py over
ops.py): op type, data types, rank, op version, runtime version and the documented per-op
constraints. Then the compiler's partitioning is replayed on the dataflow graph, not on the
operator list: the compiler builds one Edge TPU subgraph (without -a), so the first op that
cannot be mapped *after mapping has started* cuts the graph, and that op and everything
downstream of it run on the CPU, even ops that are supported. Ops that cannot be mapped *before*
anything is mapped (an input QUANTIZE from float, a CAST) stay on the CPU in front of the Edge
TPU op and do not cut. Ops in a branch that does not depend on the cut keep their mapping.

Callers import from here: the status strings, OpVerdict and judge are re-exported from rules.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgequant.edgetpu import ops as op_table
from edgequant.edgetpu.rules import (
    COMPILED,
    DATA_TYPE,
    MAPPED,
    NOT_CONSTANT,
    RANK,
    UNSPECIFIED,
    UNSUPPORTED,
    VERSION,
    OpVerdict,
    judge,
)
from edgequant.tflite.model import TFLiteModel

__all__ = [
    "COMPILED",
    "DATA_TYPE",
    "DOWNSTREAM",
    "MAPPED",
    "NOT_CONSTANT",
    "RANK",
    "UNSPECIFIED",
    "UNSUPPORTED",
    "VERSION",
    "Analysis",
    "OpVerdict",
    "advise",
    "analyze",
    "judge",
    "partition",
]

DOWNSTREAM = "More than one subgraph is not supported"


@dataclasses.dataclass(frozen=True)
class Analysis:
    path: str
    ops: tuple[OpVerdict, ...]
    multiple_subgraphs: bool
    min_runtime_version: int | None
    num_subgraphs: int
    first_unmapped: OpVerdict | None  # the op that cut the graph (single-subgraph mode)
    advice: str

    @property
    def mapped_count(self) -> int:
        return sum(v.mapped for v in self.ops)

    @property
    def cpu_ops(self) -> list[OpVerdict]:
        return [v for v in self.ops if not v.mapped]

    @property
    def fully_mapped(self) -> bool:
        return not self.cpu_ops

    @property
    def uncertain_ops(self) -> list[OpVerdict]:
        """Ops whose verdict rests on thin evidence (size-dependent or undocumented rules)."""
        return [v for v in self.ops if v.confidence == "uncertain"]

    def to_dict(self) -> dict:
        return {
            "model": self.path,
            "ops": [v.to_dict() for v in self.ops],
            "mapped_count": self.mapped_count,
            "cpu_count": len(self.cpu_ops),
            "cpu_ops": [
                {"index": v.index, "op": v.op, "custom_code": v.custom_code, "status": v.status}
                for v in self.cpu_ops
            ],
            "first_unmapped": self.first_unmapped.to_dict() if self.first_unmapped else None,
            "uncertain_ops": [f"{v.index} {v.op}" for v in self.uncertain_ops],
            "num_subgraphs": self.num_subgraphs,
            "multiple_subgraphs": self.multiple_subgraphs,
            "min_runtime_version": self.min_runtime_version,
            "advice": self.advice,
        }


def _components(model: TFLiteModel, mapped: set[int]) -> int:
    """Edge TPU subgraphs with -a: mapped ops grouped so that no group's data leaves for the CPU
    and comes back (that would be a cycle through one delegate node). An op's level counts the
    CPU ops on the longest path reaching it; mapped neighbours of equal level share a subgraph."""
    level: dict[int, int] = {}
    for op in model.operators:
        preds = model.predecessors(op)
        level[op.index] = max((level[p] + (p not in mapped) for p in preds), default=0)
    parent = {i: i for i in mapped}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for op in model.operators:
        if op.index in mapped:
            for p in model.predecessors(op):
                if p in mapped and level[p] == level[op.index]:
                    parent[find(p)] = find(op.index)
    return len({find(i) for i in mapped})


def partition(
    model: TFLiteModel, verdicts: list[OpVerdict], multiple_subgraphs: bool
) -> tuple[list[OpVerdict], OpVerdict | None]:
    """Applies the compiler's partitioning to per-op verdicts (ops are in execution order)."""
    if multiple_subgraphs:
        return verdicts, None
    out: list[OpVerdict] = []
    cut: set[int] = set()  # ops that run on the CPU after mapping started, and their descendants
    mapped_above: dict[int, bool] = {}  # op -> has a mapped op among its ancestors (or is one)
    first: OpVerdict | None = None
    for op, v in zip(model.operators, verdicts, strict=True):
        preds = model.predecessors(op)
        after_mapping = any(mapped_above.get(p, False) for p in preds)
        if any(p in cut for p in preds):
            if v.mapped:
                v = dataclasses.replace(
                    v,
                    mapped=False,
                    status=DOWNSTREAM,
                    reason=f"downstream of op {first.index} {first.op}"
                    if first
                    else "downstream of a CPU op",
                )
            cut.add(op.index)
        elif not v.mapped and after_mapping:
            cut.add(op.index)
            first = first or v
        mapped_above[op.index] = v.mapped or after_mapping
        out.append(v)
    return out, first


def advise(model: TFLiteModel, verdicts: list[OpVerdict], first: OpVerdict | None) -> str:
    """What to change, in words: the op that cut the graph and the layers feeding it."""
    cpu = [v for v in verdicts if not v.mapped]
    if not cpu:
        return "All ops are predicted to map to the Edge TPU: one Edge TPU subgraph, nothing on the CPU."
    lines = []
    if first is not None:
        op = model.operators[first.index]
        feeding = [
            model.tensors[i].name for i in op.inputs if i >= 0 and not model.tensors[i].is_constant
        ]
        tail = sum(1 for v in verdicts if v.status == DOWNSTREAM)
        lines.append(
            f"The graph is cut at op {first.index} {first.custom_code or first.op} ({first.reason}); it and "
            f"{tail} supported op(s) after it run on the CPU. It is fed by: {', '.join(feeding[:3])}."
        )
        lines.append(_fix_hint(first))
        lines.append(
            "Alternatives: compile with -i <tensor> to end the Edge TPU part before it, or -a "
            "for several Edge TPU subgraphs (more CPU<->TPU transfers)."
        )
    leading = [
        v
        for v in cpu
        if v.status != DOWNSTREAM and v is not first and (first is None or v.index < first.index)
    ]
    if leading:
        names = ", ".join(f"{v.index} {v.custom_code or v.op}" for v in leading[:5])
        lines.append(
            f"On the CPU without cutting the graph: {names} (input/output conversion or tail ops)."
        )
    return " ".join(lines)


def _fix_hint(v: OpVerdict) -> str:
    if v.op.startswith("RESIZE"):
        return (
            "Fix: use integer scale factors (e.g. UpSampling2D(size=2)), convert without "
            "half_pixel_centers, or move the resize after the model's last layer."
        )
    if v.status == DATA_TYPE or "float" in v.reason:
        return "Fix: convert with a full-integer recipe (uint8) so every tensor is 8-bit."
    if v.op == "CUSTOM":
        return "Fix: this is expected for post-processing at the end of a model; keep it last."
    return f"Fix: replace {v.op} with a supported op (see coral.ai/docs/edgetpu/models-intro) or move it to the end."


def analyze(
    path: str | Path,
    min_runtime_version: int | None = None,
    multiple_subgraphs: bool = False,
    compiler_version: int = op_table.COMPILER_MAJOR,
) -> Analysis:
    """Per-op verdicts and the predicted Edge TPU / CPU partition of a .tflite model.

    `compiler_version` is the edgetpu_compiler major version to predict (14, 15 or 16): a few
    rules changed between releases (resize op version 3).
    """
    model = TFLiteModel.load(path)
    verdicts = [judge(model, op, min_runtime_version, compiler_version) for op in model.operators]
    verdicts, first = partition(model, verdicts, multiple_subgraphs)
    mapped = {v.index for v in verdicts if v.mapped}
    subgraphs = _components(model, mapped) if multiple_subgraphs else int(bool(mapped))
    return Analysis(
        str(path),
        tuple(verdicts),
        multiple_subgraphs,
        min_runtime_version,
        subgraphs,
        first,
        advise(model, verdicts, first),
    )
