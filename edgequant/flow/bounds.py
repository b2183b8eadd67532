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
    """What this process can still allocate: MemAvailable, or the headroom under this process's
    own cgroup memory limit when lower (a container's or a job's cap); None where neither can be
    read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        own = Path("/proc/self/cgroup").read_text()
    except OSError:
        own = ""
    headroom = cgroup_headroom(own, Path("/sys/fs/cgroup"))
    if headroom is not None:
        found.append(headroom)
    return min(found) if found else None


# cgroup v1 writes "no limit" as the largest page-aligned 64-bit value, v2 as "max".
_NO_LIMIT = 1 << 62


V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes")
V2_FILES = ("memory.max", "memory.current")


def memory_cgroups(proc_self_cgroup: str, root: Path) -> list[tuple[Path, Path, tuple[str, str]]]:
    """(hierarchy root, this process's cgroup folder in it, (limit file, usage file)) for each
    memory hierarchy `/proc/self/cgroup` names: v2 (`0::/path`) and v1 (`N:memory:/path`)."""
    out = []
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            base, files = root, V2_FILES
            if not (base / "memory.max").exists() and (root / "unified").is_dir():
                base = root / "unified"
        elif "memory" in controllers.split(","):
            base, files = root / controllers, V1_FILES
        else:
            continue
        out.append((base, base / path.strip("/"), files))
    return out


def cgroup_headroom(proc_self_cgroup: str, root: Path) -> int | None:
    """The tightest (limit - usage) over this process's cgroup and its ancestors, for cgroup v2
    (memory.max/current) and v1 (memory.limit_in_bytes/usage_in_bytes); None without a limit.

    The limit is the process's own cgroup's, not the root's: under a v1 hierarchy or a job
    started in a sub-cgroup, /sys/fs/cgroup/memory.max does not exist or is not the cap, and a
    run that ignores its cap is killed or stalls instead of being refused.
    """
    best = None
    for base, folder, (limit_file, usage_file) in memory_cgroups(proc_self_cgroup, root):
        while True:
            try:
                limit = (folder / limit_file).read_text().strip()
                if limit != "max" and int(limit) < _NO_LIMIT:
                    room = int(limit) - int((folder / usage_file).read_text())
                    best = room if best is None else min(best, room)
            except (OSError, ValueError):
                pass
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return None if best is None else max(best, 0)


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


BATCH_BYTES = 256 << 20  # the float32 input of one batch through a model


def batch_size(per_sample: int, requested: int) -> int:
    """The largest batch, up to `requested`, whose float32 input stays within BATCH_BYTES.

    TensorFlow's kernels index with 32-bit integers: 64 images of 4096x4096x3 (3.2e9 values)
    through a convolution kill the process with SIGSEGV instead of raising, so a batch is bounded
    by its bytes as well as by its count.
    """
    return max(1, min(requested, BATCH_BYTES // max(per_sample, 1)))


def held_samples(calibration: int, evaluation: int, batch_size: int) -> int:
    """Samples in memory at the peak: the calibration set twice (its batches and their
    concatenation), the statistics' evaluation samples, and a few batches in flight."""
    return 2 * calibration + min(evaluation, STATS_SAMPLES) + 4 * min(batch_size, evaluation)


def check_memory(
    source, inputs, calibration: int, evaluation: int, batch_size: int, available: int | None
) -> int:
    """Refuses (one line, with the size needed) when the samples held at once exceed
    `available` bytes (available_bytes(); None: unknown, nothing refused). Returns the bytes of
    one model-ready sample."""
    per_sample, what = sample_bytes(source, inputs)
    held = held_samples(calibration, evaluation, batch_size)
    need = per_sample * held
    if available is None or need <= available:
        return per_sample
    raise UserError(
        f"this run would hold about {need / _GIB:.1f} GiB of samples in memory ({held} samples "
        f"of {per_sample / (1 << 20):.1f} MiB: {what}) but {available / _GIB:.1f} GiB is "
        "available; use a smaller input size (--resize), fewer calibration samples "
        "(--config.quantize.calibration_size) or a machine with more memory"
    )
