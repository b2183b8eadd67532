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
        **{"budget.min_top1": 1.0, "bench.enabled": False, "recovery.qat_epochs": 1},
    )
    qat_trial = result["recovery"][-1]
    assert qat_trial["step"] == "qat" and qat_trial["name"] == "qat_uint8", result["recovery"]
    by_name = {v["name"]: v for v in result["variants"]}
    qat = by_name["qat_uint8"]
    assert qat["gate"] == "pass" and qat["input_dtype"] == "uint8"
    # 500 labelled training samples; the labelled validation data (never the evaluation
    # data) judges the fine-tuning, as it judges every rung.
    assert qat["recipe"]["qat"]["epochs"] == 1 and qat["recipe"]["qat"]["samples"] == 500
    assert 0.0 <= qat["qat"]["val_accuracy"] <= 1.0 and qat["qat"]["agreement"] > 0.8
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


def audio_model(path):
    """A small audio-style model saved as a SavedModel: a spectrogram-like front end (SQUARE,
    LOG, NEG, POW, RESHAPE; SQUARE and NEG have no int8 kernel, so full-integer conversion is
    impossible) feeding a conv net with three named outputs of different scales."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    frames = keras.Input((16, 32), name="frames")
    x = keras.layers.Lambda(lambda t: tf.square(t), name="power")(frames)
    x = keras.layers.Lambda(lambda t: tf.math.log(t + 1e-6), name="log_power")(x)
    x = keras.layers.Lambda(lambda t: -t, name="negate")(x)
    x = keras.layers.Lambda(lambda t: tf.pow(tf.nn.relu(t) + 1.0, 0.5), name="compress")(x)
    x = keras.layers.Reshape((16, 32, 1), name="to_image")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    h = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = {
        "event": keras.layers.Dense(4, name="event")(h),
        "level": keras.layers.Dense(1, name="level")(h),
        "direction": keras.layers.Dense(3, name="direction")(h),
    }
    tf.saved_model.save(keras.Model(frames, outputs), str(path))
    return path


@pytest.mark.slow
def test_a_model_full_integer_cannot_convert_names_its_blocking_ops_and_recovers(tmp_path):
    model = audio_model(tmp_path / "audio")
    x = np.random.default_rng(0).normal(size=(1500, 16, 32)).astype(np.float32)
    np.save(tmp_path / "frames.npy", x)
    result = edgequant.deploy(
        model,
        tmp_path / "frames.npy",
        tmp_path / "out",
        target="cpu",
        **{"quantize.recipes": ("int8",), "bench.enabled": False},
    )
    blocked = {(o["op"], o["layer"]) for o in result["blocking_ops"]}
    assert {("SQUARE", "power"), ("NEG", "negate")} <= blocked, blocked
    assert "SQUARE (layer power)" in result["errors"][0]["error"]
    plain, *ladder = result["recovery"]
    assert plain["step"] == "plain" and "SQUARE (layer power)" in plain["error"]
    assert ladder[0]["name"] == "int8_fallback" and not ladder[0]["meets_budget"]
    winner = ladder[-1]
    assert winner["meets_budget"] and winner["activations"] in ("int8", "int16", "mixed")
    by_name = {v["name"]: v for v in result["variants"]}
    measured = by_name[winner["name"]]["metrics"]["sqnr_db"]  # on the evaluation data
    assert set(measured) == {"event", "level", "direction"}
    assert min(measured.values()) >= 20, measured
    assert result["recommended"] == winner["name"]
    for t in result["recovery"]:
        print(t["step"], t["name"], t.get("sqnr_db") or t.get("error"))
    print("evaluation", measured)


def _budget_study(labels_output=None, **budget):
    from types import SimpleNamespace

    from edgequant import workspace

    config = workspace.config("deploy")
    config.budget.update(budget)
    return SimpleNamespace(config=config, labels_output=labels_output, task=None)


def test_the_top1_floor_joins_the_drop_budget_and_says_both():
    from edgequant.flow.measure import within_budget

    study = _budget_study("probs", max_drop_pp=1.0, min_top1=0.9)
    float_m = {"top1": 0.95}
    assert within_budget(study, {"top1": 0.945}, float_m)[0]
    ok, why = within_budget(study, {"top1": 0.89}, {"top1": 0.895})  # a 0.5 pp drop, too low
    assert not ok and "+0.50 pp" in why and "89.00% vs the floor 90.00%" in why
    assert within_budget(_budget_study("probs"), {"top1": 0.89}, {"top1": 0.895})[0]


def test_the_budget_budget_keys_names_judges_and_says_when_sqnr_stands_in():
    """within_budget and the unused-key warning read one decision (budget_keys). Labelled
    evaluation data with unlabelled --data: the ladder's validation samples have no top-1, so
    the worst SQNR judges them, and the reason says why."""
    from edgequant.flow.measure import within_budget

    labelled = _budget_study("probs", max_drop_pp=1.0, min_sqnr_db=25.0)
    ok, why = within_budget(labelled, {"sqnr_db": {"probs": 30.0}}, {"sqnr_db": {}})
    assert ok and why == "top-1 not measured on these samples: worst-output SQNR 30.0 dB " + (
        "(budget 25.0 dB)"
    )
    unlabelled = _budget_study(min_sqnr_db=25.0)
    ok, why = within_budget(unlabelled, {"top1": 0.1, "sqnr_db": {"a": 24.0}}, {"top1": 0.9})
    assert not ok and why == "worst-output SQNR 24.0 dB (budget 25.0 dB)"  # no labels: SQNR


def test_a_budget_the_data_cannot_judge_is_named_not_silently_ignored():
    from edgequant.flow.measure import budget_keys
    from edgequant.flow.prepare import unused_budget

    unlabelled = _budget_study(max_drop_pp=0.5)
    (warning,) = unused_budget(unlabelled.config, budget_keys(unlabelled))
    assert warning == (
        "budget.max_drop_pp=0.5 is not used: this data is judged by budget.min_sqnr_db=20.0"
    )
    labelled = _budget_study("probs", max_drop_pp=0.5)
    assert unused_budget(labelled.config, budget_keys(labelled)) == []


@pytest.mark.parametrize(
    "key, value", [("max_drop_pp", -1.0), ("min_sqnr_db", -5.0), ("min_top1", 1.5)]
)
def test_a_budget_that_demands_beating_float_is_refused(key, value):
    from edgequant import config_check, workspace

    config = workspace.config("deploy")
    config.budget[key] = value
    with pytest.raises(ValueError, match=f"budget.{key} must be a number"):
        config_check.validate(config)
