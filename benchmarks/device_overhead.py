"""Benchmark: how faithful and how cheap the remote harness is, in one run.

  python benchmarks/device_overhead.py --model=M.tflite --device=NAME [--ssh_config=F] \
      [--remote_python=PATH] [--output_json=F]

Measures on the device (1) the harness's p50 through SSH and (2) a bare invoke loop in the same
device Python, the same model and threads (their ratio should be ~1); (3) the wall time of one
more remote run with the connection multiplexed and the model cached, minus its measuring time
(the harness overhead); and (4) on this host, the same model through ai-edge-litert, to show the
runtime gap between LiteRT and the tflite-runtime a board runs.
"""

from edgequant import atomic, cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A .tflite model.")
_DEVICE = flags.DEFINE_string("device", None, "Inventory name or user@host:port.")
_INVENTORY = flags.DEFINE_string(
    "inventory", cli.project_path("configs/devices.toml"), "Device inventory."
)
_SSH_CONFIG = flags.DEFINE_string("ssh_config", None, "ssh -F file.")
_REMOTE_PY = flags.DEFINE_string("remote_python", None, "Python on the device.")
_THREADS = flags.DEFINE_integer("threads", 1, "Interpreter threads on both sides.")
_SECS = flags.DEFINE_float("min_secs", 3.0, "Measuring time per phase.")
_OUT = flags.DEFINE_string("output_json", None, "Write the numbers here.")
flags.mark_flags_as_required(["model", "device"])
cli.define_verbose_flag()


def main(argv):
    import time
    from pathlib import Path

    from edgequant.bench import bare_loop, device_runner, inventory, remote
    from edgequant.bench.ssh import Transport

    device = inventory.resolve(_DEVICE.value, _INVENTORY.value, _REMOTE_PY.value)
    t = Transport(device.destination, _SSH_CONFIG.value)
    settings = remote.Settings("tflite_runtime", _THREADS.value, num_runs=100, min_secs=_SECS.value)
    harness = remote.run_on_device(
        device, _MODEL.value, settings, t
    )  # also deploys and opens the master
    base = remote.remote_dir(device.workdir)
    remote_model = f"{base}/models/{device_runner.sha256_file(_MODEL.value)}.tflite"
    bare = float(
        t.run(
            [
                device.python,
                "-c",
                bare_loop.script("tflite_runtime"),
                remote_model,
                str(_THREADS.value),
                str(_SECS.value),
            ],
            600,
        ).strip()
    )
    quick = remote.Settings(
        "tflite_runtime",
        _THREADS.value,
        num_runs=10,
        min_secs=0.5,
        warmup_runs=1,
        warmup_min_secs=0.0,
    )
    start = time.perf_counter()
    again = remote.run_on_device(device, _MODEL.value, quick, t)
    wall = time.perf_counter() - start
    measured = again["measured_secs"] + (again["first_invoke_ms"] + again["init_ms"]) / 1e3
    measured += again["warmup"]["n"] * again["warmup"]["mean"] / 1e3
    host = device_runner.benchmark(_MODEL.value, "litert", _THREADS.value, min_secs=_SECS.value)
    t.close()
    result = {
        "model": Path(_MODEL.value).name,
        "device": device.name,
        "threads": _THREADS.value,
        "harness_p50_ms": harness["latency_ms"]["p50"],
        "bare_loop_p50_ms": bare,
        "harness_vs_bare": harness["latency_ms"]["p50"] / bare,
        "extra_run_wall_s": wall,
        "extra_run_measuring_s": measured,
        "extra_run_overhead_s": wall - measured,
        "model_uploaded_again": again["model_uploaded"],
        "device_runtime": f"{harness['runtime']} {harness['runtime_version']}",
        "host_litert_p50_ms": host["latency_ms"]["p50"],
        "device_runtime_slowdown_vs_litert": harness["latency_ms"]["p50"]
        / host["latency_ms"]["p50"],
    }
    for k, v in result.items():
        print(f"{k:36} {v:.3f}" if isinstance(v, float) else f"{k:36} {v}")
    if _OUT.value:
        atomic.write_json(_OUT.value, result)
    return 0


if __name__ == "__main__":
    cli.run(main)
