"""The binaries end-to-end, and what they do with bad input: one line on stderr, non-zero exit."""

import json
import re

import numpy as np
import pytest

from edgequant.datasets import idx
from edgequant.quantize import convert, recipes
from tests.conftest import REPO, assert_one_line_error, run_tool


@pytest.fixture(scope="module")
def uint8_model(tiny_model, representative, tmp_path_factory):
    out = tmp_path_factory.mktemp("tool_models")
    recipe = recipes.get("uint8", calibration_size=100)
    return convert.write(convert.convert(tiny_model, recipe, representative), recipe, out)


def test_evaluate_on_a_folder_with_only_t10k_files_uses_those_images(tmp_path, digits, uint8_model):
    folder = tmp_path / "t10k"
    folder.mkdir()
    idx.write_idx(folder / "t10k-images-idx3-ubyte.gz", digits.test.x[:200])
    idx.write_idx(folder / "t10k-labels-idx1-ubyte.gz", digits.test.y[:200].astype(np.uint8))
    out = tmp_path / "acc.json"
    proc = run_tool(
        "evaluate",
        f"--model={uint8_model}",
        "--dataset=mnist",
        f"--data_dir={folder}",
        f"--output_json={out}",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["n"] == 200 and 0.5 < result["accuracy"] <= 1.0
    assert result["dataset"]["source"] == f"dir:{folder}"
    assert "accuracy" in proc.stdout


def test_evaluate_missing_model_is_one_line(tmp_path):
    assert_one_line_error(
        run_tool("evaluate", f"--model={tmp_path}/nope.tflite"), "model not found"
    )


def test_evaluate_corrupt_tflite_is_one_line(tmp_path, uint8_model):
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(uint8_model.read_bytes()[:300])
    assert_one_line_error(run_tool("evaluate", f"--model={bad}"), "cannot load model")


def test_evaluate_model_with_unknown_custom_op_is_one_line(coral_dir):
    proc = run_tool("evaluate", f"--model={coral_dir / 'invalid_model_invoking_error.tflite'}")
    assert_one_line_error(proc, "fake-op-double")


def test_evaluate_model_of_another_task_is_one_line(coral_dir):
    model = coral_dir / "mobilenet_v1_0.25_128_quant.tflite"
    proc = run_tool("evaluate", f"--model={model}", "--dataset=mnist")
    assert_one_line_error(proc, "labels have 10 classes but no model output has 10 scores")


def test_quantize_unknown_recipe_is_one_line(tmp_path):
    proc = run_tool("quantize", "--model=x.keras", "--recipe=int3")
    assert_one_line_error(proc, "unknown recipe 'int3'", "uint8")


@pytest.fixture(scope="module")
def saved_float(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "float.keras"
    tiny_model.save(path)
    return path


@pytest.fixture(scope="module")
def calibration_npz(representative, tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, pixels=representative)
    return path


def quantize_tool(model, *args):
    return run_tool("quantize", f"--model={model}", *args)


def test_quantize_writes_model_and_recipe(tmp_path, saved_float, calibration_npz):
    proc = quantize_tool(
        saved_float, "--recipe=int8", f"--data={calibration_npz}", f"--out_dir={tmp_path}"
    )
    assert proc.returncode == 0, proc.stderr
    recipe = recipes.Recipe.load(tmp_path / "int8.recipe.json")
    assert recipe.mode is recipes.Mode.INT8 and recipe.calibration_size == 100
    assert (tmp_path / "int8.tflite").stat().st_size > 1000


def test_quantize_calibrated_recipe_without_data_is_refused(saved_float):
    proc = quantize_tool(saved_float, "--recipe=uint8")
    assert_one_line_error(proc, "no calibration data", "--data")


def test_quantize_empty_calibration_set_is_one_line(saved_float, calibration_npz):
    proc = quantize_tool(
        saved_float,
        "--recipe=uint8",
        f"--data={calibration_npz}",
        "--config.quantize.calibration_size=0",
    )
    assert_one_line_error(proc, "calibration_size must be positive")


def test_pipeline_bad_config_key_is_one_line(tmp_path):
    proc = run_tool(
        "pipeline", "--config=configs/test.py", f"--workdir={tmp_path}", "--config.train.epohcs=1"
    )
    assert_one_line_error(proc, "epohcs", 'Did you mean "epochs"')


def test_pipeline_unknown_model_lists_valid_models(tmp_path):
    proc = run_tool(
        "pipeline",
        "--config=configs/test.py",
        f"--workdir={tmp_path}",
        "--config.model.name=resnet",
    )
    assert_one_line_error(proc, "unknown model 'resnet'", "mnist_cnn", "mobilenet_v2")


_DEFINE = re.compile(r'DEFINE_\w+\(\s*"(\w+)",\s*([^,\n]+),')


def _own_flags(help_text: str, tool: str) -> dict[str, str]:
    """The tool's own section of --helpfull: {flag name: its help block}."""
    section = help_text.split(f"tools/{tool}.py:\n", 1)[1].split("\n\n", 1)[0]
    blocks = re.split(r"\n(?=  --)", section)
    return {re.match(r"\s*--(?:\[no\])?(\w+)", b).group(1): b for b in blocks}


@pytest.mark.parametrize(
    "tool", ["pipeline", "train", "quantize", "evaluate", "launch", "deploy", "edgetpu_fix"]
)
def test_every_binary_lists_its_flags_with_defaults(tool):
    """--helpfull documents every flag the binary defines, under its own name, with the
    default written in its source (absl exits 1 after printing help: app.usage + sys.exit(1))."""
    proc = run_tool(tool, "--helpfull")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    defined = {
        name: default.strip()
        for name, default in _DEFINE.findall((REPO / "tools" / f"{tool}.py").read_text())
    }
    assert defined, f"{tool} defines no flags"
    listed = _own_flags(proc.stdout, tool)
    assert set(defined) <= set(listed), set(defined) - set(listed)
    for name, default in defined.items():
        if default == "None" or not re.fullmatch(r'"[^"]*"|-?[\d.]+|True|False', default):
            continue  # no default, or an expression: nothing literal to compare
        want = default.strip('"').lower() if default in ("True", "False") else default.strip('"')
        assert f"(default: '{want}')" in listed[name], (name, listed[name])
