"""Host latency of a .tflite, in process, through the one timing routine boards use too.

In process rather than in a subprocess: the pipeline measures models it has just converted and
checked (a crash there is a converter bug, not a user's hostile file), and the subprocess start
would cost more than the tiny models' whole measurement. `tools/benchmark.py` runs unknown
models in a subprocess per model (bench/host.py) so a crashing model cannot take the batch.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgequant.bench import device_runner


def host_latency(path: str | Path, bench_cfg) -> list[dict]:
    """Host latency at each configured thread count (0 = all cores), warm-up excluded."""
    runs = []
    for threads in bench_cfg.threads:
        n = threads or os.cpu_count()
        r = device_runner.benchmark(
            str(path),
            runtime="litert",
            num_threads=n,
            num_runs=bench_cfg.num_runs,
            min_secs=bench_cfg.min_secs,
            warmup_runs=bench_cfg.warmup_runs,
        )
        runs.append(
            {
                "threads": n,
                "latency_ms": r["latency_ms"],
                "init_ms": r["init_ms"],
                "first_invoke_ms": r["first_invoke_ms"],
                "runtime": r["runtime"],
                "runtime_version": r["runtime_version"],
            }
        )
    return runs
