"""Benchmark: the device fleet under load, on loopback devices (a real sshd per device).

  python benchmarks/fleet_load.py [--devices=20] [--models=10] [--max_parallel=8] \
      [--kill=3] [--nochaos] [--output_json=runs/bench/fleet_load.json]

Starts `--devices` sshd servers on 127.0.0.1 (tests/sshd.py; each its own port, keys and remote
workdir) running the device venv, makes `--models` tiny .tflite models, and runs three passes of
devices x models jobs through `fleet.run_fleet`:
  1. clean: every device up, a fresh store. Reports the wall time against the sum of the
     jobs' measuring times divided by the parallelism (the scheduler's overhead ratio), and the
     peak number of open SSH (TCP) connections, sampled from /proc/net/tcp.
  2. chaos: a fresh store; `--kill` devices lose power (their sshd and every session killed)
     once a third of the jobs are done. Every job must still end with exactly one record.
  3. resume: the killed devices come back; a re-run must run exactly the jobs without a success.
(`--nochaos` runs the clean pass only, e.g. to compare overhead ratios across --max_parallel.)
Checks in every pass: jobs lost (no record), duplicate successes, and the most jobs ever
running at once on one device (must be 1). Prints the numbers and writes them as JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/sshd.py: the loopback sshd

from edgequant import cli  # noqa: E402

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_DEVICES = flags.DEFINE_integer("devices", 20, "Loopback devices (one sshd each).")
_MODELS = flags.DEFINE_integer("models", 10, "Tiny models; jobs = devices x models.")
_PARALLEL = flags.DEFINE_integer(
    "max_parallel", None, "Jobs at once (default fleet.DEFAULT_MAX_PARALLEL, 8)."
)
_KILL = flags.DEFINE_integer("kill", 3, "Devices killed mid-run in the chaos pass.")
_CHAOS = flags.DEFINE_bool("chaos", True, "Run the chaos and resume passes after the clean one.")
_MIN_SECS = flags.DEFINE_float(
    "min_secs", 0.5, "Measuring time per job (the device runner's min_secs)."
)
_DEVICE_PY = flags.DEFINE_string(
    "device_python", ".venv-device/bin/python", "The devices' Python (numpy<2, tflite-runtime)."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Scratch folder (default: a temp dir, removed).")
_OUT = flags.DEFINE_string("output_json", "runs/bench/fleet_load.json", "Write the numbers here.")
cli.define_verbose_flag()


def make_models(out: Path, n: int) -> list[Path]:
    """n small, distinct float .tflite CNNs (64x64x3 in, widths growing with i): distinct
    content, so each is its own job and its own upload."""
    import tensorflow as tf

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = out / f"tiny{i:02d}.tflite"
        if not path.is_file():
            tf.random.set_seed(i)
            inp = tf.keras.Input((64, 64, 3))
            x = tf.keras.layers.Conv2D(16 + 2 * i, 3, activation="relu")(inp)
            x = tf.keras.layers.MaxPooling2D()(x)
            x = tf.keras.layers.Conv2D(16, 3, activation="relu")(x)
            x = tf.keras.layers.GlobalAveragePooling2D()(x)
            model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(x))
            path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        paths.append(path)
    return paths


def start_devices(root: Path, n: int, python: str):
    """n sshd servers and their devices, with one ssh config naming them dev00, dev01, ..."""
    from edgequant.bench.inventory import Device
    from edgequant.bench.ssh import Destination
    from tests import sshd

    servers, devices, blocks = [], [], []
    for i in range(n):
        name = f"dev{i:02d}"
        server = sshd.make_server(root / "sshd" / name, alias=name)
        server.start()
        servers.append(server)
        blocks.append(server.ssh_config.read_text())
        devices.append(Device(name, Destination(name), python, str(root / "remote" / name)))
    config = root / "ssh_config"
    config.write_text("".join(blocks))
    return servers, devices, config


class ConnectionSampler:
    """Peak count of established TCP connections to the given local ports (client side)."""

    def __init__(self, ports, interval: float = 0.01):
        import threading

        self.ports = {f"{p:04X}" for p in ports}
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        n = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                if f[3] == "01" and f[2].rsplit(":", 1)[1] in self.ports:  # ESTABLISHED
                    n += 1
        return n

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.count())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measuring_ms(r: dict) -> float:
    """What the device spent measuring one job: interpreter set-up, first invoke, warm-up and
    measured invokes (the device runner reports each)."""
    warm = r.get("warmup") or {}
    return (
        r.get("init_ms", 0.0)
        + r.get("first_invoke_ms", 0.0)
        + warm.get("n", 0) * warm.get("mean", 0.0)
        + 1e3 * (r.get("measured_secs") or 0.0)
    )


def max_overlap(intervals) -> int:
    """The most intervals (start, end) open at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start (+1)
        now += step
        peak = max(peak, now)
    return peak


def audit(store_path: Path, keys: set[str]) -> dict:
    """Exactly-once and exclusivity, read back from the store file itself."""
    from edgequant.bench import store

    s = store.ResultsStore(store_path)
    records = [r for r in s.records() if r.get("key") in keys]
    latest = s.latest()
    by_device: dict[str, list] = {}
    for r in records:
        if "started_at" in r:
            by_device.setdefault(r["device"], []).append((r["started_at"], r["finished_at"]))
    return {
        "records": len(records),
        "successes": sum(1 for k in keys if "error" not in latest.get(k, {"error": ""})),
        "errors": sum(1 for k in keys if "error" in latest.get(k, {"error": ""})),
        "lost": sum(1 for k in keys if k not in latest),
        "duplicates": sum(n - 1 for k, n in s.duplicates().items() if k in keys),
        "max_jobs_at_once_on_one_device": max(
            (max_overlap(v) for v in by_device.values()), default=0
        ),
        "max_jobs_at_once": max_overlap([iv for v in by_device.values() for iv in v]),
    }


def _parallel() -> int:
    from edgequant.bench import fleet

    return _PARALLEL.value or fleet.DEFAULT_MAX_PARALLEL


def run_pass(name, models, devices, settings, store_path, ssh_config, ports, on_result=None):
    import os
    import time

    from edgequant.bench import fleet

    retry = fleet.RetryPolicy(attempts=2, backoff_secs=0.2, max_backoff_secs=0.5)
    start = time.perf_counter()
    with ConnectionSampler(ports) as sampler:
        new = fleet.run_fleet(
            models,
            devices,
            settings,
            store_path,
            str(ssh_config),
            retry,
            step_timeout=60,
            on_result=on_result,
            max_parallel=_parallel(),
        )
    wall = time.perf_counter() - start
    ok = [r for r in new if "error" not in r]
    measure = sum(measuring_ms(r) for r in ok) / 1e3
    ideal = measure / min(_parallel(), len(devices))
    per_job = [r["finished_at"] - r["started_at"] - measuring_ms(r) / 1e3 for r in ok]
    out = {
        "pass": name,
        "jobs_run": len(new),
        "jobs_ok": len(ok),
        "wall_s": round(wall, 3),
        "sum_measuring_s": round(measure, 3),
        "ideal_wall_s": round(ideal, 3),
        "overhead_ratio": round(wall / ideal, 3) if ideal else None,
        "peak_ssh_connections": sampler.peak,
        "mean_overhead_per_job_s": round(sum(per_job) / len(per_job), 3) if per_job else None,
        "load_average_after": os.getloadavg(),
    }
    print(
        f"{name}: {len(new)} jobs ({len(ok)} ok) in {wall:.1f} s; measuring {measure:.1f} s "
        f"/ {min(_parallel(), len(devices))} = {ideal:.1f} s -> overhead x"
        f"{out['overhead_ratio']}; peak SSH connections {sampler.peak}",
        flush=True,
    )
    return out, new


def _chaos_and_resume(report, root, models, servers, devices, settings, keys, ssh_config):
    """Pass 2 (devices lose power mid-run) and pass 3 (they return; resume the missing)."""
    import threading

    ports = [s.port for s in servers]
    chaos_store = root / "chaos.jsonl"
    # The last devices in the list are leased last, so they die with jobs left to do: the
    # power cut comes with the first result of any of them.
    victims = servers[len(servers) - _KILL.value :]
    names = {d.name for d in devices[len(devices) - _KILL.value :]}
    lock, killed = threading.Lock(), threading.Event()

    def power_cut(record: dict) -> None:
        with lock:
            if record["device"] in names and not killed.is_set():
                killed.set()
                for s in victims:
                    s.stop()

    chaos, _ = run_pass(
        "chaos", models, devices, settings, chaos_store, ssh_config, ports, power_cut
    )
    chaos_audit = audit(chaos_store, keys)
    report["passes"].append({**chaos, **chaos_audit, "killed": sorted(names)})
    missing = len(keys) - chaos_audit["successes"]
    for s in victims:
        s.start()
    resume, _ = run_pass("resume", models, devices, settings, chaos_store, ssh_config, ports)
    report["passes"].append({**resume, **audit(chaos_store, keys), "missing_before": missing})


def main(argv):
    import os
    import shutil
    import tempfile

    from edgequant.bench import device_runner, fleet, remote

    if not Path(_DEVICE_PY.value).is_file():
        raise FileNotFoundError(f"device python not found: {_DEVICE_PY.value} (make device-venv)")
    if not 0 <= _KILL.value < _DEVICES.value:
        raise ValueError(f"--kill must be in [0, --devices), got {_KILL.value}")
    root = Path(_WORKDIR.value or tempfile.mkdtemp(prefix="eq-fleet-load-"))
    models = make_models(root / "models", _MODELS.value)
    servers, devices, ssh_config = start_devices(
        root,
        _DEVICES.value,
        os.path.abspath(_DEVICE_PY.value),  # no resolve(): keep the venv
    )
    ports = [s.port for s in servers]
    settings = remote.Settings(
        "tflite_runtime", threads=1, num_runs=10, min_secs=_MIN_SECS.value, warmup_runs=2,
        warmup_min_secs=0.0,
    )  # fmt: skip
    keys = {
        fleet.job_key(device_runner.sha256_file(m), d.name, d.python, settings.to_dict())
        for m in models
        for d in devices
    }
    report = {
        "devices": len(devices),
        "models": len(models),
        "jobs": len(keys),
        "max_parallel": _parallel(),
        "settings": settings.to_dict(),
        "device_python": devices[0].python,
        "host_cores": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "passes": [],
    }
    try:
        clean_store = root / "clean.jsonl"
        clean, _ = run_pass("clean", models, devices, settings, clean_store, ssh_config, ports)
        report["passes"].append({**clean, **audit(clean_store, keys)})

        if _CHAOS.value:
            _chaos_and_resume(report, root, models, servers, devices, settings, keys, ssh_config)
    finally:
        for s in servers:
            s.stop()
        if not _WORKDIR.value:
            shutil.rmtree(root, ignore_errors=True)
    for p in report["passes"]:
        print(
            f"{p['pass']}: records {p['records']}, lost {p['lost']}, duplicates {p['duplicates']}, "
            f"successes {p['successes']}/{len(keys)}, max jobs at once on one device "
            f"{p['max_jobs_at_once_on_one_device']}, max jobs at once {p['max_jobs_at_once']}"
        )
    cli.report(report, _OUT.value)
    return 0


if __name__ == "__main__":
    cli.run(main)
