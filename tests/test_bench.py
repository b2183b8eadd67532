"""The measurement routine and host benchmarks: real interpreters on real Coral models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgequant.bench import compare, device_runner, host, inventory, remote
from tests.conftest import REPO, assert_one_line_error, run_tool

FAST = dict(num_runs=20, min_secs=0.05, warmup_runs=2, warmup_min_secs=0.0)


def test_percentiles_are_nearest_rank_and_std_is_population():
    s = device_runner.summarize([float(x) for x in range(100, 0, -1)])
    assert (s["p50"], s["p90"], s["p95"], s["p99"]) == (50.0, 90.0, 95.0, 99.0)
    assert s["min"] == 1.0 and s["max"] == 100.0 and s["n"] == 100 and s["mean"] == 50.5
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101)))


def test_benchmark_reports_phases_samples_and_environment(coral_dir):
    model = coral_dir / "mobilenet_v1_0.25_128_quant.tflite"
    r = device_runner.benchmark(str(model), "litert", num_threads=1, **FAST)
    assert r["latency_ms"]["n"] == len(r["samples_ms"]) >= 20
    assert r["init_ms"] > 0 and r["first_invoke_ms"] > 0 and r["warmup"]["n"] >= 2
    assert r["runtime"] == "ai-edge-litert" and r["num_threads"] == 1
    assert r["model_sha256"] == device_runner.sha256_file(model)
    env = r["environment"]
    assert env["cores"] >= 1 and env["python"] and env["numpy"] == np.__version__ and env["kernel"]


def test_seeded_inputs_stay_in_the_quantized_range_and_repeat(coral_dir):
    interp, _ = device_runner.make_interpreter(
        str(coral_dir / "mobilenet_v1_0.25_128_quant.tflite"), "litert"
    )
    a, b = device_runner.random_inputs(interp, 3), device_runner.random_inputs(interp, 3)
    assert a[0].dtype == np.uint8 and np.array_equal(a[0], b[0]) and a[0].max() > 200


def test_golden_output_check_catches_a_wrong_result(coral_dir, tmp_path):
    model = str(coral_dir / "mobilenet_v1_0.25_128_quant.tflite")
    golden = tmp_path / "golden.npy"
    device_runner.benchmark(model, "litert", save_output=str(golden), **FAST)
    ok = device_runner.benchmark(model, "litert", golden=str(golden), **FAST)
    assert ok["golden_check"]["ok"]
    np.save(golden, np.load(golden) // 2)
    bad = device_runner.benchmark(model, "litert", golden=str(golden), **FAST)
    assert not bad["golden_check"]["ok"] and bad["golden_check"]["max_abs_diff"] > 0


def test_output_parity_is_in_lsbs_and_names_both_runtimes(coral_dir, tmp_path):
    model = str(coral_dir / "mobilenet_v1_0.25_128_quant.tflite")
    interp, _ = device_runner.make_interpreter(model, "litert")
    for detail, value in zip(
        interp.get_input_details(), device_runner.random_inputs(interp, 0), strict=True
    ):
        interp.set_tensor(detail["index"], value)
    interp.invoke()
    reference = tmp_path / "ref.npz"
    device_runner.save_reference(interp, reference)
    same = device_runner.benchmark(model, "litert", reference=str(reference), **FAST)
    assert same["parity"]["ok"] and same["parity"]["max_lsb_diff"] == 0
    with np.load(reference) as ref:  # a reference 12 LSB away in one element
        arrays = dict(ref)
    out = arrays["output_0"].astype(np.int64)
    out.flat[7] += 12 if out.flat[7] < 200 else -12
    arrays["output_0"] = out.astype(arrays["output_0"].dtype)
    np.savez(reference, **arrays)
    r = device_runner.benchmark(
        model, "litert", reference=str(reference), reference_runtime="REF 1.0 on the host", **FAST
    )
    p = r["parity"]
    assert not p["ok"] and p["max_lsb_diff"] == 12 and p["bound_lsb"] == 8
    assert p["message"].startswith("ai-edge-litert 2.3.0 on the device vs REF 1.0 on the host")
    assert "PARITY FAILED (12 LSB > 8)" in compare.status(r)


def test_threads_over_the_core_count_are_a_warning_and_a_field(coral_dir):
    threads = (os.cpu_count() or 1) + 1
    r = device_runner.benchmark(
        str(coral_dir / "split_concat.tflite"), "litert", num_threads=threads, **FAST
    )
    assert r["threads_over_cores"] is True and r["latency_ms"]["n"] >= 20
    assert f"--threads={threads} is more than the {os.cpu_count()} cores" in r["warnings"][0]
    assert compare.status(r) == f"warning: {threads} threads > {os.cpu_count()} cores"
    ok = device_runner.benchmark(str(coral_dir / "split_concat.tflite"), "litert", 1, **FAST)
    assert ok["threads_over_cores"] is False and compare.status(ok) == "ok"


def test_runner_lists_the_runtimes_it_can_use():
    found = host.installed_runtimes()
    assert found["litert"].startswith("ai-edge-litert ") and "tflite_runtime" not in found
    assert device_runner.detect_emulation() is None  # this x86 host is not emulated


def test_an_edge_tpu_model_asks_for_the_delegate_and_says_when_it_is_absent(coral_dir):
    model = coral_dir / "mobilenet_v1_0.25_128_quant_edgetpu.tflite"
    assert device_runner.needs_edgetpu(str(model))
    assert not device_runner.needs_edgetpu(str(coral_dir / "mobilenet_v1_0.25_128_quant.tflite"))
    # pycoral and libedgetpu are not installed on this host: a one-line reason, not a crash
    with pytest.raises(device_runner.RunnerError, match="Edge TPU delegate libedgetpu.so.1"):
        device_runner.make_interpreter(str(model))


def test_xnnpack_can_be_switched_off(coral_dir):
    r = device_runner.benchmark(
        str(coral_dir / "mobilenet_v1_0.25_128_quant.tflite"), "litert", xnnpack=False, **FAST
    )
    assert r["xnnpack"] is False and r["delegate"] is None


def test_host_subprocess_turns_a_bad_model_into_an_error_result(coral_dir):
    settings = remote.Settings("litert", num_runs=5, min_secs=0.01)
    r = host.benchmark_in_subprocess(coral_dir / "invalid_model_invoking_error.tflite", settings)
    assert r["kind"] == "runner" and "fake-op-double" in r["error"]


def test_host_subprocess_reports_a_crashing_interpreter(tmp_path, coral_dir):
    """A Python that dies of SIGSEGV, as an interpreter does on some corrupt models."""
    crasher = tmp_path / "python"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    r = host.benchmark_in_subprocess(
        coral_dir / "split_concat.tflite", remote.Settings(), python=str(crasher)
    )
    assert r["kind"] == "crash" and "signal 11" in r["error"]


def test_benchmark_tool_keeps_going_past_a_bad_model(coral_dir, tmp_path):
    out = tmp_path / "r.json"
    proc = run_tool(
        "benchmark",
        f"--model={coral_dir / 'invalid_model_invoking_error.tflite'},"
        f"{coral_dir / 'split_concat.tflite'}",
        "--min_secs=0.05",
        "--num_runs=10",
        "--runtime=litert",
        "--threads=1",
        f"--output_json={out}",
    )
    assert proc.returncode == 1, proc.stderr
    records = json.loads(out.read_text())
    assert "error" in records[0] and records[1]["latency_ms"]["n"] >= 10
    assert "| host | split_concat.tflite |" in proc.stdout


def test_benchmark_tool_missing_model_is_one_line(tmp_path):
    assert_one_line_error(
        run_tool("benchmark", f"--model={tmp_path}/none.tflite"), "model not found"
    )


def test_device_runner_needs_at_most_python_3_7():
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("vermin")),
            "-t=3.7-",
            "--no-tips",
            "--violations",
            str(REPO / "edgequant" / "bench" / "device_runner.py"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_missing_inventory_is_one_line_error(coral_dir, tmp_path):
    assert_one_line_error(
        run_tool(
            "benchmark",
            f"--model={coral_dir / 'split_concat.tflite'}",
            "--device=pi",
            f"--inventory={tmp_path}/devices.toml",
        ),
        f"device inventory not found: {tmp_path}/devices.toml",
    )


def test_default_inventory_is_the_project_one_from_any_directory(coral_dir, tmp_path, monkeypatch):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "benchmark.py"),
            f"--model={coral_dir / 'split_concat.tflite'}",
            "--device=no-such-board",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert_one_line_error(
        proc, f"unknown device 'no-such-board'; devices in {REPO}/configs/devices.toml: coral"
    )
    monkeypatch.chdir(tmp_path)
    assert inventory.locate("configs/devices.toml") == REPO / "configs" / "devices.toml"
    assert inventory.locate("") is None


def test_example_inventory_parses():
    devices = inventory.load(REPO / "configs" / "devices.toml")
    assert devices["coral-devboard"].edgetpu and devices["rpi4"].destination.user == "pi"


def test_inventory_rejects_unknown_keys(tmp_path):
    bad = tmp_path / "d.toml"
    bad.write_text('[devices.x]\nssh = "a@b"\nhostname = "oops"\n')
    with pytest.raises(ValueError, match="unknown key"):
        inventory.load(bad)


def test_adhoc_destination_parses_user_host_port():
    d = inventory.resolve("mendel@127.0.0.1:2222", None, "/usr/bin/python3")
    assert (d.destination.user, d.destination.host, d.destination.port, d.python) == (
        "mendel",
        "127.0.0.1",
        2222,
        "/usr/bin/python3",
    )


def test_a_record_keeps_at_most_a_thousand_samples_but_percentiles_use_all(coral_dir):
    from edgequant.bench import device_runner

    r = device_runner.benchmark(
        str(coral_dir / "split_concat.tflite"),
        "litert",
        1,
        num_runs=5000,
        min_secs=0.2,
        warmup_runs=1,
        warmup_min_secs=0.0,
    )
    assert r["latency_ms"]["n"] >= 5000 and len(r["samples_ms"]) == device_runner.MAX_SAMPLES
    assert 0 < r["measured_secs"] <= 0.2 + 1.0  # invoke time only, within the wall time


def test_device_runner_literal_defaults_equal_the_one_home():
    """device_runner.py runs alone on boards and cannot import settings.py: its copy must match."""
    import inspect

    from edgequant.bench import settings

    home = settings.DEFAULT
    assert device_runner.DEFAULT_SETTINGS == {
        k: getattr(home, k) for k in device_runner.DEFAULT_SETTINGS
    }
    assert set(settings.CONFIG_FIELDS) <= device_runner.DEFAULT_SETTINGS.keys()
    args = device_runner.make_parser().parse_args(["m.tflite"])
    signature = inspect.signature(device_runner.benchmark).parameters
    for k, v in device_runner.DEFAULT_SETTINGS.items():
        assert getattr(args, k) == v and signature[k].default == v, k
    # Settings() on the command line is exactly the runner's own defaults.
    assert device_runner.make_parser().parse_args(["m.tflite", *home.runner_args()]) == args


def test_configs_and_the_tool_flags_read_the_one_home():
    from edgequant import workspace
    from edgequant.bench import settings

    mnist, test = workspace.config_module("mnist"), workspace.config_module("test")

    base = mnist.get_config().bench
    assert {k: base[k] for k in settings.CONFIG_FIELDS} == {
        k: getattr(settings.DEFAULT, k) for k in settings.CONFIG_FIELDS
    }
    assert settings.from_config(base) == settings.DEFAULT
    quick = settings.from_config(test.get_config().bench, runtime="litert")
    assert quick.runtime == "litert" and quick.num_runs == 10 and quick.max_secs == 60.0
    helpfull = run_tool("benchmark", "--helpfull").stdout
    for flag in ("num_runs", "min_secs", "max_secs", "warmup_runs", "warmup_min_secs", "seed"):
        block = helpfull.split(f"--{flag}:", 1)[1].split("--", 1)[0]
        assert f"(default: '{getattr(settings.DEFAULT, flag)}')" in block, (flag, block)


def test_pipeline_host_latency_and_the_tool_run_the_same_command(coral_dir, tmp_path):
    """One host-latency path: the pipeline (bench/latency.py) and tools/benchmark.py both start
    the device runner through host.benchmark_in_subprocess, with the same command line."""
    from ml_collections import ConfigDict

    from edgequant.bench import latency

    model = coral_dir / "split_concat.tflite"
    cfg = ConfigDict(
        {"threads": (1,), "num_runs": 5, "min_secs": 0.01, "warmup_runs": 1, "warmup_min_secs": 0.0}
    )
    (run,) = latency.host_latency(model, cfg)
    assert (
        run["threads"] == 1 and run["latency_ms"]["n"] >= 5 and run["runtime"] == "ai-edge-litert"
    )
    out = tmp_path / "r.json"
    proc = run_tool(
        "benchmark",
        f"--model={model}",
        "--runtime=litert",
        "--threads=1",
        "--num_runs=5",
        "--min_secs=0.01",
        "--warmup_runs=1",
        "--warmup_min_secs=0",
        f"--output_json={out}",
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = json.loads(out.read_text())
    assert record["command"].split() == run["command"].split()
    assert str(remote.RUNNER) in run["command"].split()[1]
