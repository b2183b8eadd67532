"""Benchmark: the project's test devices behind a loopback sshd, through the real harness.

  python benchmarks/loopback_devices.py --model=M.tflite [--output_json=F]

Starts an sshd on 127.0.0.1 (tests/sshd.py) and measures (1) every runtime of the x86 device
with both stacks (.devices/x86: ai-edge-litert and tflite-runtime, `--runtime=all`), side by
side, and (2) one functional run on the emulated arm64 board (.devices/arm64), whose record shows
the machine, the emulation label and the output difference to the host's LiteRT in LSBs. Build
the devices first: make device-x86 device-arm64 (make test does).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/sshd.py: the loopback sshd

from edgequant import atomic, cli  # noqa: E402

cli.quiet_tensorflow()

from absl import flags  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A .tflite model.")
_THREADS = flags.DEFINE_integer("threads", 1, "Interpreter threads.")
_SECS = flags.DEFINE_float("min_secs", 3.0, "Measuring time per x86 runtime.")
_OUT = flags.DEFINE_string("output_json", None, "Write every record here.")
flags.mark_flags_as_required(["model"])
cli.define_verbose_flag()


def main(argv):
    import tempfile

    from edgequant import workspace
    from edgequant.bench import compare, remote
    from edgequant.bench.inventory import Device
    from edgequant.bench.ssh import Destination, Transport
    from tests import sshd

    pythons = {arch: workspace.path(f".devices/{arch}/bin/python") for arch in ("x86", "arm64")}
    for name, python in pythons.items():
        if not python.exists():
            raise FileNotFoundError(f"{python} missing: make device-{name} builds it")
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        server = sshd.make_server(Path(tmp) / "sshd")
        server.start()
        try:
            t = Transport(Destination("loopdev"), str(server.ssh_config))
            x86 = Device("x86", Destination("loopdev"), str(pythons["x86"]), f"{tmp}/x86")
            for runtime in remote.probe(x86, t)["runtimes"]:
                settings = remote.Settings(
                    runtime, _THREADS.value, num_runs=200, min_secs=_SECS.value
                )
                records.append(
                    dict(remote.run_on_device(x86, _MODEL.value, settings, t), device="x86")
                )
            arm = Device("arm64", Destination("loopdev"), str(pythons["arm64"]), f"{tmp}/arm64")
            few = remote.Settings(
                "auto", _THREADS.value, num_runs=3, min_secs=0.0, warmup_runs=1, warmup_min_secs=0
            )
            records.append(dict(remote.run_on_device(arm, _MODEL.value, few, t), device="arm64"))
            t.close()
        finally:
            server.stop()
    print(compare.table(records))
    print(compare.runtime_table(records))
    arm = records[-1]
    print(
        f"arm64: machine {arm['environment']['machine']}, {arm['environment']['os']}, Python "
        f"{arm['environment']['python']}, {arm['runtime']} {arm['runtime_version']}; "
        f"{arm['emulated']['label']} ({arm['emulated']['reason']}); parity: "
        f"{arm['parity']['message']}"
    )
    if _OUT.value:
        slim = [{k: v for k, v in r.items() if k != "samples_ms"} for r in records]
        for r in slim:
            if r.get("emulated"):
                r["emulated"] = {k: v for k, v in r["emulated"].items() if k != "samples_ms"}
        atomic.write_json(_OUT.value, slim)
    return 0


if __name__ == "__main__":
    cli.run(main)
