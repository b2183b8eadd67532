"""Bounded work: refuse a run whose samples would not fit in memory, before any work.

A 1x4096x4096x3 model, or `--resize=20000,20000` on a model with a free input size, makes
every sample hundreds of MB to GB of float32. The calibration set is held in memory whole (the
converter's representative dataset), the evaluation statistics hold a few hundred samples, and
the streamed measurement holds a batch per model; past the machine's memory the process swaps,
is killed, or under a memory cap stalls where signals cannot reach it. The arithmetic is cheap
and the sizes are known once the sources are open, so the run is refused with the size it
would need instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgequant.errors import UserError

STATS_SAMPLES = 256  # evaluation samples the data statistics hold (flow/bundle.py)
_GIB = 1 << 30


def available_bytes() -> int | None:
    """What this process can still allocate: MemAvailable, or a cgroup v2 limit's headroom
    when lower (a container's cap); None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def sample_bytes(source, inputs) -> tuple[int, str]:
    """(float32 bytes of one model-ready sample, a description): images by their
    preprocessing size (never decoded for this), other sources by one real sample."""
    spec = source.preprocessing
    if spec is not None and len(inputs) == 1:
        shape = (*spec.size, spec.channels)
        return 4 * math.prod(shape), f"input '{inputs[0].name}' {list(shape)} float32"
    fixed = {t.name: t.sample_shape for t in inputs if None not in t.sample_shape}
    if len(fixed) < len(inputs):  # a free dimension: measure one real sample
        x, _ = source.take(np.arange(1))
        fixed = {k: v.shape[1:] for k, v in x.items()}
    total = sum(4 * math.prod(s) for s in fixed.values())
    shown = ", ".join(f"'{k}' {list(s)}" for k, s in fixed.items())
    return total, f"input(s) {shown} float32"


def held_samples(calibration: int, evaluation: int, batch_size: int) -> int:
    """Samples in memory at the peak: the calibration set twice (its batches and their
    concatenation), the statistics' evaluation samples, and a few batches in flight."""
    return 2 * calibration + min(evaluation, STATS_SAMPLES) + 4 * min(batch_size, evaluation)


def check_memory(
    source, inputs, calibration: int, evaluation: int, batch_size: int, available: int | None
) -> None:
    """Refuses (one line, with the size needed) when the samples held at once exceed
    `available` bytes (available_bytes(); None: unknown, nothing refused)."""
    per_sample, what = sample_bytes(source, inputs)
    held = held_samples(calibration, evaluation, batch_size)
    need = per_sample * held
    if available is None or need <= available:
        return
    raise UserError(
        f"this run would hold about {need / _GIB:.1f} GiB of samples in memory ({held} samples "
        f"of {per_sample / (1 << 20):.1f} MiB: {what}) but {available / _GIB:.1f} GiB is "
        "available; use a smaller input size (--resize), fewer calibration samples "
        "(--config.quantize.calibration_size) or a machine with more memory"
    )
