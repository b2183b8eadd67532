"""Compiler-16 op-version check: evidence per op version, the gate refusing a version the
compiler refuses, and a converter setting that avoids one, with real TF conversions."""

import numpy as np
import pytest
import tf_keras as keras

from edgequant.edgetpu import versions
from edgequant.edgetpu.check import check_models
from edgequant.edgetpu.gate import check_full_integer
from edgequant.quantize import convert, recipes

PAIRS = [
    "deeplabv3_mnv2_dm05_pascal_quant",
    "keras_lstm_mnist_ptq",
    "mobilenet_v1_0.25_128_quant",
    "split_concat",
]


@pytest.mark.parametrize(
    "op, version, issue",
    [
        ("CONV_2D", 6, "#631"),
        ("QUANTIZE", 3, "#879"),
        ("TRANSPOSE_CONV", 4, "#845"),
        ("EXP", 2, "libedgetpu#71"),
    ],
)
def test_versions_from_the_issues_are_refused_with_their_evidence(op, version, issue):
    finding = versions.judge_version(op, version)
    assert finding.verdict == "refused" and issue in finding.evidence
    assert finding.accepted < version


def test_versions_below_the_evidence_are_accepted_and_unknown_ones_reported():
    assert versions.judge_version("CONV_2D", 3) is None
    unknown = versions.judge_version("FULLY_CONNECTED", 5)
    assert unknown.verdict == "unknown" and "keep_num_dims" in unknown.model_change


@pytest.mark.parametrize("name", PAIRS)
def test_every_op_version_in_a_real_compiled_pair_is_accepted(name, coral_dir):
    assert versions.check_op_versions(coral_dir / f"{name}.tflite") == []


def _conv_model(groups):
    layers = keras.layers
    x = keras.Input((8, 8, 4), name="image")
    y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 3, padding="same", groups=groups)(y)
    return keras.Model(x, layers.GlobalAveragePooling2D(name="pooled")(y))


SAMPLES = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 4)).astype(np.float32)


def test_one_grouped_conv_makes_every_conv_version_6_and_the_gate_refuses_it(tmp_path):
    recipe = recipes.Recipe(name="uint8", mode="uint8", calibration_size=8)
    path = tmp_path / "grouped.tflite"
    path.write_bytes(convert.convert(_conv_model(2), recipe, SAMPLES))
    (finding,) = [f for f in versions.check_op_versions(path) if f.op == "CONV_2D"]
    assert finding.version == 6 and finding.count == 2 and finding.verdict == "refused"
    assert "grouped" in finding.model_change and finding.fix is None
    gate = check_full_integer(path)
    assert any(v.rule == "op-version" and "#631" in v.message for v in gate.violations)
    (entry,) = check_models([path])
    assert entry.to_dict()["op_versions"][0]["op"] == "CONV_2D"


def test_exp_version_2_is_avoided_by_keeping_box_decoding_on_the_cpu():
    import tensorflow as tf

    from edgequant import postprocess

    layers = keras.layers
    x = keras.Input((8, 8, 4), name="image")
    head = layers.Conv2D(4, 1, name="box_head")(x)
    model = keras.Model(x, layers.Lambda(lambda t: tf.exp(t) * 0.5, name="decode")(head))
    recipe = recipes.Recipe(name="uint8", mode="uint8", calibration_size=8)
    content, used, record = versions.convert_for_compiler16(model, recipe, SAMPLES)
    (finding,) = record["findings"]
    assert (finding["op"], finding["version"], finding["verdict"]) == ("EXP", 2, "refused")
    assert finding["fix"]["setting"].startswith("postprocess on the CPU")
    split = postprocess.split_model(model)
    body, tail, _ = postprocess.convert_split(split, SAMPLES)
    assert versions.check_op_versions(body) == []
    assert versions.check_op_versions(tail) == []  # float EXP is version 1
    assert versions.suggest_converter_fix("QUANTIZE", 3).recipe == {"weights": "per_tensor"}
