"""The compiler log parser on real log texts, and the compiler wrapper's run paths."""

import os
import stat
from pathlib import Path

import pytest

from edgequant.edgetpu import CompileOptions, compile_model, compile_models, compiler_log
from tests.conftest import alive, assert_one_line_error, run_tool

DATA = Path(__file__).parent / "data"


def fixture(name: str) -> str:
    return (DATA / f"compiler_{name}.txt").read_text()


def test_v16_fully_mapped_log_is_parsed():
    log = compiler_log.parse(fixture("f1"))
    assert log.version == "16.0.384591198" and log.succeeded is True
    assert log.total_ops == 134 and log.mapped_count == 134 and log.cpu_count == 0
    assert log.on_chip_used == round(3.86 * 1024**2) and log.off_chip_used == 0
    assert log.num_subgraphs == 1 and log.output_model == "model_output/model_edgetpu.tflite"
    assert log.ops["CONV_2D"] == {"Mapped to Edge TPU": 83} and log.compile_ms == 986


def test_v16_search_delegate_log_keeps_the_last_attempt_and_counts_statuses():
    log = compiler_log.parse(fixture("f2"))
    assert log.num_subgraphs == 3 and log.total_ops == 135
    assert log.tpu_ops == 132 and log.cpu_ops == 3
    assert log.ops["CONCATENATION"] == {
        "More than one subgraph is not supported": 2,
        "Mapped to Edge TPU": 1,
    }
    assert log.ops["ADD"]["Mapped to Edge TPU"] == 11


def test_v14_operation_log_file_sums_rows_per_status():
    log = compiler_log.parse(fixture("f3"))
    assert log.version == "14.1.317412892" and log.input_model == "tiny_yolo.tflite"
    assert log.ops["QUANTIZE"] == {
        "Operation is otherwise supported, but not mapped due to some unspecified limitation": 1,
        "More than one subgraph is not supported": 1,
        "Mapped to Edge TPU": 2,
    }
    assert log.mapped_count == 6 + 11 + 2 and log.cpu_count == 1 + 1 + 2 + 1 + 1


def test_v15_legacy_log_without_timer_lines():
    log = compiler_log.parse(fixture("f4"))
    assert log.version == "15.0.340273435" and log.succeeded and log.compile_ms == 2006
    assert (
        log.total_ops == 161 and log.num_subgraphs == 1 and log.input_size == round(4.17 * 1024**2)
    )


def test_v2_log_reads_the_available_memory_line():
    log = compiler_log.parse(fixture("f5"))
    assert log.version == "2.0.267685300"
    assert log.on_chip_remaining == round(7.62 * 1024**2) and log.on_chip_used == round(
        5.66 * 1024**2
    )


@pytest.mark.parametrize("block", [b for b in fixture("f6").split("\n\n") if b.strip()])
def test_every_failure_example_is_detected(block):
    log = compiler_log.parse(block)
    assert log.errors, block


def _fake_compiler(
    tmp_path: Path, log_text: str, exit_code: int = 0, write_output: bool = True
) -> str:
    """A stand-in executable: the real compiler exists only on x86-64 Debian with Coral's apt
    repository, so the wrapper's subprocess path is exercised with a script that prints a real
    compiler log and writes the files the real compiler writes."""
    (tmp_path / "log.txt").write_text(log_text)
    script = tmp_path / "edgetpu_compiler"
    write = 'touch "$out/$(basename "$model" .tflite)_edgetpu.tflite"' if write_output else ":"
    script.write_text(
        "#!/bin/sh\n"
        'for a; do case "$a" in --out_dir=*) out="${a#--out_dir=}";; *.tflite) model="$a";; esac; done\n'
        f"{write}\n"
        f'cat "{tmp_path / "log.txt"}"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_compile_without_compiler_is_not_compiled_with_install_hint(tmp_path, coral_dir):
    env_path = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        result = compile_model(coral_dir / "split_concat.tflite", tmp_path)
    finally:
        os.environ["PATH"] = env_path
    assert result.status == "not_compiled" and "x86-64 Debian" in result.reason


def test_compile_runs_the_compiler_and_parses_its_output(tmp_path, coral_dir):
    exe = _fake_compiler(tmp_path, fixture("f1"))
    out = tmp_path / "out"
    result = compile_model(
        coral_dir / "split_concat.tflite", out, exe, CompileOptions(min_runtime_version=13)
    )
    assert result.status == "compiled", result.reason
    assert "--min_runtime_version=13" in result.command and "--show_operations" in result.command
    assert result.output_files == (str(out / "split_concat_edgetpu.tflite"),)
    assert result.log.mapped_count == 134


def test_compile_failure_markers_fail_even_with_exit_zero(tmp_path, coral_dir):
    failing = (
        "Edge TPU Compiler version 15.0.340273435\nInvalid model: m.tflite\nModel not quantized\n"
    )
    result = compile_model(
        coral_dir / "split_concat.tflite", tmp_path / "o", _fake_compiler(tmp_path, failing)
    )
    assert result.status == "failed" and "Invalid model" in result.reason


def test_compiler_that_prints_only_its_version_is_a_failure(tmp_path, coral_dir):
    exe = _fake_compiler(tmp_path, "Edge TPU Compiler version 16.0.384591198\n", write_output=False)
    result = compile_model(coral_dir / "split_concat.tflite", tmp_path / "o", exe)
    assert result.status == "failed" and "wrote no" in result.reason


def test_compile_tool_without_compiler_exits_3_with_the_prediction(coral_dir, tmp_path):
    proc = run_tool(
        "compile_edgetpu",
        f"--model={coral_dir / 'split_concat.tflite'}",
        f"--out_dir={tmp_path}",
        "--compiler=",
    )
    assert proc.returncode == 3, proc.stderr
    assert "predicted: 3/3 ops on the Edge TPU" in proc.stdout and "not_compiled" in proc.stdout


def test_compile_tool_with_missing_compiler_path_is_one_line(coral_dir, tmp_path):
    proc = run_tool(
        "compile_edgetpu",
        f"--model={coral_dir / 'split_concat.tflite'}",
        f"--compiler={tmp_path}/nope",
    )
    assert_one_line_error(proc, "compiler not found")


def _hanging_compiler(tmp_path: Path) -> tuple[str, Path]:
    """A compiler stand-in that forks a worker (like edgetpu_compiler's compilation child),
    records the worker's pid, and then hangs: neither it nor the worker honours -t."""
    pid_file = tmp_path / "worker.pid"
    script = tmp_path / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\n"
        "echo 'Edge TPU Compiler version 16.0.384591198'\n"
        "echo 'Started a compilation timeout timer of 1 seconds.'\n"
        "sleep 120 &\n"
        f'echo $! > "{pid_file}"\n'
        "sleep 120\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), pid_file


def test_compile_timeout_kills_the_compiler_and_its_child_within_the_bound(tmp_path, coral_dir):
    import time

    from edgequant.edgetpu import compiler

    exe, pid_file = _hanging_compiler(tmp_path)
    start = time.monotonic()
    result = compile_model(
        coral_dir / "split_concat.tflite", tmp_path / "o", exe, CompileOptions(timeout_sec=1)
    )
    elapsed = time.monotonic() - start
    assert result.status == "failed" and "did not finish within" in result.reason
    assert elapsed < 1 + compiler.GRACE_SEC + 3, elapsed
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 2
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker), f"worker {worker} survived the timeout"


def test_co_compile_passes_every_model_in_one_call_and_parses_each_block(tmp_path, coral_dir):
    block = (DATA / "compiler_f8.txt").read_text().split("\n\n", 1)[1]
    two = (
        "Edge TPU Compiler version 16.0.384591198\n\n"
        + block
        + "\n"
        + block.replace("6.02MiB", "1.00MiB")
    )
    script = tmp_path / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\n"
        'for a; do case "$a" in --out_dir=*) out="${a#--out_dir=}";; *.tflite) '
        'touch "$out/$(basename "$a" .tflite)_edgetpu.tflite";; esac; done\n'
        f'cat "{tmp_path / "log.txt"}"\n'
    )
    (tmp_path / "log.txt").write_text(two)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    models = [coral_dir / "split_concat.tflite", coral_dir / "mobilenet_v1_0.25_128_quant.tflite"]
    result = compile_models(models, tmp_path / "o", str(script), CompileOptions(num_segments=2))
    assert result.status == "compiled", result.reason
    assert result.command[-2:] == tuple(str(m) for m in models)
    assert "--num_segments=2" in result.command and len(result.output_files) == 2
    assert [b.on_chip_used for b in result.logs] == [round(6.02 * 1024**2), 1024**2]
