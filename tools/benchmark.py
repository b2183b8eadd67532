"""Benchmarks .tflite models on this host (each in its own process) or on devices over SSH.

  python tools/benchmark.py --model=runs/mnist/uint8.tflite [--runtime=litert] [--threads=1]
  python tools/benchmark.py --model=a.tflite,b.tflite --device=coral-1,pi4 [--ssh_config=F]
  python tools/benchmark.py --model=m.tflite --device=mendel@192.0.2.7:22 --remote_python=/usr/bin/python3
  python tools/benchmark.py --model=m.tflite --device=pi4 --runtime=all   # every runtime, side by side
  python tools/benchmark.py --model=m.tflite --device=pi4 --history=runs/history  # measure, then gate
  python tools/benchmark.py --history=runs/history --history_plot=p50.png        # gate only
Results (success or structured error) are appended to --store as they finish; a re-run skips
what already succeeded. With --history=DIR the store defaults to DIR/results.jsonl (host runs
are stored too) and every series in DIR is checked for a p50 regression (edgequant/bench/history).
Exit status: 0 all succeeded, 1 some failed (error, output parity over its bound, golden
mismatch), 2 bad input, 3 a latency regression in the history.
"""

import sys
from pathlib import Path

from edgequant import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODELS = flags.DEFINE_list("model", [], "Comma-separated .tflite files.")
from edgequant.bench.device_runner import RUNTIMES  # noqa: E402
from edgequant.bench.settings import DEFAULT  # noqa: E402  (the one home of the defaults)

_RUNTIME = flags.DEFINE_enum(
    "runtime",
    DEFAULT.runtime,
    ["auto", "all", *RUNTIMES],
    "Interpreter runtime; auto = the fastest installed (litert > tflite_runtime > tf); "
    "all = every installed runtime, side by side.",
)
_THREADS = flags.DEFINE_integer(
    "threads", DEFAULT.threads, "Interpreter threads (default: runtime's choice)."
)
_XNNPACK = flags.DEFINE_bool(
    "xnnpack", DEFAULT.xnnpack, "Use the XNNPACK delegate (false: builtin kernels only)."
)
_RUNS = flags.DEFINE_integer("num_runs", DEFAULT.num_runs, "Minimum measured invokes.")
_MIN_SECS = flags.DEFINE_float("min_secs", DEFAULT.min_secs, "Minimum measuring time.")
_MAX_SECS = flags.DEFINE_float("max_secs", DEFAULT.max_secs, "Cap on measuring time.")
_WARMUP = flags.DEFINE_integer(
    "warmup_runs", DEFAULT.warmup_runs, "Minimum warm-up invokes (not measured)."
)
_WARMUP_SECS = flags.DEFINE_float(
    "warmup_min_secs", DEFAULT.warmup_min_secs, "Minimum warm-up time (not measured)."
)
_SEED = flags.DEFINE_integer("seed", DEFAULT.seed, "Seed of the random inputs.")
_DEVICES = flags.DEFINE_list("device", [], "Inventory names or user@host:port; empty = this host.")
_INVENTORY = flags.DEFINE_string(
    "inventory",
    None,
    "Device inventory (TOML); default: configs/devices.toml of the project; empty: none.",
)
_REMOTE_PY = flags.DEFINE_string(
    "remote_python", None, "Python on the device (overrides the inventory)."
)
_SSH_CONFIG = flags.DEFINE_string("ssh_config", None, "ssh config file handed to ssh as -F.")
_ACCEPT_NEW = flags.DEFINE_bool(
    "accept_new_host_key", False, "Trust unknown host keys on first use (opt-in)."
)
_STORE = flags.DEFINE_string(
    "store",
    None,
    "Append-only results store (default runs/bench/results.jsonl, or DIR/results.jsonl under --history).",
)
_PARITY = flags.DEFINE_float(
    "parity_lsb",
    DEFAULT.parity_lsb,
    "Bound on the device-vs-host (LiteRT) output difference, in LSBs; negative: no check.",
)
_HISTORY = flags.DEFINE_string(
    "history", None, "Directory of JSONL stores: print the p50 trend, exit 3 on a regression."
)
_HISTORY_PLOT = flags.DEFINE_string("history_plot", None, "Write p50 over time (PNG) here.")
_TIMEOUT = flags.DEFINE_float("step_timeout", 300.0, "Timeout per remote step, seconds.")
_PARALLEL = flags.DEFINE_integer(
    "max_parallel", None, "Devices benchmarked at once (default fleet.DEFAULT_MAX_PARALLEL, 8)."
)
_REFERENCE = flags.DEFINE_string(
    "reference_csv", None, "model,device,p50_ms reference rows to check against."
)
_TOLERANCE = flags.DEFINE_float("tolerance", 0.1, "Allowed relative deviation from the reference.")
_OUT = flags.DEFINE_string("output_json", None, "Write all results here.")
_PLOT = flags.DEFINE_string("plot", None, "Write a latency plot (PNG) here.")
cli.define_verbose_flag()


def _print_progress(r: dict) -> None:
    from edgequant.bench import compare

    if "error" in r:
        done = r["error"]
    elif compare.is_latency(r):
        done = f"{r['runtime']} p50 {r['latency_ms']['p50']:.3f} ms"
    else:
        done = f"{r['runtime']}: {compare.status(r)}"
    print(f"{r['device']}: {r['model']}: {done}", flush=True)


def _device_runtimes(devices, timeout: float) -> tuple[dict[str, list], list[dict]]:
    """({runtime: [devices that have it]}, error records of the devices that could not say)
    from each device's own Python (--runtime=all). Every device is asked, even after one
    refuses; when none can answer, that is the whole story: one line naming each and why."""
    from edgequant.bench import remote
    from edgequant.bench.ssh import RemoteError, Transport, TransportError

    by_runtime: dict[str, list] = {}
    failed: list[dict] = []
    for d in devices:
        t = Transport(d.destination, _SSH_CONFIG.value, accept_new=_ACCEPT_NEW.value)
        try:
            probed = remote.probe(d, t, timeout)
        except (TransportError, RemoteError) as e:
            why = str(e).removeprefix(f"{d.name}: ")
            kind = "transport" if isinstance(e, TransportError) else "remote"
            failed += [
                {"device": d.name, "model": Path(m).name, "kind": kind, "error": why}
                for m in _MODELS.value
            ]
            print(f"{d.name}: cannot list its runtimes: {why}", flush=True)
            continue
        finally:
            t.close()
        found = probed["runtimes"]
        print(
            f"{d.name}: runtimes {', '.join(found.values()) or 'none'}; "
            f"Edge TPU: {probed.get('edgetpu') or 'absent'}",
            flush=True,
        )
        for name in found:
            by_runtime.setdefault(name, []).append(d)
    if not by_runtime and failed:
        reasons = {r["device"]: r["error"] for r in failed}
        raise cli.UserError(
            "--runtime=all: no device could list its runtimes: "
            + "; ".join(f"{_named(devices, name)}: {why}" for name, why in reasons.items())
        )
    return by_runtime, failed


def _named(devices, name: str) -> str:
    """A device's name, and where it is when the name does not say (an inventory alias)."""
    where = next(str(d.destination) for d in devices if d.name == name)
    return name if where == name else f"{name} ({where})"


def _measure(settings, store_path):
    """Runs every model on every device (or the host); returns the records."""
    import dataclasses

    from edgequant.bench import fleet, host, inventory, store

    if _DEVICES.value:
        inv = inventory.DEFAULT if _INVENTORY.value is None else _INVENTORY.value
        devices = [inventory.resolve(d, inv, _REMOTE_PY.value) for d in _DEVICES.value]
        records = []
        if settings.runtime == "all":
            by_runtime, records = _device_runtimes(devices, _TIMEOUT.value)
            jobs = list(by_runtime.items())
        else:
            jobs = [(settings.runtime, devices)]
        for runtime, devs in jobs:
            records += fleet.run_fleet(
                _MODELS.value,
                devs,
                dataclasses.replace(settings, runtime=runtime),
                store_path,
                _SSH_CONFIG.value,
                step_timeout=_TIMEOUT.value,
                accept_new=_ACCEPT_NEW.value,
                on_result=_print_progress,
                max_parallel=_PARALLEL.value or fleet.DEFAULT_MAX_PARALLEL,
            )
        if not records:
            print(
                f"nothing measured: every model already succeeded on every device in "
                f"{store_path}; give another --store to measure again"
            )
        return records
    runtimes = list(host.installed_runtimes()) if settings.runtime == "all" else [settings.runtime]
    records = []
    for runtime in runtimes:
        s = dataclasses.replace(settings, runtime=runtime, parity_lsb=None)  # host = reference
        for m in _MODELS.value:
            r = host.benchmark_in_subprocess(m, s, _TIMEOUT.value)
            r.setdefault("device", "host")
            records.append(r)
    if _HISTORY.value:  # host runs join the history too
        results = store.ResultsStore(store_path)
        for r in records:
            results.append(r)
    return records


def main(argv):
    import json

    from edgequant import atomic
    from edgequant.bench import compare, history, inventory, remote

    if not _MODELS.value and not _HISTORY.value:
        raise ValueError("give --model=M.tflite[,...] to measure, or --history=DIR to check")
    for flag, ok, rule in (
        (_TIMEOUT, _TIMEOUT.value > 0, "a number of seconds > 0"),
        (_TOLERANCE, 0 <= _TOLERANCE.value < float("inf"), "a fraction >= 0, e.g. 0.1"),
        (_PARALLEL, _PARALLEL.value is None or _PARALLEL.value >= 1, "at least 1"),
    ):
        if not ok:
            raise ValueError(f"--{flag.name}={flag.value}: expected {rule}")
    for flag in (_OUT, _PLOT, _HISTORY_PLOT, _STORE):
        if flag.value and Path(flag.value).is_dir():
            raise ValueError(f"--{flag.name}={flag.value} is a folder: give a file path")
    if _INVENTORY.value:
        inventory.locate(_INVENTORY.value)  # a missing file is an error even before it is used
    settings = remote.Settings(
        runtime=_RUNTIME.value,
        threads=_THREADS.value,
        xnnpack=_XNNPACK.value,
        num_runs=_RUNS.value,
        min_secs=_MIN_SECS.value,
        max_secs=_MAX_SECS.value,
        warmup_runs=_WARMUP.value,
        warmup_min_secs=_WARMUP_SECS.value,
        seed=_SEED.value,
        parity_lsb=None if _PARITY.value < 0 else _PARITY.value,
    )
    if _REFERENCE.value:
        compare.read_reference(_REFERENCE.value)  # a bad reference fails before measuring
    for m in _MODELS.value:
        if not Path(m).is_file():
            raise FileNotFoundError(f"model not found: {m}")
    if _HISTORY.value and not Path(_HISTORY.value).is_dir() and not _MODELS.value:
        raise NotADirectoryError(f"history directory not found: {_HISTORY.value}")
    store_path = _STORE.value or (
        str(Path(_HISTORY.value) / "results.jsonl")
        if _HISTORY.value
        else "runs/bench/results.jsonl"
    )
    records = _measure(settings, store_path) if _MODELS.value else []
    errors = [r for r in records if "error" in r]
    failed = bool(errors) or any(
        r.get("latency_ms") is not None and not compare.is_latency(r) for r in records
    )
    if records:
        print(compare.table(records))
    if settings.runtime == "all" and records:
        print(compare.runtime_table(records))
    for r in records:
        for w in [*r.get("environment", {}).get("warnings", []), *r.get("warnings", [])]:
            print(f"warning: {r.get('device', 'host')}: {r.get('model')}: {w}")
        for check in ("parity", "golden_check"):
            c = r.get(check)
            if c and not c.get("ok"):
                failed = True
                print(
                    f"{check} FAILED: {r.get('device', 'host')}: {r.get('model')}: "
                    f"{c.get('message') or c}"
                )
        if r.get("parity") and r["parity"].get("ok"):
            print(f"parity: {r.get('device', 'host')}: {r.get('model')}: {r['parity']['message']}")
    if _REFERENCE.value:
        for v in compare.check_reference(records, _REFERENCE.value, _TOLERANCE.value):
            mark = "ok" if v["ok"] else "OUT OF BAND"
            print(
                f"reference {v['device']} {v['model']}: {v['p50_ms']:.3f} ms vs {v['reference_ms']:.3f} ms: {mark}"
            )
    if _OUT.value:
        atomic.write_text(_OUT.value, json.dumps(records, indent=1))
    if _PLOT.value:
        compare.plot(records, _PLOT.value)
    if errors:  # the table has every error; one line says the run did not fully succeed
        first = errors[0]
        device = first.get("device", "host")
        print(
            f"error: {len(errors)} of {len(records)} benchmarks failed; first: "
            f"{device}: {first.get('model', '?')}: {first['error'].removeprefix(device + ': ')}",
            file=sys.stderr,
        )
    if _HISTORY.value:
        loaded = history.read(_HISTORY.value)
        for where in loaded.torn:
            print(f"warning: {where}: a record cut short by a crash mid-write, skipped")
        past, emulated = loaded.records, loaded.emulated
        verdicts = history.detect(past)
        print(
            f"history {_HISTORY.value}: {len(past)} runs in {len(verdicts)} series"
            + (f" ({emulated} emulated records left out: not latencies)" if emulated else "")
        )
        print(history.trend_table(verdicts))
        if _HISTORY_PLOT.value and verdicts:
            history.plot(verdicts, _HISTORY_PLOT.value)
        elif _HISTORY_PLOT.value:
            print(f"no plot: {_HISTORY.value} holds no latency records yet")
        regressions = [v for v in verdicts if v.status == "regression"]
        for v in regressions:
            print(
                f"REGRESSION: {v.device} {v.model} {v.runtime}: p50 {v.latest_ms:.3f} ms > "
                f"threshold {v.threshold_ms:.3f} ms (median {v.baseline_ms:.3f} ms of the "
                f"previous runs + max({history.K:g} x noise {v.noise_ms:.3f} ms, "
                f"{100 * history.FLOOR:g}%))"
            )
        if regressions:
            return 3
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main)
