"""Parses `edgetpu_compiler` stdout and its `.log` file (formats of v2.0, v14, v15 and v16).

The layout (research notes, section 2.4): a version line, optional delegate-search and timer
lines, one summary block per model starting at `Input model:`, an optional "not all operations"
paragraph with the TPU/CPU counts, and an operator table (`Operator  Count  Status`) whose rows
repeat an op once per status. With -d several attempts print before the final block, so the
last block wins. A fully mapped model prints no CPU count: it defaults to 0.
"""

from __future__ import annotations

import dataclasses
import re

_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\S.*?)\s*$")
_SIZE = re.compile(r"^([\d.]+)\s*(B|KiB|MiB|GiB)$")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
MAPPED = "Mapped to Edge TPU"
FAILURE_MARKERS = (
    "Invalid model:",
    "Model not quantized",
    "Model could not be parsed",
    "Didn't find op for builtin opcode",
    "ERROR: Registration failed.",
    "Compilation failed",
    "Internal compiler error. Aborting!",
    "only supports static-sized tensors",
)


def parse_size(text: str) -> int | None:
    """'41.75KiB' -> bytes."""
    m = _SIZE.match(text.strip())
    return round(float(m.group(1)) * _UNITS[m.group(2)]) if m else None


@dataclasses.dataclass
class CompileLog:
    version: str | None = None
    succeeded: bool | None = None  # from "Model compiled successfully" / "Compilation succeeded!"
    errors: list[str] = dataclasses.field(default_factory=list)
    input_model: str | None = None
    output_model: str | None = None
    input_size: int | None = None
    output_size: int | None = None
    on_chip_used: int | None = None
    on_chip_remaining: int | None = None
    off_chip_used: int | None = None
    num_subgraphs: int | None = None
    total_ops: int | None = None
    tpu_ops: int | None = None
    cpu_ops: int | None = None
    operation_log: str | None = None
    ops: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # op -> status -> n
    models: int = 0  # summary blocks seen (co-compiled models or segments)
    compile_ms: int | None = None

    @property
    def mapped_count(self) -> int:
        return sum(s.get(MAPPED, 0) for s in self.ops.values()) if self.ops else (self.tpu_ops or 0)

    @property
    def cpu_count(self) -> int:
        if self.ops:
            return sum(n for s in self.ops.values() for st, n in s.items() if st != MAPPED)
        return self.cpu_ops or 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(mapped_count=self.mapped_count, cpu_count=self.cpu_count)
        return d


def parse(text: str) -> CompileLog:
    """Parses compiler stdout and/or a .log file's text (they can be concatenated)."""
    log = CompileLog()
    in_table = False
    for raw in text.splitlines():
        line = raw.rstrip()
        s = line.strip()
        if s.startswith("Edge TPU Compiler version"):
            log.version = s.rsplit(" ", 1)[-1]
            continue
        if s.startswith("Input model:"):  # a new summary block: the last one wins
            log.models += 1
            log.ops, in_table = {}, False
            log.tpu_ops = log.cpu_ops = None
        if s.startswith("Operator") and "Count" in s and "Status" in s:
            log.ops, in_table = {}, True
            continue
        if in_table:
            m = _ROW.match(s)
            if m:
                op, n, status = m.group(1), int(m.group(2)), m.group(3)
                log.ops.setdefault(op, {})
                log.ops[op][status] = log.ops[op].get(status, 0) + n
                continue
            if s:
                in_table = False
        if any(marker in s for marker in FAILURE_MARKERS):
            log.errors.append(s)
            if "Compilation failed" in s or "Invalid model" in s or "Internal compiler error" in s:
                log.succeeded = False
        if s.startswith("Model compiled successfully"):
            log.succeeded = True
            m = re.search(r"in (\d+) ms", s)
            log.compile_ms = int(m.group(1)) if m else None
        elif s.startswith("Compilation succeeded!"):
            log.succeeded = True
        if ":" not in s:
            continue
        key, value = (part.strip() for part in s.split(":", 1))
        if key == "Input model":
            log.input_model = value
        elif key == "Output model":
            log.output_model = value
        elif key == "Input" and log.input_model is None:
            log.input_model = value
        elif key == "Output" and log.output_model is None:
            log.output_model = value
        elif key == "Input size":
            log.input_size = parse_size(value)
        elif key == "Output size":
            log.output_size = parse_size(value)
        elif key == "On-chip memory used for caching model parameters":
            log.on_chip_used = parse_size(value)
        elif key in (
            "On-chip memory remaining for caching model parameters",
            "On-chip memory available for caching model parameters",
        ):
            log.on_chip_remaining = parse_size(value)
        elif key == "Off-chip memory used for streaming uncached model parameters":
            log.off_chip_used = parse_size(value)
        elif key == "Number of Edge TPU subgraphs":
            log.num_subgraphs = int(value)
        elif key == "Total number of operations":
            log.total_ops = int(value)
        elif key == "Number of operations that will run on Edge TPU":
            log.tpu_ops = int(value)
        elif key == "Number of operations that will run on CPU":
            log.cpu_ops = int(value)
        elif key == "Operation log":
            log.operation_log = value
    if log.total_ops is not None and log.cpu_ops is None and not log.errors:
        log.cpu_ops, log.tpu_ops = 0, log.total_ops if log.tpu_ops is None else log.tpu_ops
    return log


def parse_blocks(text: str) -> list[CompileLog]:
    """One CompileLog per summary block (co-compiled models and -n segments each print one,
    starting at `Input model:`); the version line and any failure before the first block are
    shared by all."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.strip().startswith("Input model:")]
    if not starts:
        return []
    head = "\n".join(lines[: starts[0]])
    bounds = [*starts, len(lines)]
    return [
        parse(head + "\n" + "\n".join(lines[a:b])) for a, b in zip(bounds, bounds[1:], strict=False)
    ]
