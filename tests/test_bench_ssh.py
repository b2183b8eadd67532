"""The SSH harness against a real sshd on 127.0.0.1 and a real device venv (numpy<2,
tflite-runtime 2.14: what Coral/ARM boards run)."""

import json
import os
import threading
from pathlib import Path

import pytest

from edgequant import workspace
from edgequant.bench import device_runner, fleet, inventory, remote, store
from edgequant.bench.inventory import Device
from edgequant.bench.ssh import Destination, RemoteError, Transport, TransportError
from tests import sshd
from tests.conftest import REPO, run_tool

pytestmark = pytest.mark.ssh
DEVICE_PYTHON = REPO / ".venv-device" / "bin" / "python"
# the same device with ai-edge-litert beside tflite-runtime (make device-x86)
BOTH_RUNTIMES_PYTHON = REPO / ".devices" / "x86" / "bin" / "python"
FAST = remote.Settings(
    "tflite_runtime", threads=1, num_runs=10, min_secs=0.05, warmup_runs=1, warmup_min_secs=0.0
)
NO_WAIT = fleet.RetryPolicy(attempts=2, backoff_secs=0.1, max_backoff_secs=0.2)


def _server(root: Path) -> sshd.Server:
    if not DEVICE_PYTHON.exists():
        pytest.skip(f"device venv missing at {DEVICE_PYTHON} (make device-venv creates it)")
    try:
        server = sshd.make_server(root)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    server.start()
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = _server(tmp_path_factory.mktemp("sshd"))
    yield s
    s.stop()


@pytest.fixture
def fresh_server(tmp_path):
    s = _server(tmp_path / "sshd")
    yield s
    s.stop()


def device_for(server, tmp_path, **kw) -> Device:
    return Device(
        "loopdev", Destination("loopdev"), str(DEVICE_PYTHON), str(tmp_path / "remote"), **kw
    )


def transport(server) -> Transport:
    return Transport(Destination("loopdev"), str(server.ssh_config))


def test_remote_benchmark_uses_device_runtime_and_caches_the_model(server, tmp_path, coral_dir):
    dev, t = device_for(server, tmp_path), transport(server)
    model = coral_dir / "mobilenet_v1_0.25_128_quant.tflite"
    first = remote.run_on_device(dev, model, FAST, t)
    second = remote.run_on_device(dev, model, FAST, t)
    assert first["runtime"] == "tflite-runtime" and first["runtime_version"] == "2.14.0"
    assert first["environment"]["numpy"].startswith("1.") and first["emulated"] is None
    assert first["parity"]["ok"] and first["parity"]["max_lsb_diff"] <= 2
    assert first["environment"]["machine"] == "x86_64" and first["environment"]["os"]
    assert first["model_uploaded"] is True and second["model_uploaded"] is False
    assert (
        second["latency_ms"]["n"] >= 10 and len(second["samples_ms"]) == second["latency_ms"]["n"]
    )
    cached = list((tmp_path / "remote" / "models").iterdir())
    assert [p.name for p in cached] == [f"{device_runner.sha256_file(model)}.tflite"]
    assert any(
        "ControlMaster=auto" in " ".join(c) and "BatchMode=yes" in " ".join(c) for c in t.log
    )
    t.close()


def test_hostile_file_name_benchmarks_normally_and_creates_nothing(server, tmp_path, coral_dir):
    odd = tmp_path / "a b;touch PWNED.tflite"
    odd.write_bytes((coral_dir / "split_concat.tflite").read_bytes())
    tmp_before = set(os.listdir("/tmp"))
    result = remote.run_on_device(device_for(server, tmp_path), odd, FAST, transport(server))
    assert result["latency_ms"]["n"] >= 10 and result["model"] == odd.name
    for where in (Path.home(), Path("/"), Path("/tmp"), tmp_path, REPO):
        assert not list(where.glob("PWNED*")), where
    # the run's remote temp dir is gone
    assert not [d for d in set(os.listdir("/tmp")) - tmp_before if d.startswith("tmp.")]


def test_corrupt_model_is_a_structured_remote_error(server, tmp_path, coral_dir):
    with pytest.raises(RemoteError, match="fake-op-double"):
        remote.run_on_device(
            device_for(server, tmp_path),
            coral_dir / "invalid_model_invoking_error.tflite",
            FAST,
            transport(server),
        )


def test_missing_remote_python_says_so(server, tmp_path, coral_dir):
    dev = Device("loopdev", Destination("loopdev"), "/opt/no/python3", str(tmp_path / "r"))
    with pytest.raises(RemoteError, match="remote python ./opt/no/python3. not found"):
        remote.run_on_device(dev, coral_dir / "split_concat.tflite", FAST, transport(server))


def test_step_timeout_stops_a_long_run(server, tmp_path, coral_dir):
    slow = remote.Settings("tflite_runtime", num_runs=10**6, min_secs=30, max_secs=60)
    with pytest.raises(RemoteError, match="timed out"):
        remote.run_on_device(
            device_for(server, tmp_path),
            coral_dir / "split_concat.tflite",
            slow,
            transport(server),
            timeout=3,
        )


def test_unreachable_port_is_a_transport_error(tmp_path, coral_dir):
    t = Transport(Destination("127.0.0.1", "root", sshd.free_port()), connect_timeout=3)
    dev = Device("gone", t.destination, "python3", str(tmp_path / "r"))
    with pytest.raises(TransportError):
        remote.run_on_device(dev, coral_dir / "split_concat.tflite", FAST, t)


def test_changed_host_key_is_refused(fresh_server, tmp_path, coral_dir):
    dev, t = device_for(fresh_server, tmp_path), transport(fresh_server)
    remote.run_on_device(dev, coral_dir / "split_concat.tflite", FAST, t)
    t.close()
    fresh_server.rotate_host_key()
    with pytest.raises(RemoteError, match="host key verification failed"):
        remote.run_on_device(dev, coral_dir / "split_concat.tflite", FAST, transport(fresh_server))


def test_fleet_survives_a_device_dying_mid_run_and_resumes(
    server, fresh_server, tmp_path, coral_dir
):
    models = [
        coral_dir / n
        for n in (
            "split_concat.tflite",
            "mobilenet_v1_0.25_128_quant.tflite",
            "keras_lstm_mnist_ptq.tflite",
        )
    ]
    # two devices: "alpha" on the shared server, "beta" on one we kill after its first result
    beta_cfg = tmp_path / "beta_config"
    beta_cfg.write_text(fresh_server.ssh_config.read_text().replace("Host loopdev", "Host beta"))
    alpha = Device("alpha", Destination("loopdev"), str(DEVICE_PYTHON), str(tmp_path / "ra"))
    beta = Device("beta", Destination("beta"), str(DEVICE_PYTHON), str(tmp_path / "rb"))
    cfg = tmp_path / "fleet_config"
    cfg.write_text(server.ssh_config.read_text() + beta_cfg.read_text())
    killed = threading.Event()

    def kill_beta(record):
        if record["device"] == "beta" and not killed.is_set():
            killed.set()
            fresh_server.stop()

    store_path = tmp_path / "results.jsonl"
    records = fleet.run_fleet(
        models, [alpha, beta], FAST, store_path, str(cfg), NO_WAIT, 60, on_result=kill_beta
    )
    on_disk = store.ResultsStore(store_path).records()
    assert len(on_disk) == len(records) == 6
    alpha_ok = [r for r in on_disk if r["device"] == "alpha" and "error" not in r]
    beta_ok = [r for r in on_disk if r["device"] == "beta" and "error" not in r]
    beta_err = [r for r in on_disk if r["device"] == "beta" and "error" in r]
    assert len(alpha_ok) == 3 and len(beta_ok) == 1 and len(beta_err) == 2
    assert all(r["kind"] == "transport" for r in beta_err)
    # a re-run skips every finished result and only retries beta's missing ones
    again = fleet.run_fleet(models, [alpha, beta], FAST, store_path, str(cfg), NO_WAIT, 60)
    assert {r["device"] for r in again} == {"beta"} and len(again) == 2


def test_benchmark_tool_runs_on_an_adhoc_device(server, tmp_path, coral_dir):
    out = tmp_path / "r.json"
    args = (
        f"--model={coral_dir / 'split_concat.tflite'}",
        "--device=loopdev",
        f"--ssh_config={server.ssh_config}",
        f"--remote_python={DEVICE_PYTHON}",
        "--inventory=",
        "--runtime=tflite_runtime",
        "--num_runs=10",
        "--min_secs=0.05",
        f"--store={tmp_path / 'store.jsonl'}",
        f"--output_json={out}",
    )
    proc = run_tool("benchmark", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = json.loads(out.read_text())
    assert record["device"] == "loopdev" and record["runtime"] == "tflite-runtime"
    assert "| loopdev | split_concat.tflite | tflite-runtime 2.14.0 |" in proc.stdout

    # The same store again: nothing to measure, and the run says so instead of printing nothing.
    again = run_tool("benchmark", *args)
    assert again.returncode == 0 and "nothing measured: every model already succeeded" in (
        again.stdout
    )
    # Another Python on the same device is another runtime: its success does not stand for it.
    other = [a for a in args if not a.startswith("--remote_python")] + ["--remote_python=/no/py3"]
    missing = run_tool("benchmark", *other)
    assert missing.returncode == 1 and "/no/py3" in missing.stderr.strip().splitlines()[-1]


def test_runtime_all_measures_litert_and_tflite_runtime_side_by_side(server, tmp_path, coral_dir):
    if not BOTH_RUNTIMES_PYTHON.exists():
        pytest.skip(f"{BOTH_RUNTIMES_PYTHON} missing (make device-x86 builds it)")
    out = tmp_path / "r.json"
    proc = run_tool(
        "benchmark",
        f"--model={coral_dir / 'mobilenet_v1_0.25_128_quant.tflite'}",
        "--device=loopdev",
        f"--ssh_config={server.ssh_config}",
        f"--remote_python={BOTH_RUNTIMES_PYTHON}",
        "--inventory=",
        "--runtime=all",
        "--threads=1",
        "--num_runs=10",
        "--min_secs=0.05",
        "--parity_lsb=0",  # tflite-runtime's kernels round differently from LiteRT's: 1 LSB
        f"--store={tmp_path / 'store.jsonl'}",
        f"--output_json={out}",
    )
    records = {r["runtime"]: r for r in json.loads(out.read_text())}
    assert set(records) == {"ai-edge-litert", "tflite-runtime"}, proc.stdout + proc.stderr
    assert "| ai-edge-litert 2.3.0 p50 ms | tflite-runtime 2.14.0 p50 ms | fastest |" in proc.stdout
    # the same LiteRT on both ends agrees exactly; tflite-runtime is over a 0-LSB bound
    assert records["ai-edge-litert"]["parity"]["ok"]
    assert records["ai-edge-litert"]["parity"]["max_lsb_diff"] == 0
    bad = records["tflite-runtime"]["parity"]
    assert not bad["ok"] and bad["max_lsb_diff"] >= 1
    assert proc.returncode == 1
    assert (
        "parity FAILED: loopdev: mobilenet_v1_0.25_128_quant.tflite: tflite-runtime 2.14.0 on "
        "the device vs ai-edge-litert 2.3.0 on the host (x86_64): OVER BOUND" in proc.stdout
    )


def test_inventory_device_resolves_by_name(server, tmp_path):
    inv = tmp_path / "devices.toml"
    inv.write_text(
        f'[devices.bench1]\nssh = "loopdev"\npython = "{DEVICE_PYTHON}"\nworkdir = "{tmp_path}/w"\n'
    )
    d = inventory.resolve("bench1", inv)
    assert d.destination.host == "loopdev" and d.python == str(DEVICE_PYTHON)
    with pytest.raises(ValueError, match="unknown device 'nope'; devices in .*: bench1"):
        inventory.resolve("nope", inv)


@pytest.mark.slow
def test_pipeline_benchmarks_its_variants_on_the_configured_device(server, tmp_path):
    test_config = workspace.config_module("test")
    from edgequant import pipeline

    config = test_config.get_config()
    config.quantize.recipes = ("fp32", "uint8")
    config.quantize.aeq_recipes = ()
    config.bench.devices = ("loopdev",)
    config.bench.ssh_config = str(server.ssh_config)
    config.bench.remote_python = str(DEVICE_PYTHON)
    config.bench.inventory = ""
    results = pipeline.run(config, tmp_path / "run", verbose=0)
    by_model = {r["model"]: r for r in results["devices"]}
    assert set(by_model) == {"fp32.tflite", "uint8.tflite"}
    assert by_model["uint8.tflite"]["runtime"] == "tflite-runtime"
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Devices" in report and "| loopdev | uint8.tflite | tflite-runtime 2.14.0 |" in report
