"""Benchmarks .tflite models on this host (each in its own process) or on devices over SSH.

  python tools/benchmark.py --model=runs/mnist/uint8.tflite [--runtime=litert] [--threads=1]
  python tools/benchmark.py --model=a.tflite,b.tflite --device=coral-1,pi4 [--ssh_config=F]
  python tools/benchmark.py --model=m.tflite --device=mendel@192.0.2.7:22 --remote_python=/usr/bin/python3
Results (success or structured error) are appended to --store as they finish; a re-run skips
what already succeeded. Exit status: 0 all succeeded, 1 some failed, 2 bad input.
"""

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODELS = flags.DEFINE_list("model", None, "Comma-separated .tflite files.")
_RUNTIME = flags.DEFINE_enum(
    "runtime", "auto", ["auto", "litert", "tflite_runtime", "tf"], "Interpreter runtime."
)
_THREADS = flags.DEFINE_integer("threads", None, "Interpreter threads (default: runtime's choice).")
_XNNPACK = flags.DEFINE_bool(
    "xnnpack", True, "Use the XNNPACK delegate (false: builtin kernels only)."
)
_RUNS = flags.DEFINE_integer("num_runs", 100, "Minimum measured invokes.")
_MIN_SECS = flags.DEFINE_float("min_secs", 2.0, "Minimum measuring time.")
_MAX_SECS = flags.DEFINE_float("max_secs", 60.0, "Cap on measuring time.")
_WARMUP = flags.DEFINE_integer("warmup_runs", 5, "Minimum warm-up invokes (not measured).")
_DEVICES = flags.DEFINE_list("device", [], "Inventory names or user@host:port; empty = this host.")
_INVENTORY = flags.DEFINE_string(
    "inventory", cli.project_path("configs/devices.toml"), "Device inventory (TOML)."
)
_REMOTE_PY = flags.DEFINE_string(
    "remote_python", None, "Python on the device (overrides the inventory)."
)
_SSH_CONFIG = flags.DEFINE_string("ssh_config", None, "ssh config file handed to ssh as -F.")
_ACCEPT_NEW = flags.DEFINE_bool(
    "accept_new_host_key", False, "Trust unknown host keys on first use (opt-in)."
)
_STORE = flags.DEFINE_string(
    "store", "runs/bench/results.jsonl", "Append-only results store (devices)."
)
_TIMEOUT = flags.DEFINE_float("step_timeout", 300.0, "Timeout per remote step, seconds.")
_REFERENCE = flags.DEFINE_string(
    "reference_csv", None, "model,device,p50_ms reference rows to check against."
)
_TOLERANCE = flags.DEFINE_float("tolerance", 0.1, "Allowed relative deviation from the reference.")
_OUT = flags.DEFINE_string("output_json", None, "Write all results here.")
_PLOT = flags.DEFINE_string("plot", None, "Write a latency plot (PNG) here.")
flags.mark_flag_as_required("model")
cli.define_verbose_flag()


def _print_progress(r: dict) -> None:
    done = r.get("error") or f"p50 {r['latency_ms']['p50']:.3f} ms"
    print(f"{r['device']}: {r['model']}: {done}", flush=True)


def main(argv):
    import json
    from pathlib import Path

    from edgequant.bench import compare, fleet, host, inventory, remote

    settings = remote.Settings(
        _RUNTIME.value,
        _THREADS.value,
        _XNNPACK.value,
        _RUNS.value,
        _MIN_SECS.value,
        _MAX_SECS.value,
        _WARMUP.value,
    )
    for m in _MODELS.value:
        if not Path(m).is_file():
            raise FileNotFoundError(f"model not found: {m}")
    if _DEVICES.value:
        devices = [inventory.resolve(d, _INVENTORY.value, _REMOTE_PY.value) for d in _DEVICES.value]
        records = fleet.run_fleet(
            _MODELS.value,
            devices,
            settings,
            _STORE.value,
            _SSH_CONFIG.value,
            step_timeout=_TIMEOUT.value,
            accept_new=_ACCEPT_NEW.value,
            on_result=_print_progress,
        )
    else:
        records = [host.benchmark_in_subprocess(m, settings, _TIMEOUT.value) for m in _MODELS.value]
    print(compare.table(records))
    for r in records:
        for w in r.get("environment", {}).get("warnings", []):
            print(f"warning: {r.get('device', 'host')}: {w}")
    if _REFERENCE.value:
        for v in compare.check_reference(records, _REFERENCE.value, _TOLERANCE.value):
            mark = "ok" if v["ok"] else "OUT OF BAND"
            print(
                f"reference {v['device']} {v['model']}: {v['p50_ms']:.3f} ms vs {v['reference_ms']:.3f} ms: {mark}"
            )
    if _OUT.value:
        Path(_OUT.value).write_text(json.dumps(records, indent=1))
    if _PLOT.value:
        compare.plot(records, _PLOT.value)
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    cli.run(main)
