"""The one Edge TPU check-and-compile sequence, as the pipeline stage and the tool both run it."""

import json
import stat
from pathlib import Path

from ml_collections import ConfigDict

from edgequant.edgetpu import check, stage
from tests.conftest import DATA, run_tool


def _copying_compiler(tmp_path: Path, coral_dir: Path, calls: Path) -> str:
    """A stand-in for edgetpu_compiler (x86-64 Debian only): it prints a real v16 log and writes
    Coral's real compiled split_concat_edgetpu.tflite, so the comparison runs on a real
    compiler output. Every call is recorded in `calls`."""
    script = tmp_path / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{calls}"\n'
        'for a; do case "$a" in --out_dir=*) out="${a#--out_dir=}";; esac; done\n'
        f'cp "{coral_dir / "split_concat_edgetpu.tflite"}" "$out/split_concat_edgetpu.tflite"\n'
        f'cat "{DATA / "compiler_f1.txt"}"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_stage_and_tool_give_the_same_json_for_the_same_model(tmp_path, coral_dir):
    calls = tmp_path / "calls.txt"
    exe = _copying_compiler(tmp_path, coral_dir, calls)
    model = coral_dir / "split_concat.tflite"
    out = tmp_path / "out"
    cfg = ConfigDict({"compiler": exe, "min_runtime_version": 13})
    entry = stage.check_variant({"path": str(model)}, cfg, out)
    proc = run_tool(
        "compile_edgetpu",
        f"--model={model}",
        f"--out_dir={out}",
        f"--compiler={exe}",
        "--min_runtime_version=13",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["status"] == "compiled" and printed["models"] == [entry]
    assert entry["compile_status"] == "compiled" and entry["gate"]["passed"]
    # The analyzer's 3/3 prediction agrees with Coral's real compiled model.
    assert entry["mapped_count"] == entry["op_count"] == 3 and entry["comparison"]["matches"]
    assert "--min_runtime_version=13" in entry["compile"]["command"]
    assert len(calls.read_text().splitlines()) == 2  # one compiler call each


def test_a_model_failing_the_gate_is_never_handed_to_the_compiler(tmp_path, coral_dir):
    calls = tmp_path / "calls.txt"
    exe = _copying_compiler(tmp_path, coral_dir, calls)
    options = check.CheckOptions(compiler=exe)
    result = check.check_and_compile(
        coral_dir / "invalid_model_invoking_error.tflite", tmp_path, options
    )
    assert result.status == "gate_failed" and result.compile is None and not calls.exists()
    assert "io-dtype" in result.reason
    proc = run_tool(
        "compile_edgetpu",
        f"--model={coral_dir / 'invalid_model_invoking_error.tflite'}",
        f"--compiler={exe}",
        f"--out_dir={tmp_path}",
    )
    assert proc.returncode == 1 and "compile: gate_failed" in proc.stdout, proc.stdout
    assert not calls.exists()


def test_co_compiled_models_share_one_cache_budget_and_get_no_comparison(tmp_path, coral_dir):
    models = [coral_dir / "mobilenet_v2_1.0_224_quant.tflite", coral_dir / "split_concat.tflite"]
    result = check.check_and_compile(models, tmp_path, check.CheckOptions(compiler=None))
    entries = result.entries()
    assert [e["model"] for e in entries] == [m.name for m in models]
    assert result.status in ("not_compiled", "compiled") and result.comparison is None
    alone = check.check_and_compile(models[1], tmp_path).entries()[0]["parameter_cache"]
    # The big model claims the cache first; the small one is predicted against what is left.
    assert entries[1]["parameter_cache"]["parameter_bytes"] == alone["parameter_bytes"]
