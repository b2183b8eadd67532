"""Recovery on a model plain int8 cannot quantize: a regression net whose hidden activations
carry a large offset (unnormalized sensor features) that cancels in the output."""

from __future__ import annotations

import numpy as np
import pytest

import edgequant
from edgequant.quantize import convert
from tests.test_recipes import assert_every_tflite_has_its_recipe


def offset_regressor(offset: float = 1000.0):
    """y = sum(x) computed as relu(2x + offset) - relu(x + offset): exact in float, but the
    hidden layer spans ~[offset - 5, offset + 5], so an 8-bit activation step (~offset/128)
    is larger than the whole signal. 16-bit activations, or that layer kept in float, fix it."""
    import tf_keras as keras

    inp = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="offset_hidden")(inp)
    out = keras.layers.Dense(1, name="estimate")(hidden)
    model = keras.Model(inp, out)
    eye = np.eye(4, dtype=np.float32)
    model.get_layer("offset_hidden").set_weights(
        [np.concatenate([eye, 2 * eye], axis=1), np.full(8, offset, np.float32)]
    )
    model.get_layer("estimate").set_weights(
        [np.array([[-1.0]] * 4 + [[1.0]] * 4, np.float32), np.zeros(1, np.float32)]
    )
    return model


@pytest.mark.slow
def test_recovery_lifts_a_model_int8_cannot_quantize_above_the_sqnr_budget(tmp_path):
    offset_regressor().save(tmp_path / "regressor.keras")
    x = np.random.default_rng(0).normal(size=(1500, 4)).astype(np.float32)
    np.save(tmp_path / "features.npy", x)
    result = edgequant.deploy(
        tmp_path / "regressor.keras",
        tmp_path / "features.npy",
        tmp_path / "out",
        target="cpu",
        **{"quantize.recipes": ("int8",), "bench.enabled": False},
    )
    by_name = {v["name"]: v for v in result["variants"]}
    plain = by_name["int8"]["metrics"]["sqnr_db"]["estimate"]
    assert plain < 15, plain  # the hard case really is hard
    steps = [t["step"] for t in result["recovery"]]
    assert steps[0] == "plain" and not result["recovery"][0]["meets_budget"]
    winner = by_name[result["recommended"]]
    assert winner["step"] != "plain" and winner["activations"] in ("int16", "mixed")
    assert winner["metrics"]["sqnr_db"]["estimate"] >= 20
    assert winner["within_budget"]


@pytest.mark.slow
def test_qat_joins_the_recovery_when_labelled_training_data_is_given(tiny_model, digits, tmp_path):
    from tests.conftest import ready

    tiny_model.save(tmp_path / "cnn.keras")
    idx = np.arange(0, 3000, 6)
    np.savez(tmp_path / "train.npz", x=ready(digits.train.x[idx]), labels=digits.train.y[idx])
    np.savez(tmp_path / "calib.npz", x=ready(digits.val.x), labels=digits.val.y)
    result = edgequant.deploy(
        tmp_path / "cnn.keras",
        tmp_path / "calib.npz",
        tmp_path / "out",
        train_data=tmp_path / "train.npz",
        # An unreachable budget makes every step run, so the QAT step is reached.
        **{"budget.max_drop_pp": -100.0, "bench.enabled": False, "recovery.qat_epochs": 1},
    )
    qat_trial = result["recovery"][-1]
    assert qat_trial["step"] == "qat" and qat_trial["name"] == "qat_uint8", result["recovery"]
    by_name = {v["name"]: v for v in result["variants"]}
    qat = by_name["qat_uint8"]
    assert qat["gate"] == "pass" and qat["input_dtype"] == "uint8"
    # 500 labelled samples: the training loop fine-tunes on 450 and validates on the other 50.
    assert qat["recipe"]["qat"]["epochs"] == 1 and qat["recipe"]["qat"]["samples"] == 450
    assert 0.0 <= qat["qat_val_accuracy"] <= 1.0
    assert (tmp_path / "out" / "tensorboard" / "recovery_qat" / "validation").is_dir()
    on_disk = convert.read_recipe(tmp_path / "out" / "qat_uint8.tflite")
    assert on_disk.to_dict() == qat["recipe"] and on_disk.qat.learning_rate > 0
    assert len(on_disk.qat.annotated) >= 3  # the tiny CNN's convolutions and dense layers
    assert_every_tflite_has_its_recipe(tmp_path / "out")
    assert qat["metrics"]["agreement"] > 0.8


def test_a_keras3_model_says_why_qat_is_not_offered(tmp_path):
    import keras

    from edgequant import usermodel

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save(tmp_path / "k3.keras")
    assert "tfmot does not support Keras 3" in usermodel.load(tmp_path / "k3.keras").qat_support()
