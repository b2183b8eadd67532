"""Bad input to the benchmark and evaluation binaries: one line naming the flag, device, file
and line, a non-zero exit, never a traceback. Real subprocesses, a real loopback sshd."""

from __future__ import annotations

import json
import shutil

import pytest

from tests import sshd
from tests.conftest import DATA, REPO, assert_one_line_error, run_tool

MODEL = DATA / "coral" / "split_concat.tflite"
DEVICE_PYTHON = REPO / ".venv-device" / "bin" / "python"
QUICK = ("--num_runs=3", "--min_secs=0.01", "--warmup_runs=0", "--warmup_min_secs=0")

# --- flags ----------------------------------------------------------------------------------------

BAD_FLAGS = [
    ("--num_runs=-5", "num_runs=-5"),
    ("--num_runs=0", "num_runs=0"),
    ("--min_secs=-1", "min_secs=-1"),
    ("--min_secs=nan", "min_secs=nan"),
    ("--max_secs=0", "max_secs=0"),
    ("--warmup_runs=-1", "warmup_runs=-1"),
    ("--warmup_min_secs=-2", "warmup_min_secs=-2"),
    ("--threads=-2", "threads=-2"),
    ("--seed=-1", "seed=-1"),
    ("--step_timeout=0", "--step_timeout=0"),
    ("--tolerance=-1", "--tolerance=-1"),
    ("--max_parallel=0", "--max_parallel=0"),
]


@pytest.mark.parametrize("flag,named", BAD_FLAGS, ids=[f for f, _ in BAD_FLAGS])
def test_benchmark_refuses_a_bad_setting_with_one_line(flag, named, tmp_path):
    proc = run_tool("benchmark", f"--model={MODEL}", flag, f"--store={tmp_path / 's.jsonl'}")
    assert_one_line_error(proc, named)
    assert not (tmp_path / "s.jsonl").exists()  # refused before any measurement


def test_benchmark_refuses_max_secs_below_min_secs(tmp_path):
    proc = run_tool("benchmark", f"--model={MODEL}", "--min_secs=3", "--max_secs=1")
    assert_one_line_error(proc, "max_secs=1.0 is below min_secs=3.0")


def test_benchmark_refuses_an_output_that_is_a_folder_before_measuring(tmp_path):
    proc = run_tool("benchmark", f"--model={MODEL}", f"--output_json={tmp_path}")
    assert_one_line_error(proc, f"--output_json={tmp_path} is a folder")


def test_benchmark_reads_a_bad_reference_csv_before_measuring(tmp_path):
    csv = tmp_path / "ref.csv"
    csv.write_text("model,device,p50_ms\nsplit_concat.tflite,host,fast\n")
    store = tmp_path / "s.jsonl"
    proc = run_tool("benchmark", f"--model={MODEL}", f"--reference_csv={csv}", f"--store={store}")
    assert_one_line_error(proc, f"{csv} line 2", "p50_ms")
    assert not store.exists()


def test_benchmark_on_a_corrupt_model_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(MODEL.read_bytes()[:200])
    proc = run_tool("benchmark", f"--model={bad}", *QUICK, f"--store={tmp_path / 's.jsonl'}")
    assert proc.returncode == 1
    assert_one_line_error(proc, "1 of 1 benchmarks failed", "cut.tflite", "cannot load model")


# --- history files --------------------------------------------------------------------------------

STABLE = DATA / "history" / "stable.jsonl"
GOOD = {"model_sha256": "ab", "runtime": "litert", "device": "host", "num_threads": 1}
BAD_LINES = [
    ("garbage", b"hello, not json\n", "not JSON"),
    ("list", b"[1, 2]\n", "a JSON list"),
    ("number", b"42\n", "a JSON int"),
    ("not_utf8", b"\xff\xfe\x00\x01\n", "not a results record"),
    ("extra_brace", b'{"error": "x"}}\n', "not JSON"),
    ("p50_text", {**GOOD, "latency_ms": {"p50": "fast"}}, "latency_ms.p50 must be a number"),
    ("p50_nan", {**GOOD, "latency_ms": {"p50": float("nan"), "n": 0}}, "is no latency"),
    ("p50_zero_runs", {**GOOD, "latency_ms": {"p50": 1.0, "n": 0}}, "is no latency"),
    ("no_latency", {"model_sha256": "ab", "runtime": "x"}, "neither latency_ms nor error"),
    ("null_not_emulated", {**GOOD, "latency_ms": None}, "not emulated"),
    ("stamp_text", {**GOOD, "latency_ms": {"p50": 1.0}, "timestamp": "monday"}, "timestamp"),
    ("sha_number", {**GOOD, "model_sha256": 7, "latency_ms": {"p50": 1.0}}, "model_sha256"),
    ("threads_text", {**GOOD, "num_threads": "4", "latency_ms": {"p50": 1.0}}, "num_threads"),
    ("device_list", {**GOOD, "device": ["a"], "latency_ms": {"p50": 1.0}}, "device"),
]


def _history_with(tmp_path, extra) -> tuple:
    d = tmp_path / "history"
    d.mkdir()
    line = extra if isinstance(extra, bytes) else (json.dumps(extra) + "\n").encode()
    path = d / "results.jsonl"
    path.write_bytes(STABLE.read_bytes() + line)
    return d, path, len(STABLE.read_bytes().splitlines()) + 1


@pytest.mark.parametrize("name,line,why", BAD_LINES, ids=[n for n, _, _ in BAD_LINES])
def test_a_corrupt_history_line_is_one_line_naming_file_and_line(name, line, why, tmp_path):
    d, path, n = _history_with(tmp_path, line)
    proc = run_tool("benchmark", f"--history={d}")
    assert_one_line_error(proc, f"{path} line {n}", why)


def test_a_torn_history_line_is_named_and_the_rest_is_judged(tmp_path):
    d, path, n = _history_with(tmp_path, b'{"key": "x", "latency_ms": {"p5')
    proc = run_tool("benchmark", f"--history={d}")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {path} line {n}: a record cut short by a crash" in proc.stdout
    assert "| host | mobilenet_v1_0.25_128_quant.tflite |" in proc.stdout


# --- devices (a real sshd on 127.0.0.1) -------------------------------------------------------------


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


def _bench(server, tmp_path, *args):
    return run_tool(
        "benchmark",
        f"--model={MODEL}",
        f"--ssh_config={server.ssh_config}",
        "--inventory=",
        *QUICK,
        f"--store={tmp_path / 's.jsonl'}",
        *args,
    )


def _refused_port() -> int:
    return sshd.free_port()  # nothing listens there


DEVICE_CASES = [
    ("all_wrong_port", "all", "port", None, "Connection refused"),
    ("all_missing_python", "all", "loopdev", "/nonexistent/python3", "not found"),
    ("all_python_fails", "all", "loopdev", "/bin/false", "device runner failed"),
    ("all_python_without_numpy", "all", "loopdev", "/usr/bin/python3", "No module named"),
    ("fixed_wrong_port", "tflite_runtime", "port", None, "Connection refused"),
    ("fixed_missing_python", "tflite_runtime", "loopdev", "/nonexistent/python3", "not found"),
    ("fixed_python_fails", "tflite_runtime", "loopdev", "/bin/false", "device runner failed"),
    ("auto_wrong_port", "auto", "port", None, "Connection refused"),
]


@pytest.mark.slow  # ssh round trips and, for a refused port, the fleet's retries with backoff
@pytest.mark.parametrize(
    "name,runtime,where,python,why", DEVICE_CASES, ids=[c[0] for c in DEVICE_CASES]
)
def test_a_refusing_device_is_one_line_naming_it(
    server, tmp_path, name, runtime, where, python, why
):
    if python == "/usr/bin/python3" and not shutil.which("python3"):
        pytest.skip("no system python3")
    device = f"root@127.0.0.1:{_refused_port()}" if where == "port" else "loopdev"
    proc = _bench(
        server,
        tmp_path,
        f"--device={device}",
        f"--runtime={runtime}",
        f"--remote_python={python or DEVICE_PYTHON}",
    )
    assert_one_line_error(proc, device, why)


@pytest.mark.slow
def test_runtime_all_measures_the_devices_that_answer_and_names_the_one_that_refuses(
    server, tmp_path
):
    dead = f"root@127.0.0.1:{_refused_port()}"
    out = tmp_path / "r.json"
    proc = _bench(
        server,
        tmp_path,
        f"--device=loopdev,{dead}",
        "--runtime=all",
        f"--remote_python={DEVICE_PYTHON}",
        f"--output_json={out}",
    )
    assert proc.returncode == 1
    assert_one_line_error(proc, dead, "Connection refused")
    records = json.loads(out.read_text())
    assert {r["device"] for r in records if "error" not in r} == {"loopdev"}
    assert {r["device"] for r in records if "error" in r} == {dead}


BAD_INVENTORIES = [
    ("ssh_number", "[devices.x]\nssh = 5\n", "ssh must be a string"),
    ("device_not_table", "[devices]\nx = 5\n", "must be a table"),
    ("devices_not_table", "devices = 5\n", "'devices' must be tables"),
    ("edgetpu_text", '[devices.x]\nssh = "h"\nedgetpu = "yes"\n', "edgetpu must be a boolean"),
    ("no_ssh", '[devices.x]\npython = "p"\n', "needs an 'ssh' destination"),
    ("unknown_key", '[devices.x]\nssh = "h"\nport = 22\n', "unknown key"),
    ("not_toml", "devices = [\n", "devices.toml"),
]


@pytest.mark.parametrize("name,text,why", BAD_INVENTORIES, ids=[n for n, _, _ in BAD_INVENTORIES])
def test_a_bad_inventory_is_one_line(tmp_path, name, text, why):
    inv = tmp_path / "devices.toml"
    inv.write_text(text)
    proc = run_tool("benchmark", f"--model={MODEL}", f"--inventory={inv}", "--device=x")
    assert_one_line_error(proc, why)


# --- evaluate flags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag,named",
    [
        ("--input_range=1", "--input_range=1: expected LO,HI"),
        ("--input_range=0,1,2", "expected LO,HI"),
        ("--input_range=a,b", "expected LO,HI"),
        ("--input_range=nan,1", "expected LO,HI"),
        ("--config.preprocess.resize=28", "--resize=28: expected H,W"),
        ("--config.preprocess.resize=2.5,3", "expected H,W"),
        ("--batch_size=0", "--batch_size=0"),
        ("--mean=x", "--mean=x: expected one number or one per channel"),
    ],
)
def test_evaluate_names_a_malformed_flag_and_its_form(flag, named, tmp_path):
    import numpy as np

    from edgequant.data.folders import write_image_folder

    folder = write_image_folder(
        tmp_path / "imgs", np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, 1])
    )
    one_input = DATA / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
    proc = run_tool("evaluate", f"--model={one_input}", f"--data={folder}", flag)
    assert_one_line_error(proc, named)
