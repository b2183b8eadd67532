"""Host benchmarks, each model in its own subprocess; the runtimes the host can run.

`benchmark_in_subprocess` is the one host-latency path: `tools/benchmark.py` (host runs) and the
pipeline (`bench/latency.py`, for `pipeline.py` and `deployment.latency`) both measure through it.

An interpreter that segfaults on a bad model takes its process with it; running the device
runner as a child process turns that into a structured error result instead of a dead batch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgequant.bench.remote import RUNNER
from edgequant.bench.settings import Settings


def benchmark_in_subprocess(
    model: str | Path,
    settings: Settings,
    timeout: float = 600.0,
    python: str = sys.executable,
    postprocess: str | Path | None = None,
) -> dict:
    """The runner's result dict, or {"error", "kind"} when it failed, crashed or hung.
    `postprocess`: a float tail .tflite chained after the body (the result's `postprocess`)."""
    cmd = [python, str(RUNNER), str(model), *settings.runner_args()]
    if postprocess:
        cmd.append(f"--postprocess={postprocess}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {
            "error": f"timed out after {timeout:.0f} s",
            "kind": "timeout",
            "model": Path(model).name,
        }
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        result = json.loads(lines[-1])
        result.setdefault("model", Path(model).name)
        result["command"] = " ".join(cmd)
        return result
    if proc.returncode < 0:
        return {
            "error": f"interpreter crashed (signal {-proc.returncode})",
            "kind": "crash",
            "model": Path(model).name,
        }
    tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
    return {"error": tail[0], "kind": "crash", "model": Path(model).name}


def installed_runtimes(python: str = sys.executable, timeout: float = 120.0) -> dict[str, str]:
    """{runtime name: "package version"} that `python` can run the device runner with."""
    proc = subprocess.run(
        [python, str(RUNNER), "--list_runtimes"], capture_output=True, text=True, timeout=timeout
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{python} could not list its runtimes: {proc.stderr.strip()[-200:]}")
    return json.loads(lines[-1])["runtimes"]
