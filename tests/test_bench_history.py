"""The latency history on recorded series: stable, a real slowdown, and real noise."""

import json
import shutil

from edgequant.bench import history
from tests.conftest import REPO, assert_one_line_error, run_tool

RECORDED = REPO / "tests" / "data" / "history"


def _history(name: str, tmp_path):
    d = tmp_path / name
    d.mkdir()
    shutil.copy(RECORDED / f"{name}.jsonl", d / "results.jsonl")
    return d


def _p50s(name: str, tmp_path) -> list[float]:
    records, _ = history.load(_history(name, tmp_path))
    return [r["latency_ms"]["p50"] for r in records]


def test_stable_series_never_alarms(tmp_path):
    p50s = _p50s("stable", tmp_path)
    for n in range(history.MIN_HISTORY + 1, len(p50s) + 1):
        assert history.judge(p50s[:n])[3] == "ok", p50s[:n]


def test_real_slowdown_is_flagged_and_only_the_slow_run(tmp_path):
    p50s = _p50s("slowdown", tmp_path)
    (verdict,) = history.detect(history.load(tmp_path / "slowdown")[0])
    assert verdict.status == "regression" and verdict.latest_ms > verdict.threshold_ms
    assert verdict.delegate is None  # the run that lost XNNPACK
    for n in range(history.MIN_HISTORY + 1, len(p50s)):
        assert history.judge(p50s[:n])[3] == "ok"


def test_noisy_series_never_alarms_although_points_jump(tmp_path):
    p50s = _p50s("noisy", tmp_path)
    jumps = []
    for n in range(history.MIN_HISTORY + 1, len(p50s) + 1):
        baseline, noise, threshold, status = history.judge(p50s[:n])
        assert status != "regression", (p50s[:n], threshold)
        jumps.append(p50s[n - 1] / baseline - 1)
    # the series is really noisy: a fixed 10% rule would have alarmed on it
    assert max(jumps) > 0.5


def test_flat_history_uses_the_relative_floor():
    flat = [10.0] * 6
    assert history.judge([*flat, 10.1])[3] == "ok"  # +1%, under the 2% floor
    assert history.judge([*flat, 10.3])[3] == "regression"
    assert history.judge([10.0] * 3 + [30.0])[3] == "too short"


def test_emulated_and_failed_records_stay_out_of_the_history(tmp_path):
    d = _history("stable", tmp_path)
    line = json.loads((d / "results.jsonl").read_text().splitlines()[0])
    emulated = dict(
        line, latency_ms=None, emulated={"label": "emulated", "latency_ms": {"p50": 99}}
    )
    with open(d / "more.jsonl", "w") as f:
        f.write(json.dumps(emulated) + "\n" + json.dumps({"error": "x", "kind": "remote"}) + "\n")
    records, left_out = history.load(d)
    assert len(records) == 9 and left_out == 1


def test_benchmark_tool_gates_on_the_history_and_plots(tmp_path):
    plot = tmp_path / "p50.png"
    slow = run_tool(
        "benchmark", f"--history={_history('slowdown', tmp_path)}", f"--history_plot={plot}"
    )
    assert slow.returncode == 3, slow.stdout + slow.stderr
    assert "REGRESSION: host mobilenet_v1_0.25_128_quant.tflite ai-edge-litert" in slow.stdout
    assert plot.stat().st_size > 10_000
    noisy = run_tool("benchmark", f"--history={_history('noisy', tmp_path)}")
    assert noisy.returncode == 0, noisy.stdout + noisy.stderr
    assert (
        "| host | mobilenet_v2_1.0_224_quant.tflite | ai-edge-litert 2.3.0 | 2 | 13 |"
        in noisy.stdout
    )


def test_benchmark_tool_missing_history_dir_is_one_line(tmp_path):
    assert_one_line_error(
        run_tool("benchmark", f"--history={tmp_path}/none"), "history directory not found"
    )


def test_benchmark_tool_needs_a_model_or_a_history():
    assert_one_line_error(run_tool("benchmark", "--runtime=litert"), "--model")


def test_host_runs_join_the_history_store(tmp_path, coral_dir):
    d = _history("stable", tmp_path)
    proc = run_tool(
        "benchmark",
        f"--model={coral_dir / 'split_concat.tflite'}",
        "--runtime=litert",
        "--num_runs=5",
        "--min_secs=0.01",
        f"--history={d}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records, _ = history.load(d)
    assert len(records) == 10 and records[-1]["model"] == "split_concat.tflite"
    assert records[-1]["device"] == "host" and records[-1]["timestamp"] > records[0]["timestamp"]
    assert "| host | split_concat.tflite | ai-edge-litert 2.3.0 |  | 1 |" in proc.stdout
    assert "too short" in proc.stdout
