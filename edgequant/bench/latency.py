"""Host latency of a .tflite for the pipeline: the same subprocess path `tools/benchmark.py` uses.

Each measurement is `host.benchmark_in_subprocess`: the device runner started as a fresh Python
process on this host, with the same command line a board runs. The pipeline's process holds
TensorFlow, its thread pools and the training data; a fresh process measures the model alone,
and a crashing interpreter takes only its own process (WORKSPACE.md, "One host-latency path",
has the measured cost and the comparison with a bare invoke loop).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgequant.bench import host, settings


def host_latency(path: str | Path, bench_cfg, postprocess=None) -> list[dict]:
    """Host latency at each configured thread count (0 = all cores), warm-up excluded.

    Raises RuntimeError when the runner fails: the pipeline only measures models it has just
    converted and checked, so a failure here is a bug to see, not a row to skip."""
    runs = []
    for threads in bench_cfg.threads:
        n = threads or os.cpu_count()
        # The host is the reference side of the parity check, so no parity run here.
        s = settings.from_config(bench_cfg, runtime="litert", threads=n, parity_lsb=None)
        r = host.benchmark_in_subprocess(path, s, postprocess=postprocess)
        if "error" in r:
            raise RuntimeError(f"host latency of {Path(path).name}: {r['error']}")
        runs.append(
            {
                "threads": n,
                "latency_ms": r["latency_ms"],
                "init_ms": r["init_ms"],
                "first_invoke_ms": r["first_invoke_ms"],
                "runtime": r["runtime"],
                "runtime_version": r["runtime_version"],
                "command": r["command"],
                **({"postprocess": r.get("postprocess")} if postprocess else {}),
            }
        )
    return runs


def measure(path: str | Path, bench_cfg, postprocess=None) -> dict:
    """A variant's latency fields: every run (`latency_runs`) and the headline `latency_ms`
    (p50/p90/p99 at the first configured thread count), as results.json and deploy.json hold
    them. With a `postprocess` tail, `end_to_end_ms` is body + tail chained (device runner)."""
    runs = host_latency(path, bench_cfg, postprocess)
    first = runs[0]
    headline = {k: first["latency_ms"][k] for k in ("p50", "p90", "p99")}
    out = {"latency_runs": runs, "latency_ms": {**headline, "threads": first["threads"]}}
    if postprocess and first.get("postprocess"):
        e2e = first["postprocess"]["latency_ms"]
        out["end_to_end_ms"] = {k: e2e[k] for k in ("p50", "p90", "p99")}
    return out
