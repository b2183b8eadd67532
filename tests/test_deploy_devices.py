"""Devices in the deployment: every variant timed on a real loopback sshd device (the device
venv's tflite-runtime), the recommendation ranked by the target device, a dead device kept to
one line and a non-zero exit while every other result is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgequant
from tests import sshd
from tests.conftest import REPO, assert_one_line_error, ready, run_tool

DEVICE_PYTHON = REPO / ".venv-device" / "bin" / "python"
# A tiny, quick deployment: three CPU variants, no recovery, short timing runs.
QUICK = {
    "target": "cpu",
    "quantize.recipes": ("fp32", "float16", "int8"),
    "recovery.enabled": False,
    "budget.max_drop_pp": 5.0,
    "bench.num_runs": 5,
    "bench.min_secs": 0.01,
    "bench.warmup_runs": 1,
    "bench.warmup_min_secs": 0.0,
    "inventory": "",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not DEVICE_PYTHON.exists():
        pytest.skip(f"device venv missing at {DEVICE_PYTHON} (make device-venv creates it)")
    try:
        s = sshd.make_server(tmp_path_factory.mktemp("sshd"))
    except FileNotFoundError as e:
        pytest.skip(str(e))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def user_files(tiny_model, digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    tiny_model.save(root / "user.keras")
    idx = np.arange(0, 3000, 10)
    np.savez(root / "digits.npz", x=ready(digits.train.x[idx]), labels=digits.train.y[idx])
    return root / "user.keras", root / "digits.npz"


def _dead_device() -> str:
    """A user@host:port nothing listens on: ssh's connection is refused."""
    return f"root@127.0.0.1:{sshd.free_port()}"


def _fastest_within_budget(result: dict, p50) -> str:
    ok = [v for v in result["variants"] if v["within_budget"] and v["name"] != "fp32"]
    return min(ok, key=lambda v: (p50(v), v["size_bytes"]))["name"]


@pytest.fixture(scope="module")
def device_bundle(server, user_files, tmp_path_factory):
    model, data = user_files
    out = tmp_path_factory.mktemp("bundle")
    result = edgequant.deploy(
        model,
        data,
        out,
        device="loopdev",
        ssh_config=str(server.ssh_config),
        remote_python=str(DEVICE_PYTHON),
        **QUICK,
    )
    return result, out


def test_every_variant_has_its_device_latency_and_parity_vs_host(device_bundle):
    result, out = device_bundle
    assert result["errors"] == []
    assert [v["name"] for v in result["variants"]] == ["fp32", "float16", "int8"]
    for v in result["variants"]:
        d = v["devices"]["loopdev"]
        assert d["runtime"] == "tflite-runtime" and d["runtime_version"] == "2.14.0"
        assert 0 < d["p50"] <= d["p90"] <= d["p99"]
        assert d["status"] == "ok" and d["emulated"] is False
        assert d["parity_vs_host"]["ok"] and "within bound" in d["parity_vs_host"]["message"]
    int8 = result["variants"][2]["devices"]["loopdev"]["parity_vs_host"]
    assert int8["max_lsb_diff"] <= int8["bound_lsb"]  # integer outputs: compared in LSBs
    assert (
        json.loads((out / "deploy.json").read_text())["variants"][1]["devices"]
        == (result["variants"][1]["devices"])
    )
    report = (out / "report.md").read_text()
    assert "| loopdev | int8.tflite | tflite-runtime 2.14.0 |" in report
    assert "loopdev p50 ms" in report  # the device's column in the variant table
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"int8.tflite", "fp32.tflite", "deploy.json"} <= manifest["artifacts_sha256"].keys()


def test_the_recommendation_follows_the_target_device(device_bundle):
    result, out = device_bundle
    assert result["ranked_by"] == "ranked by p50 latency on the target device `loopdev`"
    assert result["recommended"] == _fastest_within_budget(
        result, lambda v: v["devices"]["loopdev"]["p50"]
    )
    assert (
        "Variants are ranked by p50 latency on the target device `loopdev`"
        in (out / "report.md").read_text()
    )


def test_a_dead_device_is_one_line_and_a_nonzero_exit_with_every_other_result_kept(
    server, user_files, tmp_path
):
    model, data = user_files
    dead = _dead_device()
    proc = run_tool(
        "deploy",
        f"--model={model}",
        f"--data={data}",
        f"--out_dir={tmp_path / 'b'}",
        f"--device=loopdev,{dead}",
        f"--ssh_config={server.ssh_config}",
        f"--remote_python={DEVICE_PYTHON}",
        "--inventory=",
        "--target=cpu",
        "--config.quantize.recipes=('fp32','float16','int8')",
        "--config.recovery.enabled=false",
        "--config.budget.max_drop_pp=5",
        "--config.bench.num_runs=5",
        "--config.bench.min_secs=0.01",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED:")]
    assert len(failed) == 1 and f"device {dead}" in failed[0] and "transport" in failed[0]
    result = json.loads((tmp_path / "b" / "deploy.json").read_text())
    assert [e["name"] for e in result["errors"]] == [f"device {dead}"]
    for v in result["variants"]:  # the live device, the metrics and the host latency are kept
        assert v["devices"]["loopdev"]["p50"] > 0 and v["metrics"]["n"] == 60
        assert v["devices"][dead]["p50"] is None
        assert v["devices"][dead]["status"].startswith("transport")
        assert v["latency_ms"]["p50"] > 0
    assert result["recommended"] and "loopdev" in result["ranked_by"]
    report = (tmp_path / "b" / "report.md").read_text()
    assert f"`device {dead}`: 3 of 3 variants failed: transport" in report


def test_a_variant_the_devices_runtime_cannot_load_is_a_warning_and_never_recommended(
    server, user_files, tmp_path
):
    """TF 2.21's dynamic-range FULLY_CONNECTED is version 12, which the device's tflite-runtime
    2.14 has no kernel for: the device works, that variant cannot run there. The run succeeds,
    says which variant needs a newer runtime, and recommends what the device did run."""
    model, data = user_files
    proc = run_tool(
        "deploy",
        f"--model={model}",
        f"--data={data}",
        f"--out_dir={tmp_path / 'b'}",
        "--device=loopdev",
        f"--ssh_config={server.ssh_config}",
        f"--remote_python={DEVICE_PYTHON}",
        "--inventory=",
        "--target=cpu",
        "--config.quantize.recipes=('fp32','dynamic_range')",
        "--config.recovery.enabled=false",
        "--config.bench.num_runs=5",
        "--config.bench.min_secs=0.01",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "b" / "deploy.json").read_text())
    fp32, dynamic = (v["devices"]["loopdev"] for v in result["variants"])
    assert fp32["p50"] > 0 and dynamic["p50"] is None
    assert dynamic["status"].startswith("unsupported: ")
    assert "Didn't find op for builtin opcode 'FULLY_CONNECTED'" in dynamic["status"]
    assert result["errors"] == [] and result["recommended"] == "fp32"
    (warning,) = [w for w in result["warnings"] if w.startswith("device loopdev")]
    assert "cannot load 1 variant(s) (dynamic_range.tflite)" in warning
    assert "need a newer TFLite runtime" in warning and "FULLY_CONNECTED" in warning
    assert warning in (tmp_path / "b" / "report.md").read_text()


def test_without_a_live_device_the_ranking_says_it_is_the_hosts(user_files, tmp_path):
    model, data = user_files
    dead = _dead_device()
    result = edgequant.deploy(model, data, tmp_path / "b", device=dead, **QUICK)
    assert [e["name"] for e in result["errors"]] == [f"device {dead}"]
    assert "host CPU p50 latency" in result["ranked_by"] and dead in result["ranked_by"]
    assert result["recommended"] == _fastest_within_budget(result, lambda v: v["latency_ms"]["p50"])
    no_device = edgequant.deploy(model, data, tmp_path / "c", **QUICK)
    assert no_device["errors"] == [] and "not the target" in no_device["ranked_by"]
    assert "not the target" in (tmp_path / "c" / "report.md").read_text()
    assert "devices" not in no_device and "devices" not in no_device["variants"][0]


def test_an_unknown_device_name_is_refused_before_any_work(user_files, tmp_path):
    model, data = user_files
    inv = tmp_path / "devices.toml"
    inv.write_text('[devices.coral1]\nssh = "coral1"\n')
    with pytest.raises(ValueError, match="bench.devices: unknown device 'nope'.*coral1"):
        edgequant.deploy(model, data, tmp_path / "b", device="nope", **{**QUICK, "inventory": inv})
    assert not (tmp_path / "b").exists()
    proc = run_tool(
        "deploy",
        f"--model={model}",
        f"--data={data}",
        f"--out_dir={tmp_path / 'c'}",
        "--device=nope",
        f"--inventory={inv}",
    )
    assert_one_line_error(proc, "bench.devices: unknown device 'nope'")
    assert not Path(tmp_path / "c").exists()
