"""The full-integer gate and the mapping analyzer, against real compiled models and real
conversions of tiny Keras models."""

import json

import pytest

from edgequant import edgetpu
from edgequant.edgetpu import analyzer
from edgequant.quantize import convert, recipes
from tests.conftest import assert_one_line_error, run_tool

PAIRS = [
    "deeplabv3_mnv2_dm05_pascal_quant",
    "keras_lstm_mnist_ptq",
    "mobilenet_v1_0.25_128_quant",
    "split_concat",
]


@pytest.mark.parametrize("name", PAIRS)
def test_analyzer_reproduces_the_real_compiler_mapping(name, coral_dir):
    analysis = edgetpu.analyze(coral_dir / f"{name}.tflite")
    comparison = edgetpu.compare_with_prediction(analysis, coral_dir / f"{name}_edgetpu.tflite")
    assert comparison["matches"], comparison


def test_deeplab_is_cut_at_the_first_resize_and_keeps_the_independent_branch(coral_dir):
    analysis = edgetpu.analyze(coral_dir / "deeplabv3_mnv2_dm05_pascal_quant.tflite")
    assert analysis.first_unmapped.index == 64 and analysis.first_unmapped.op == "RESIZE_BILINEAR"
    assert analysis.mapped_count == 64
    by_index = {v.index: v for v in analysis.ops}
    assert by_index[63].mapped  # the 1x1 branch does not depend on the resize
    assert by_index[67].status == analyzer.DOWNSTREAM
    assert "op 64 RESIZE_BILINEAR" in analysis.advice


def test_multiple_subgraphs_maps_supported_ops_after_the_cut(coral_dir):
    analysis = edgetpu.analyze(
        coral_dir / "deeplabv3_mnv2_dm05_pascal_quant.tflite", multiple_subgraphs=True
    )
    cpu = {v.op for v in analysis.cpu_ops}
    assert cpu == {"RESIZE_BILINEAR", "ARG_MAX"} and analysis.num_subgraphs >= 2


def test_unknown_custom_op_stays_on_the_cpu_with_a_reason(coral_dir):
    analysis = edgetpu.analyze(coral_dir / "invalid_model_invoking_error.tflite")
    (v,) = analysis.ops
    assert not v.mapped and v.custom_code == "fake-op-double" and "custom op" in v.reason


def test_old_runtime_target_keeps_runtime_13_ops_on_the_cpu(coral_dir):
    analysis = edgetpu.analyze(coral_dir / "keras_lstm_mnist_ptq.tflite", min_runtime_version=12)
    assert analysis.ops[0].op == "QUANTIZE" and not analysis.ops[0].mapped
    assert "runtime >= 13" in analysis.ops[0].reason


@pytest.fixture(scope="module")
def variants(tiny_model, representative, tmp_path_factory):
    out = tmp_path_factory.mktemp("etpu")
    paths = {}
    for name in ("uint8", "int8", "fp32", "dynamic_range", "float16", "int8_fallback"):
        recipe = recipes.get(name, calibration_size=50)
        paths[name] = convert.write(
            convert.convert(tiny_model, recipe, representative), recipe, out
        )
    return paths


def rules(report) -> set[str]:
    return {v.rule for v in report.violations}


def test_gate_passes_the_pipeline_uint8_variant(variants):
    report = edgetpu.check_full_integer(variants["uint8"])
    assert report.passed, report.summary()


def test_uint8_variant_is_predicted_fully_mapped(variants):
    analysis = edgetpu.analyze(variants["uint8"])
    assert analysis.fully_mapped and analysis.num_subgraphs == 1


def test_gate_rejects_float_io_model(variants):
    report = edgetpu.check_full_integer(variants["int8_fallback"])
    assert {"io-dtype", "float-io", "dynamic-batch"} <= rules(report)
    assert any("model input is float32, must be uint8" in str(v) for v in report.violations)


def test_gate_rejects_dynamic_range_model_naming_the_op(variants):
    report = edgetpu.check_full_integer(variants["dynamic_range"])
    dyn = [v for v in report.violations if v.rule == "dynamic-range"]
    assert dyn and dyn[0].op in ("CONV_2D", "FULLY_CONNECTED") and dyn[0].op_index is not None


def test_gate_rejects_float16_weights(variants):
    report = edgetpu.check_full_integer(variants["float16"])
    assert any(v.rule == "float-op" and "float16" in v.message for v in report.violations)


def test_gate_rejects_a_model_with_a_float_op(representative, tmp_path):
    import tensorflow as tf
    import tf_keras as keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16)(x)
    x = keras.layers.Lambda(lambda t: tf.math.sin(t))(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    recipe = recipes.get("int8_fallback", calibration_size=20)
    path = convert.write(
        convert.convert(keras.Model(inputs, outputs), recipe, representative), recipe, tmp_path
    )
    report = edgetpu.check_full_integer(path)
    sin = [v for v in report.violations if v.op == "SIN"]
    assert sin and sin[0].rule == "float-tensor" and sin[0].tensor
    analysis = edgetpu.analyze(path)
    assert analysis.first_unmapped.op in ("DEQUANTIZE", "SIN")


def test_gate_can_require_int8_io(variants):
    assert edgetpu.check_full_integer(variants["int8"], "int8").passed
    assert "io-dtype" in rules(edgetpu.check_full_integer(variants["int8"], "uint8"))


def test_leading_float_quantize_does_not_stop_mapping(variants):
    analysis = edgetpu.analyze(variants["int8_fallback"])
    first = analysis.ops[0]
    assert first.op == "QUANTIZE" and not first.mapped and first.status == analyzer.UNSPECIFIED
    assert analysis.ops[1].mapped  # the first conv still maps


def test_half_pixel_resize_maps_with_compiler_16_and_cuts_with_15(representative, tmp_path):
    """TF2 writes RESIZE_BILINEAR v3 (half_pixel_centers): v14/v15 refused it, v16 maps it."""
    import tf_keras as keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    recipe = recipes.get("uint8", calibration_size=20)
    path = convert.write(
        convert.convert(keras.Model(inputs, outputs), recipe, representative), recipe, tmp_path
    )
    v16 = edgetpu.analyze(path)
    resize = next(v for v in v16.ops if v.op == "RESIZE_BILINEAR")
    assert resize.version == 3 and resize.mapped and resize.confidence == "uncertain"
    assert v16.fully_mapped and f"{resize.index} RESIZE_BILINEAR" in v16.to_dict()["uncertain_ops"]
    v15 = edgetpu.analyze(path, compiler_version=15)
    cut = v15.first_unmapped
    assert cut is not None and cut.op == "RESIZE_BILINEAR", v15.to_dict()
    assert cut.status == analyzer.VERSION
    after = [v for v in v15.ops if v.index > cut.index]
    assert after and all(not v.mapped for v in after)
    assert all(v.mapped for v in v15.ops if v.index < cut.index)


def test_check_tool_json_has_the_documented_fields(coral_dir):
    proc = run_tool(
        "edgetpu_check",
        f"--model={coral_dir / 'deeplabv3_mnv2_dm05_pascal_quant.tflite'}",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr  # not fully mapped
    out = json.loads(proc.stdout)
    assert {"ops", "mapped_count", "cpu_ops", "first_unmapped", "gate"} <= out.keys()
    assert {"index", "op", "custom_code", "mapped", "reason"} <= out["ops"][0].keys()
    assert out["mapped_count"] == 64 and out["first_unmapped"]["op"] == "RESIZE_BILINEAR"


def test_check_tool_table_for_a_fully_mapped_model(coral_dir):
    proc = run_tool("edgetpu_check", f"--model={coral_dir / 'split_concat.tflite'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3/3 ops predicted on the Edge TPU" in proc.stdout


@pytest.mark.parametrize(
    "content", [b"", b"not a model at all", b"\x1c\x00\x00\x00TFL3" + b"\x00" * 10]
)
def test_check_tool_rejects_corrupt_files_in_one_line(content, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(content)
    assert_one_line_error(run_tool("edgetpu_check", f"--model={bad}"), str(bad))


def test_check_tool_missing_file_is_one_line(tmp_path):
    assert_one_line_error(
        run_tool("edgetpu_check", f"--model={tmp_path}/x.tflite"), "model not found"
    )


def test_gate_groups_a_dynamic_batch_into_one_line_with_a_count(variants):
    report = edgetpu.check_full_integer(variants["int8_fallback"])
    dynamic = [v for v in report.violations if v.rule == "dynamic-batch"]
    assert len(dynamic) > 2  # every activation tensor carries the -1 batch
    lines = [ln for ln in report.summary().splitlines() if "[dynamic-batch]" in ln]
    assert len(lines) == 1, report.summary()
    assert f"({len(dynamic)}x, first: tensor '{dynamic[0].tensor}')" in lines[0]
    grouped = {g["rule"]: g for g in report.to_dict()["grouped"]}
    assert grouped["dynamic-batch"]["count"] == len(dynamic)


def test_tile_maps_with_uncertain_confidence(representative, tmp_path):
    """TILE is not in Coral's table, but compiler 16 mapped it in a real segmentation model."""
    import tensorflow as tf
    import tf_keras as keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    x = tf.tile(x, [1, 1, 1, 2])
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    recipe = recipes.get("uint8", calibration_size=20)
    path = convert.write(
        convert.convert(keras.Model(inputs, outputs), recipe, representative), recipe, tmp_path
    )
    analysis = edgetpu.analyze(path)
    tile = next(v for v in analysis.ops if v.op == "TILE")
    assert tile.mapped and tile.confidence == "uncertain" and "uncertain" in tile.reason
    assert analysis.fully_mapped
    proc = run_tool("edgetpu_check", f"--model={path}")
    assert "uncertain: 1 verdict(s)" in proc.stdout and f"{tile.index} TILE" in proc.stdout
