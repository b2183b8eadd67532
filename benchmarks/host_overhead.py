"""Benchmark: is the one host-latency path faithful, and what does its process start cost?

  python benchmarks/host_overhead.py --model=tests/data/coral/mobilenet_v1_0.25_128_quant.tflite \
      [--threads=1] [--min_secs=2] [--rounds=5] [--output_json=F]

Per round, in turn (interleaved, so load from other jobs on the shared cores hits all alike):
(1) the harness: host.benchmark_in_subprocess, the path tools/benchmark.py and the pipeline use;
(2) a bare invoke loop in a fresh Python process (LiteRT, same model, threads and inputs kind);
(3) the same timing routine in THIS process after TensorFlow is imported and has run a Keras
    model (what an in-process pipeline measurement would see).
Prints the median p50 of each over the rounds, the ratios to the bare loop, and the harness's
wall time beyond its measuring time (process start, imports, model load).
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A .tflite model the host can run.")
_THREADS = flags.DEFINE_integer("threads", 1, "Interpreter threads in every variant.")
_SECS = flags.DEFINE_float("min_secs", 2.0, "Measuring time per phase.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Interleaved rounds; medians are reported.")
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here.")
flags.mark_flag_as_required("model")
cli.define_verbose_flag()


def _warm_tensorflow() -> None:
    """Make this process look like the pipeline's: TF imported, its pools started by a fit."""
    import numpy as np
    import tensorflow as tf

    m = tf.keras.Sequential(
        [tf.keras.Input((32,)), tf.keras.layers.Dense(64), tf.keras.layers.Dense(10)]
    )
    m.compile("adam", "mse")
    m.fit(np.zeros((256, 32)), np.zeros((256, 10)), epochs=1, verbose=0)


def main(argv):
    import os
    import statistics
    import subprocess
    import sys
    import time
    from pathlib import Path

    from edgequant.bench import bare_loop, device_runner, host, settings

    s = settings.Settings(
        runtime="litert", threads=_THREADS.value, min_secs=_SECS.value, parity_lsb=None
    )
    _warm_tensorflow()
    harness, bare, inproc, overhead = [], [], [], []
    for i in range(_ROUNDS.value):
        start = time.perf_counter()
        r = host.benchmark_in_subprocess(_MODEL.value, s)
        wall = time.perf_counter() - start
        if "error" in r:
            raise RuntimeError(r["error"])
        busy = r["measured_secs"] + (r["init_ms"] + r["first_invoke_ms"]) / 1e3
        busy += r["warmup"]["n"] * r["warmup"]["mean"] / 1e3
        harness.append(r["latency_ms"]["p50"])
        overhead.append(wall - busy)
        cmd = [sys.executable, "-c", bare_loop.script("litert"), _MODEL.value, str(_THREADS.value)]
        out = subprocess.run([*cmd, str(_SECS.value)], capture_output=True, text=True, check=True)
        bare.append(float(out.stdout.strip()))
        ip = device_runner.benchmark(
            _MODEL.value, "litert", _THREADS.value, min_secs=_SECS.value, parity_lsb=None
        )
        inproc.append(ip["latency_ms"]["p50"])
        print(
            f"round {i + 1}: harness {harness[-1]:.4f} ms, bare loop {bare[-1]:.4f} ms, "
            f"in-process after TF {inproc[-1]:.4f} ms, process start {overhead[-1]:.2f} s",
            flush=True,
        )
    med = statistics.median
    result = {
        "model": Path(_MODEL.value).name,
        "threads": _THREADS.value,
        "rounds": _ROUNDS.value,
        "min_secs": _SECS.value,
        "harness_p50_ms": med(harness),
        "bare_loop_p50_ms": med(bare),
        "in_process_after_tf_p50_ms": med(inproc),
        "harness_vs_bare": med(harness) / med(bare),
        "in_process_vs_bare": med(inproc) / med(bare),
        "harness_process_overhead_s": med(overhead),
        "per_round": {"harness": harness, "bare": bare, "in_process": inproc},
        "environment": device_runner.collect_environment(),
        "load_average": list(os.getloadavg()),
        "runtime": f"{r['runtime']} {r['runtime_version']}",
    }
    cli.report(result, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
