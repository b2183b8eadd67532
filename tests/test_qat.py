"""QAT with tfmot: conversion parity, selective annotation, unsupported layers, distribution."""

import subprocess
import sys

import numpy as np
import pytest

from edgequant.cli import UserError
from edgequant.quantize import convert, recipes
from edgequant.train import qat
from tests.conftest import REPO, class_scores
from tests.doors import DOORS, open_door


@pytest.fixture(scope="module")
def qat_model(tiny_model, digits):
    """The tiny float model, fake-quantized and fine-tuned for one short epoch."""
    from edgequant.train import fit
    from tests.conftest import ready

    model = qat.apply(qat.annotate(tiny_model))
    x = ready(digits.train.x[:1000])
    fit.compile_model(model, 2e-4, 40)
    model.fit(x, digits.train.y[:1000], batch_size=32, epochs=1, verbose=0)
    return model


@pytest.mark.parametrize("mode", ["uint8", "int8"])
def test_qat_model_converts_with_prediction_parity(
    qat_model, representative, test_images, tmp_path, mode
):
    x, _ = test_images
    recipe = recipes.Recipe(f"qat_{mode}", recipes.Mode(mode), calibration_size=100)
    path = convert.write(convert.convert(qat_model, recipe, representative), recipe, tmp_path)
    keras_pred = qat_model.predict(x, verbose=0).argmax(-1)
    tflite_pred = class_scores(path, x).argmax(-1)
    assert np.mean(keras_pred == tflite_pred) >= 0.99
    assert convert.float_ops(path.read_bytes()) == []


@pytest.mark.slow
@pytest.mark.parametrize("door", DOORS)
def test_the_one_qat_stage_builds_both_full_integer_variants_with_parity(
    door, tiny_model, digits, prepared, tmp_path
):
    """The same stage for the study and for a user's deployment: one fine-tuning on the
    labelled training split, qat_uint8 and qat_int8, each with its Keras-vs-TFLite parity."""
    from edgequant.train import qat_stage

    study = open_door(door, tiny_model, digits, prepared, tmp_path)
    result = {"variants": [], "errors": [], "recovery": []}
    made = qat_stage.qat_stage(study, result)
    assert result["errors"] == []
    assert [v["name"] for v in made] == ["qat_uint8", "qat_int8"]
    for v in made:
        # chance is 0.1: the one short epoch really trained the fake-quant model
        assert v["qat"]["agreement"] >= 0.95 and 0.2 < v["qat"]["keras_accuracy"] <= 1
        assert v["recipe"]["qat"]["samples"] == len(study.train) and v["step"] == "qat"
        on_disk = convert.read_recipe(v["path"])
        assert on_disk.to_dict() == v["recipe"] and len(on_disk.qat.annotated) >= 3
    summary = result["qat"]
    assert summary["epochs"] == 1 and summary["seconds"] > 0
    assert summary["parity"] == {v["name"]: v["qat"]["agreement"] for v in made}
    assert (study.out_dir / "tensorboard" / "qat" / "validation").is_dir()


def test_selective_annotation_quantizes_only_matching_layers(tiny_model):
    model = qat.apply(qat.annotate(tiny_model, patterns=("conv*",)))
    wrapped = {
        layer.name for layer in model.layers if type(layer).__name__.startswith("QuantizeWrapper")
    }
    assert {"quant_conv0", "quant_conv1"} <= wrapped
    assert not any("fc" in n or "logits" in n for n in wrapped)
    # the recipe's `qat.annotated` names the original layers those wrappers hold
    from edgequant.train.qat_stage import annotated_layers

    assert {f"quant_{n}" for n in annotated_layers(model)} == wrapped


def _model_with(layer):
    import tf_keras as keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = layer(x)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="out")(x))


def test_unsupported_layer_is_reported_before_training_with_its_name():
    import tf_keras as keras

    model = _model_with(keras.layers.LayerNormalization(name="norm"))
    assert qat.unsupported_layers(model) == [("norm", "LayerNormalization")]
    with pytest.raises(UserError, match=r"cannot quantize layer\(s\) norm \(LayerNormalization\)"):
        qat.annotate(model)


def _is_wrapped(layer) -> bool:
    return type(layer).__name__.startswith("QuantizeWrapper")


def test_noop_config_lets_a_pass_through_layer_be_quantized():
    import tf_keras as keras

    model = _model_with(keras.layers.GaussianNoise(0.1, name="noise"))  # identity at inference
    assert qat.unsupported_layers(model) == [("noise", "GaussianNoise")]
    quantized = qat.apply(qat.annotate(model, noop=("noise",)))
    noise = quantized.get_layer("quant_noise")
    assert _is_wrapped(noise) and type(noise.quantize_config).__name__ == "NoOpQuantizeConfig"
    # no fake-quant inside: no weight or activation quantizer, no output quantizer, and no
    # min/max variables; the only variable is the wrapper's own optimizer step
    assert list(noise._weight_vars) == [] and list(noise._quantize_activations) == []
    assert list(noise._output_quantizers) == []
    assert [v.name for v in noise.weights] == ["quant_noise/optimizer_step:0"]
    # ...while the neighbouring conv really is fake-quantized (the check above can fail)
    conv_vars = {v.name.split("/")[-1] for v in quantized.get_layer("quant_conv").weights}
    assert {"kernel_min:0", "kernel_max:0"} <= conv_vars
    x = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
    assert quantized.predict(x, verbose=0).shape == (2, 10)


def _fake_quant_levels(model) -> dict[str, int]:
    """Per wrapped weighted layer: the most distinct values any output channel of its kernel
    holds after the layer's own weight quantizer (as in training) has fake-quantized it."""
    out = {}
    for layer in model.layers:
        for weight, quantizer, variables in getattr(layer, "_weight_vars", []):
            fq = quantizer(weight, training=True, weights=variables).numpy()
            out[layer.name] = max(len(np.unique(c)) for c in np.moveaxis(fq, -1, 0))
    return out


def test_nbit_scheme_trains_a_simulated_model(tiny_model, test_images):
    model = qat.apply(qat.annotate(tiny_model), nbit=(4, 8))
    levels = _fake_quant_levels(model)
    assert len(levels) == 4, levels  # conv0, conv1, fc, logits
    assert all(n <= 16 for n in levels.values()), levels  # 4 bits: at most 2**4 levels
    eight = _fake_quant_levels(qat.apply(qat.annotate(tiny_model), nbit=(8, 8)))
    assert max(eight.values()) > 16, eight  # the same kernels at 8 bits do use more levels
    x, y = test_images
    pred = model.predict(x, verbose=0).argmax(-1)
    assert np.mean(pred == y) > 0.3  # 4-bit weights without fine-tuning still classify


MIRRORED = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from edgequant import workspace

test_config = workspace.config_module("test")
from edgequant import pipeline
from edgequant.train import fit
config = test_config.get_config()
config.distribute = "mirrored"
data = pipeline.load_data(config)
model = pipeline.build_model(config, data.num_classes)
result = fit.train(model, data, config, sys.argv[1], verbose=0)
print("replicas", fit.strategy(config).num_replicas_in_sync, "val", result.val_accuracy)
"""


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    words = proc.stdout.split()
    assert words[words.index("replicas") + 1] == "2"
    assert float(words[words.index("val") + 1]) > 0.2
    assert (tmp_path / "tensorboard" / "float").is_dir()
